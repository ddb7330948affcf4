"""Verified downloads of the official dataset files.

Downloads are always verified against checksums published for the official files before they
become visible under their final name: the bytes stream to a temporary file in the target
directory (``dcvae.io.atomic``), are hashed, and are published only if every digest matches, so
an interrupted or wrong download never ends up in the cache. A file without a published checksum
is never downloaded.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import socket
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, BinaryIO

from dcvae.io.atomic import atomic_file

from . import search
from .errors import DataFileError

__all__ = ["ARCHIVES", "DOWNLOAD_TIMEOUT_S", "REMOTE_FILES", "Checksum", "DownloadUnavailable",
           "RemoteArchive", "RemoteFile", "download_file", "open_url"]

log = logging.getLogger(__name__)

#: Socket timeout for downloads (per blocking operation, not for the whole file).
DOWNLOAD_TIMEOUT_S = 20.0
_CHUNK = 1 << 20




@dataclass(frozen=True)
class Checksum:
    """A published digest of an official file and where it was published."""

    algorithm: str  # a hashlib name: "sha256" or "md5"
    hexdigest: str
    source: str


@dataclass(frozen=True)
class RemoteArchive:
    """An official archive that holds several dataset files (EMNIST's ``gzip.zip``)."""

    filename: str
    url: str
    checksums: tuple[Checksum, ...]


@dataclass(frozen=True)
class RemoteFile:
    """How to fetch one official file: a direct URL, or a member of an archive."""

    checksums: tuple[Checksum, ...]
    url: str | None = None
    archive: str | None = None  # key into ARCHIVES
    member: str | None = None


_MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"  # torchvision's mirror
_FASHION_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
_KMNIST_URL = "http://codh.rois.ac.jp/kmnist/dataset/kmnist/"

# Sources of the published checksums (every digest below was published for the official
# file; the sha256 of the files in the project's shared/data equal them).
_SRC_SHARED = "shared/data/README.md (equal to the published checksums of the official file)"
_SRC_NOTWA = "GitHub notwa/mnists, mnists/hashes.py (sha256 of the official files)"
_SRC_TV = "GitHub pytorch/vision, torchvision/datasets/mnist.py (md5 of the official file)"
_SRC_ZALANDO = "GitHub zalandoresearch/fashion-mnist README (md5 published by Zalando)"
_SRC_KMNIST_RB = "GitHub ankane/torchvision-ruby, lib/torchvision/datasets/kmnist.rb"


def _sha(hexdigest: str, source: str) -> Checksum:
    return Checksum("sha256", hexdigest, source)


def _md5(hexdigest: str, source: str) -> Checksum:
    return Checksum("md5", hexdigest, source)


def _direct(base: str, name: str, *checksums: Checksum) -> RemoteFile:
    return RemoteFile(checksums=checksums, url=base + name)


#: Official archives; EMNIST is only distributed as one zip holding ``gzip/<file>``.
ARCHIVES: dict[str, RemoteArchive] = {
    "emnist-gzip": RemoteArchive(
        filename="gzip.zip",
        url="https://biometrics.nist.gov/cs_links/EMNIST/gzip.zip",
        checksums=(_md5("58c8d27c78d21e728a6bc7b3cc06412e", _SRC_TV),),
    ),
}

# sha256 of the 24 official EMNIST gz members (train/test x images/labels x 6 splits),
# published in notwa/mnists (mnists/hashes.py); the ones present in shared/data match them.
_EMNIST_SHA256 = {
    "balanced-test-images": "117fc12b015e37ea98bfb2cbba3f77c3782c056cdbd219b87abfc8661d7135db",
    "balanced-test-labels": "a67cac948379b67270b9a4d0a01c8ec661598accf2f2b1964340b7c83cb175cd",
    "balanced-train-images": "74295e75e4e9fa2c102147460ee7eb763653d5132d883a84fb88932bfb8d2db4",
    "balanced-train-labels": "b46d41e5156a0a8aaaa4d18979fdd1588850fa8571018acffd5d93b325a7d6ed",
    "byclass-test-images": "5ec835bd5d5b1a66378a132e727fef20fe994b3cc666899befcca5ac766f50cd",
    "byclass-test-labels": "501e305eeeacb093b162592d80e8a2632040872360fa6d85cfcb2200d91ca92a",
    "byclass-train-images": "9e21987f03a6eb8b870187e785883ddad96947299587908f1a7ec2ca0f4be5f0",
    "byclass-train-labels": "f7ef403d48dc18a89dae0d83d11ee69cecb6e1c12c3a961d03712e495c02a8fa",
    "bymerge-test-images": "5e5815ec1b522089134435f7c55e75a00960b58414793593ffff23efc0821683",
    "bymerge-test-labels": "8bda1516255683ba9071e141947ca0c91a911176065cdd6259b0b4d8dc5b5f35",
    "bymerge-train-images": "39bf8c68037dad40db35348895f7e4e056e8c0a005ab78869c9fbc2c96e947be",
    "bymerge-train-labels": "2c47293b9e62d6abf6ad05fbf67e40baa32adfd380b8d7b44dcc35534b64e1f1",
    "digits-test-images": "20ebe43509264f7639d37c835a3f0b009e90b29e00a099a03101abe1644a3f63",
    "digits-test-labels": "bad1834c45d5988e270b99d43b13edc3fd898f658ffbc2caf2846ef27f7b05b0",
    "digits-train-images": "f7c95004d14d81af89522e67d8f0c781dfb3bd544181c81bfe1eb6b41c35b726",
    "digits-train-labels": "6638a6ff5fe2eefd9cca2471995b46c82986b8e4b2a70d2f5ce8e05d7edb319e",
    "letters-test-images": "50f0e93d75b99b463e9760b8345866f22587fa2c2fba472730a5ba09c693412d",
    "letters-test-labels": "924955c31fe7fd809b7303b5c0141282955f4b8390c74cdfd5d80435e0f4b4cb",
    "letters-train-images": "6288f418a917e007bf5fddb823a2dc7a5c6a35031401b93292a539cb12bd881f",
    "letters-train-labels": "9759af91ea6bccdf07a6040fd085861f2ec88e37f7c3f5760f6feb57106fbe5c",
    "mnist-test-images": "b25640fa9e356c618132f5df347c95ef5bae6d9c2596be1de40f7e0ae1c3eac6",
    "mnist-test-labels": "bcc5385d38f083dba046f5f756e99b32f5ea7fad122c6243c71c2239873065ca",
    "mnist-train-images": "5f9942f441031c0f1f2e4d162059fd6e19ea808b34c328b6d16cab0ed24c78f2",
    "mnist-train-labels": "00c6d3c2342fdffb1711e0b5656cac4ce5862d2826399d383a9bac07d612e9f8",
}


def _emnist_name(key: str) -> str:
    kind = "images-idx3" if key.endswith("images") else "labels-idx1"
    return f"emnist-{key.rsplit('-', 1)[0]}-{kind}-ubyte.gz"


#: (folder, file name) -> how to fetch and verify the official file. A file missing here
#: is never downloaded: we only download what we can verify.
REMOTE_FILES: dict[tuple[str, str], RemoteFile] = {
    # MNIST: sha256 as in shared/data/README.md and notwa/mnists; md5 as in torchvision.
    ("mnist", "train-images-idx3-ubyte.gz"): _direct(
        _MNIST_URL, "train-images-idx3-ubyte.gz",
        _sha("440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609", _SRC_SHARED),
        _md5("f68b3c2dcbeaaa9fbdd348bbdeb94873", _SRC_TV),
    ),
    ("mnist", "train-labels-idx1-ubyte.gz"): _direct(
        _MNIST_URL, "train-labels-idx1-ubyte.gz",
        _sha("3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c", _SRC_SHARED),
        _md5("d53e105ee54ea40749a09fcbcd1e9432", _SRC_TV),
    ),
    ("mnist", "t10k-images-idx3-ubyte.gz"): _direct(
        _MNIST_URL, "t10k-images-idx3-ubyte.gz",
        _sha("8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6", _SRC_SHARED),
        _md5("9fb629c4189551a2d022fa330f9573f3", _SRC_TV),
    ),
    ("mnist", "t10k-labels-idx1-ubyte.gz"): _direct(
        _MNIST_URL, "t10k-labels-idx1-ubyte.gz",
        _sha("f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6", _SRC_SHARED),
        _md5("ec29112dd5afa0611ce80d1b7f02629c", _SRC_TV),
    ),
    # Fashion-MNIST: md5 published by Zalando (also in torchvision); sha256 of the same gz
    # files published in notwa/mnists. NOTE: Debian's dataset-fashion-mnist re-gzipped the
    # files (same pixels: the uncompressed md5s equal the published raw md5s, e.g.
    # f4a8712d7a061bf5bd6d2ca38dc4d50a for train images), so its .gz bytes do NOT match
    # these digests. That is fine: files found on disk are not hashed at load time.
    ("fashion-mnist", "train-images-idx3-ubyte.gz"): _direct(
        _FASHION_URL, "train-images-idx3-ubyte.gz",
        _md5("8d4fb7e6c68d591d4c3dfef9ec88bf0d", _SRC_ZALANDO),
        _sha("08dc20ab1689590a0bcd66e874647b6ee8464e2d501b5a3f1f78831db19a3fdc", _SRC_NOTWA),
    ),
    ("fashion-mnist", "train-labels-idx1-ubyte.gz"): _direct(
        _FASHION_URL, "train-labels-idx1-ubyte.gz",
        _md5("25c81989df183df01b3e8a0aad5dffbe", _SRC_ZALANDO),
        _sha("b0197879cbda89f3dc7b894f9fd52b858e68ea4182b6947c9d8c2b67e5f18dcc", _SRC_NOTWA),
    ),
    ("fashion-mnist", "t10k-images-idx3-ubyte.gz"): _direct(
        _FASHION_URL, "t10k-images-idx3-ubyte.gz",
        _md5("bef4ecab320f06d8554ea6380940ec79", _SRC_ZALANDO),
        _sha("78dcbbfb5a27efaf1b6c1d616caca68560be8766c5bffcb2791df9273a534229", _SRC_NOTWA),
    ),
    ("fashion-mnist", "t10k-labels-idx1-ubyte.gz"): _direct(
        _FASHION_URL, "t10k-labels-idx1-ubyte.gz",
        _md5("bb300cfdad3c16e7a12a480ee83cd310", _SRC_ZALANDO),
        _sha("42bd18137a62d5998cdeae52bf3a0676ac6b706f5cf8439b47bb5b151ae3dccf", _SRC_NOTWA),
    ),
    # KMNIST (IDX gz). Train images: sha256 from ankane/torchvision-ruby (the same value is
    # in several other public loaders), md5 from torchvision. The other three sha256 are in
    # shared/data/README.md and equal the same public tables. The official .npz files are not
    # listed: the IDX files carry the same arrays, and we only need one verified source.
    ("kmnist", "train-images-idx3-ubyte.gz"): _direct(
        _KMNIST_URL, "train-images-idx3-ubyte.gz",
        _sha("51467d22d8cc72929e2a028a0428f2086b092bb31cfb79c69cc0a90ce135fde4", _SRC_KMNIST_RB),
        _md5("bdb82020997e1d708af4cf47b453dcf7", _SRC_TV),
    ),
    ("kmnist", "train-labels-idx1-ubyte.gz"): _direct(
        _KMNIST_URL, "train-labels-idx1-ubyte.gz",
        _sha("e38f9ebcd0f3ebcdec7fc8eabdcdaef93bb0df8ea12bee65224341c8183d8e17", _SRC_SHARED),
        _md5("e144d726b3acfaa3e44228e80efcd344", _SRC_TV),
    ),
    ("kmnist", "t10k-images-idx3-ubyte.gz"): _direct(
        _KMNIST_URL, "t10k-images-idx3-ubyte.gz",
        _sha("edd7a857845ad6bb1d0ba43fe7e794d164fe2dce499a1694695a792adfac43c5", _SRC_SHARED),
        _md5("5c965bf0a639b31b8f53240b1b52f4d7", _SRC_TV),
    ),
    ("kmnist", "t10k-labels-idx1-ubyte.gz"): _direct(
        _KMNIST_URL, "t10k-labels-idx1-ubyte.gz",
        _sha("20bb9a0ef54c7db3efc55a92eef5582c109615df22683c380526788f98e42a1c", _SRC_SHARED),
        _md5("7320c461ea6c1c855c0b718fb2a4b134", _SRC_TV),
    ),
    # EMNIST: members gzip/<name> of the verified official zip, each checked again on
    # extraction against its own published sha256.
    **{
        ("emnist", _emnist_name(key)): RemoteFile(
            checksums=(_sha(digest, _SRC_NOTWA),),
            archive="emnist-gzip",
            member=f"gzip/{_emnist_name(key)}",
        )
        for key, digest in _EMNIST_SHA256.items()
    },
}




class DownloadUnavailable(Exception):
    """A file could not be downloaded (network failure, or no verified source known)."""


def open_url(url: str, timeout: float) -> BinaryIO:
    """Open ``url`` for streaming; the single network entry point (tests replace it)."""
    request = urllib.request.Request(url, headers={"User-Agent": "dcvae-data-loader"})
    return urllib.request.urlopen(request, timeout=timeout)


def _write_verified(
    source: IO[bytes], dest: Path, checksums: Sequence[Checksum], origin: str
) -> Path:
    """Stream ``source`` to ``dest`` atomically; publish it only if all digests match.

    Read errors of ``source`` (network) become :class:`DownloadUnavailable`; a digest
    mismatch is a :class:`DataFileError`. In every failure nothing is left behind.
    """
    if not checksums:
        raise DownloadUnavailable(f"refusing to fetch {dest.name}: no published checksum known")
    hashers = {c.algorithm: hashlib.new(c.algorithm) for c in checksums}
    with atomic_file(dest) as out:
        while True:
            try:
                chunk = source.read(_CHUNK)
            except (OSError, http.client.HTTPException) as err:
                raise DownloadUnavailable(f"reading {origin} failed: {_reason(err)}") from err
            if not chunk:
                break
            out.write(chunk)
            for h in hashers.values():
                h.update(chunk)
        for c in checksums:  # raising here, inside the block, discards the temporary file
            found = hashers[c.algorithm].hexdigest()
            if found != c.hexdigest.lower():
                raise DataFileError(
                    dest,
                    f"{c.algorithm} mismatch for the file fetched from {origin}: expected "
                    f"{c.hexdigest} (published in {c.source}), found {found}; the file was "
                    "discarded",
                )
    return dest


def _reason(err: BaseException) -> str:
    """Why a network read failed, in words (not ``URLError(gaierror(-2, ...))``)."""
    reason = getattr(err, "reason", None)  # urllib wraps the socket error in URLError.reason
    if isinstance(reason, socket.gaierror):
        return f"no network: the host name could not be resolved ({reason.strerror})"
    if isinstance(err, TimeoutError) or isinstance(reason, TimeoutError):
        return "the connection timed out"
    if isinstance(err, urllib.error.HTTPError):
        return f"the server answered HTTP {err.code} {err.reason}"
    text = reason if reason is not None else err
    return str(getattr(text, "strerror", None) or text) or type(err).__name__


def _download(url: str, dest: Path, checksums: Sequence[Checksum]) -> Path:
    """Download ``url`` to ``dest`` (verified, atomic)."""
    log.info("downloading %s -> %s", url, dest)
    try:
        response = open_url(url, DOWNLOAD_TIMEOUT_S)
    except (OSError, http.client.HTTPException, ValueError) as err:
        raise DownloadUnavailable(f"downloading {url} failed: {_reason(err)}") from err
    with response:
        return _write_verified(response, dest, checksums, url)


def _extract_member(
    archive_path: Path, member: str, dest: Path, checksums: Sequence[Checksum]
) -> Path:
    """Extract one archive member to ``dest`` (verified, atomic)."""
    log.info("extracting %s from %s -> %s", member, archive_path, dest)
    try:
        with zipfile.ZipFile(archive_path) as zf, zf.open(member) as source:
            return _write_verified(source, dest, checksums, f"{archive_path}:{member}")
    except KeyError as err:
        raise DownloadUnavailable(f"{archive_path} has no member {member!r}") from err
    except (zipfile.BadZipFile, EOFError, zlib.error) as err:
        raise DataFileError(archive_path, f"corrupt zip archive ({err})") from err


def _download_dir(folder: str, data_dir: str | os.PathLike[str] | None) -> Path:
    """Return where a download goes: ``data_dir/<folder>`` if writable, else the cache."""
    if data_dir is not None:
        target = Path(data_dir).expanduser() / folder
        try:
            target.mkdir(parents=True, exist_ok=True)
        except OSError:
            pass
        else:
            if os.access(target, os.W_OK):
                return target
    target = search.cache_dir() / folder
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DownloadUnavailable(f"cannot create the download directory {target}: {err}") from err
    return target


def download_file(
    folder: str, name: str, data_dir: str | os.PathLike[str] | None = None
) -> Path:
    """Fetch the official file ``name`` of ``folder`` and return its verified local path.

    Raises
    ------
    DownloadUnavailable
        No verified source is known, or the network failed (nothing is left behind).
    DataFileError
        The bytes fetched do not match the published checksum (nothing is left behind).
    """
    spec = REMOTE_FILES.get((folder, name))
    if spec is None:
        raise DownloadUnavailable(f"no official download with a published checksum for {name}")
    if not spec.checksums:
        raise DownloadUnavailable(f"refusing to download {name}: no published checksum known")
    target = _download_dir(folder, data_dir)
    if spec.url is not None:
        return _download(spec.url, target / name, spec.checksums)
    if spec.archive is None or spec.member is None:
        raise DownloadUnavailable(f"no download source configured for {name}")
    archive = ARCHIVES[spec.archive]
    archive_path = search.find_file(folder, archive.filename, data_dir)
    if archive_path is None:
        archive_path = _download(archive.url, target / archive.filename, archive.checksums)
    return _extract_member(archive_path, spec.member, target / name, spec.checksums)

