"""Search order and verified, atomic downloads (no network: the opener is replaced)."""

from __future__ import annotations

import gzip
import hashlib
import http.client
import io
import os
import urllib.error
import zipfile
from pathlib import Path

import numpy as np
import pytest

from dcvae.data import DataFileError, DatasetNotFoundError, download, load_dataset
from dcvae.data.download import Checksum, DownloadUnavailable, RemoteArchive, RemoteFile, download_file
from dcvae.data.idx import idx_bytes
from dcvae.data.locate import locate_file
from dcvae.data.search import dataset_search_dirs, find_file

NAME = "t10k-labels-idx1-ubyte.gz"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class FakeResponse(io.BytesIO):
    """An HTTP response that can drop the connection after ``fail_after`` bytes."""

    def __init__(self, data: bytes, fail_after: int | None = None) -> None:
        super().__init__(data)
        self.fail_after = fail_after

    def read(self, n: int | None = -1) -> bytes:  # type: ignore[override]
        if self.fail_after is not None and self.tell() >= self.fail_after:
            raise http.client.IncompleteRead(b"", 123)
        limit = n if n is not None and n >= 0 else len(self.getvalue())
        if self.fail_after is not None:
            limit = min(limit, self.fail_after - self.tell())
        return super().read(limit)


class FakeWeb:
    """Serves fixed bytes per URL and records the requests."""

    def __init__(self, pages: dict[str, bytes], fail_after: int | None = None) -> None:
        self.pages = pages
        self.fail_after = fail_after
        self.requests: list[str] = []

    def __call__(self, url: str, timeout: float) -> FakeResponse:
        self.requests.append(url)
        assert timeout == download.DOWNLOAD_TIMEOUT_S
        if url not in self.pages:
            raise urllib.error.HTTPError(url, 404, "Not Found", {}, None)  # type: ignore[arg-type]
        return FakeResponse(self.pages[url], self.fail_after)


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


# ---------------------------------------------------------------- search order


def test_search_order(
    isolated: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    explicit, env = tmp_path / "explicit", tmp_path / "env"
    monkeypatch.setenv("DCVAE_DATA", str(env))
    roots = [explicit, env, isolated["cache"], isolated["system"]]
    assert dataset_search_dirs("mnist", explicit) == [
        d for r in roots for d in (r / "mnist", r)
    ]
    for root in roots:
        (root / "mnist").mkdir(parents=True)
        (root / "mnist" / NAME).write_bytes(root.name.encode())
    for root in roots:
        assert find_file("mnist", NAME, explicit) == root / "mnist" / NAME
        (root / "mnist" / NAME).unlink()
    assert find_file("mnist", NAME, explicit) is None


def test_root_itself_is_searched_and_dirs_beat_names(isolated: dict[str, Path], tmp_path: Path
                                                     ) -> None:
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "b.npz").write_bytes(b"x")
    (isolated["system"] / "kmnist").mkdir(parents=True)
    (isolated["system"] / "kmnist" / "a.gz").write_bytes(b"x")
    # an earlier directory wins even when it only holds the second alternative name
    assert find_file("kmnist", ("a.gz", "b.npz"), flat) == flat / "b.npz"


def test_env_var_may_list_several_roots(
    isolated: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    monkeypatch.setenv("DCVAE_DATA", f"{a}{os.pathsep}{b}")
    (b / "mnist").mkdir(parents=True)
    (b / "mnist" / NAME).write_bytes(b"x")
    assert find_file("mnist", NAME) == b / "mnist" / NAME


# ---------------------------------------------------------------- downloads


@pytest.fixture
def remote(monkeypatch: pytest.MonkeyPatch) -> tuple[bytes, str]:
    """Register a synthetic 'official' file with a known checksum; return (bytes, url)."""
    data = gzip.compress(idx_bytes(np.arange(10, dtype=np.uint8)), mtime=0)
    url = "https://example.invalid/mnist/" + NAME
    spec = RemoteFile(checksums=(Checksum("sha256", _sha256(data), "test"),), url=url)
    monkeypatch.setitem(download.REMOTE_FILES, ("mnist", NAME), spec)
    return data, url


def test_download_good_bytes(
    isolated: dict[str, Path], remote: tuple[bytes, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    data, url = remote
    web = FakeWeb({url: data})
    monkeypatch.setattr(download, "open_url", web)
    lookup = locate_file("mnist", NAME)
    assert lookup.status == "downloaded and verified"
    assert lookup.path == isolated["cache"] / "mnist" / NAME
    assert lookup.path.read_bytes() == data
    assert _files(isolated["cache"]) == [f"mnist/{NAME}"]  # no temporary file left
    # found on disk the second time: no request
    assert locate_file("mnist", NAME).status == "found" and web.requests == [url]


def test_download_wrong_bytes_never_cached(
    isolated: dict[str, Path], remote: tuple[bytes, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    data, url = remote
    monkeypatch.setattr(download, "open_url", FakeWeb({url: data[:-1] + bytes([data[-1] ^ 1])}))
    with pytest.raises(DataFileError) as info:
        locate_file("mnist", NAME)
    message = str(info.value)
    assert f"expected {_sha256(data)}" in message and "found " in message and NAME in message
    assert _files(isolated["cache"]) == []


def test_truncated_download_then_clean_retry(
    isolated: dict[str, Path], remote: tuple[bytes, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    data, url = remote
    monkeypatch.setattr(download, "open_url", FakeWeb({url: data}, fail_after=len(data) // 2))
    lookup = locate_file("mnist", NAME)
    assert not lookup.found and "IncompleteRead" in lookup.status
    assert _files(isolated["cache"]) == []
    # a short body without an error (server closed cleanly) is caught by the checksum
    monkeypatch.setattr(download, "open_url", FakeWeb({url: data[: len(data) // 2]}))
    with pytest.raises(DataFileError, match="sha256 mismatch"):
        locate_file("mnist", NAME)
    assert _files(isolated["cache"]) == []
    monkeypatch.setattr(download, "open_url", FakeWeb({url: data}))
    assert locate_file("mnist", NAME).path.read_bytes() == data  # type: ignore[union-attr]
    assert _files(isolated["cache"]) == [f"mnist/{NAME}"]


def test_network_failure_falls_through_to_not_found(
    isolated: dict[str, Path], tmp_path: Path
) -> None:
    # the autouse no_network fixture makes every request fail like an offline machine
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("fmnist", tmp_path / "empty")
    message = str(info.value)
    assert "t10k-images-idx3-ubyte.gz" in message and "network disabled in tests" in message
    assert str(tmp_path / "empty" / "fashion-mnist") in message
    assert str(isolated["system"]) in message
    assert _files(tmp_path) == [] or all(".part" not in f for f in _files(tmp_path))


def test_download_goes_to_writable_data_dir_else_cache(
    isolated: dict[str, Path],
    remote: tuple[bytes, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data, url = remote
    monkeypatch.setattr(download, "open_url", FakeWeb({url: data}))
    target = tmp_path / "mine"
    assert download_file("mnist", NAME, target) == target / "mnist" / NAME
    not_a_dir = tmp_path / "file"
    not_a_dir.write_bytes(b"")
    assert download_file("mnist", NAME, not_a_dir) == isolated["cache"] / "mnist" / NAME


def test_refuses_files_without_checksum(
    isolated: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    web = FakeWeb({})
    monkeypatch.setattr(download, "open_url", web)
    monkeypatch.setitem(
        download.REMOTE_FILES, ("mnist", NAME), RemoteFile(checksums=(), url="https://x.invalid/")
    )
    with pytest.raises(DownloadUnavailable, match="no published checksum"):
        download_file("mnist", NAME)
    with pytest.raises(DownloadUnavailable, match="no official download"):
        download_file("mnist", "unknown-file.gz")
    assert web.requests == []


def test_every_registered_file_has_a_checksum() -> None:
    for (folder, name), spec in download.REMOTE_FILES.items():
        assert spec.checksums, (folder, name)
        assert spec.url or (spec.archive in download.ARCHIVES and spec.member), (folder, name)
        for c in spec.checksums:
            assert len(c.hexdigest) == {"sha256": 64, "md5": 32}[c.algorithm]


def test_shared_files_match_registered_checksums(shared_data: Path) -> None:
    """The registry digests are the published ones; the shared official files must match."""
    checked = 0
    for (folder, name), spec in download.REMOTE_FILES.items():
        path = shared_data / folder / name
        if path.is_file() and path.stat().st_size < 5_000_000:
            data = path.read_bytes()
            for c in spec.checksums:
                assert hashlib.new(c.algorithm, data).hexdigest() == c.hexdigest, (name, c.source)
            checked += 1
    assert checked >= 10


# ---------------------------------------------------------------- EMNIST archive


def _emnist_zip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[bytes, np.ndarray]:
    """A small stand-in for gzip.zip with emnist-mnist test members, registered as official."""
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(50, 28, 28), dtype=np.uint8)
    labels = np.repeat(np.arange(10, dtype=np.uint8), 5)
    members = {
        "emnist-mnist-test-images-idx3-ubyte.gz": gzip.compress(idx_bytes(images), mtime=0),
        "emnist-mnist-test-labels-idx1-ubyte.gz": gzip.compress(idx_bytes(labels), mtime=0),
    }
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, blob in members.items():
            zf.writestr(f"gzip/{name}", blob)
    archive = buf.getvalue()
    monkeypatch.setitem(
        download.ARCHIVES,
        "emnist-gzip",
        RemoteArchive("gzip.zip", "https://example.invalid/gzip.zip",
                      (Checksum("md5", hashlib.md5(archive).hexdigest(), "test"),)),
    )
    for name, blob in members.items():
        monkeypatch.setitem(
            download.REMOTE_FILES,
            ("emnist", name),
            RemoteFile((Checksum("sha256", _sha256(blob), "test"),), archive="emnist-gzip",
                       member=f"gzip/{name}"),
        )
    return archive, images


def test_emnist_members_extracted_from_verified_zip(
    isolated: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive, images = _emnist_zip(tmp_path, monkeypatch)
    web = FakeWeb({"https://example.invalid/gzip.zip": archive})
    monkeypatch.setattr(download, "open_url", web)
    data_dir = tmp_path / "data"
    ds = load_dataset("emnist-mnist", data_dir)
    assert web.requests == ["https://example.invalid/gzip.zip"]  # one download for both
    assert _files(data_dir) == [
        "emnist/emnist-mnist-test-images-idx3-ubyte.gz",
        "emnist/emnist-mnist-test-labels-idx1-ubyte.gz",
        "emnist/gzip.zip",
    ]
    assert (len(ds.train), len(ds.test)) == (40, 10)
    assert any("checksum verified" in n for n in ds.notes)
    assert any("carved" in n for n in ds.notes)
    # upright: the loader swapped the pixel axes of the stored images
    both = np.concatenate([ds.train.x, ds.test.x])[:, 0]
    assert {img.tobytes() for img in both} == {img.T.tobytes() for img in images}


def test_emnist_existing_zip_is_used_and_bad_member_rejected(
    isolated: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive, _ = _emnist_zip(tmp_path, monkeypatch)
    data_dir = tmp_path / "data"
    (data_dir / "emnist").mkdir(parents=True)
    (data_dir / "emnist" / "gzip.zip").write_bytes(archive)
    name = "emnist-mnist-test-labels-idx1-ubyte.gz"
    path = download_file("emnist", name, data_dir)  # no network needed
    assert path == data_dir / "emnist" / name
    path.unlink()
    monkeypatch.setitem(
        download.REMOTE_FILES,
        ("emnist", name),
        RemoteFile((Checksum("sha256", "0" * 64, "test"),), archive="emnist-gzip",
                   member=f"gzip/{name}"),
    )
    with pytest.raises(DataFileError, match="sha256 mismatch"):
        download_file("emnist", name, data_dir)
    assert _files(data_dir) == ["emnist/gzip.zip"]


# ---------------------------------------------------------------- end to end, real bytes


def test_mnist_download_end_to_end(
    isolated: dict[str, Path], shared_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Serve the real official MNIST bytes through the fake opener; all four are verified."""
    pages = {
        spec.url: (shared_data / "mnist" / name).read_bytes()
        for (folder, name), spec in download.REMOTE_FILES.items()
        if folder == "mnist" and spec.url
    }
    web = FakeWeb(pages)
    monkeypatch.setattr(download, "open_url", web)
    ds = load_dataset("mnist")
    assert (len(ds.train), len(ds.test)) == (60_000, 10_000)
    assert sorted(web.requests) == sorted(pages)
    assert len(_files(isolated["cache"])) == 4
    assert sum("downloaded" in n for n in ds.notes) == 4


def test_a_failed_download_says_why_in_words(isolated: dict[str, Path], remote: tuple[bytes, str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """(issue 15, item 9) Not ``URLError(gaierror(-2, 'Name or service not known'))``."""
    import socket
    import urllib.error

    def no_dns(url: str, timeout: float) -> None:
        raise urllib.error.URLError(socket.gaierror(-2, "Name or service not known"))

    monkeypatch.setattr(download, "open_url", no_dns)
    lookup = locate_file("mnist", NAME)
    assert not lookup.found
    assert "no network: the host name could not be resolved (Name or service not known)" in lookup.status
    assert "gaierror" not in lookup.status and "URLError" not in lookup.status
