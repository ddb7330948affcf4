"""Atomic writes (dcvae.io.atomic): a failed write leaves the old file and no temporary behind."""

import os
import stat

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


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_a_new_file_gets_the_mode_of_a_plain_open_under_the_umask(tmp_path, umask, mode):
    """A shared results folder stays readable: not mkstemp's 0600 (issue 15, item 12)."""
    old = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "new.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "new.txt").stat().st_mode) == mode


def test_a_replaced_file_keeps_its_mode(tmp_path):
    target = tmp_path / "old.txt"
    target.write_text("old")
    target.chmod(0o640)
    atomic_write_text(target, "new")
    assert target.read_text() == "new" and stat.S_IMODE(target.stat().st_mode) == 0o640
