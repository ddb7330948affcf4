"""Atomic writes (dcvae.io.atomic): a failed write leaves the old file and no temporary behind."""

import pytest

from dcvae.io.atomic import atomic_file, atomic_write, atomic_write_text


def test_a_write_replaces_the_file_whole(tmp_path):
    path = tmp_path / "f.txt"
    atomic_write_text(path, "old")
    atomic_write(path, lambda tmp: tmp.write_text("new"))
    assert path.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_a_failed_write_keeps_the_old_file_and_removes_the_temporary(tmp_path):
    path = tmp_path / "f.bin"
    atomic_write_text(path, "old")
    with pytest.raises(RuntimeError, match="disk on fire"), atomic_file(path) as fh:
        fh.write(b"half of the new")
        raise RuntimeError("disk on fire")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]
