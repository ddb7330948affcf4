"""The results store: one JSON record per finished run, appended to ``results.jsonl``.

Why a JSON-lines file: appends are cheap, the file diffs well in git, and any tool reads it.
Safety rules:
- a record is written only when its run has finished, as one line in one ``write`` under an
  exclusive file lock, then fsync'd: a run killed half-way leaves no record and is redone;
- several workers (processes, or machines on a shared file system that honours locks) may append
  to the same store: the lock serialises them, so nothing is lost;
- a torn last line (power loss mid-write) is ignored on reading, and the next append starts on a
  fresh line; when two records share a key, the first one counts.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from filelock import FileLock

RESULTS_FILE = "results.jsonl"


class ResultStore:
    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.path = self.directory / RESULTS_FILE
        self._lock = FileLock(str(self.directory / f".{RESULTS_FILE}.lock"))

    def check_writable(self) -> None:
        """Create the directory and prove it takes a file, before any training time is spent."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            probe = self.directory / f".write-test-{os.getpid()}"
            probe.write_text("ok")
            probe.unlink()
        except OSError as err:
            raise PermissionError(f"the output directory {self.directory} is not writable: "
                                  f"{err.strerror or err}") from None

    def append(self, record: dict[str, Any]) -> None:
        if "key" not in record:
            raise ValueError("a result record needs a 'key'")
        line = (json.dumps(record, sort_keys=True, allow_nan=False) + "\n").encode()
        with self._lock, open(self.path, "ab") as fh:
            if fh.tell() > 0 and not _ends_with_newline(self.path):
                fh.write(b"\n")  # seal a torn line left by a crashed writer
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())

    def records(self) -> list[dict[str, Any]]:
        """Every complete record, first one per key, in the order written."""
        seen: set[str] = set()
        out = []
        for record in self._read():
            if record["key"] not in seen:
                seen.add(record["key"])
                out.append(record)
        return out

    def done_keys(self) -> set[str]:
        return {r["key"] for r in self._read()}

    def _read(self) -> Iterator[dict[str, Any]]:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return
        for raw in data.split(b"\n")[:-1]:  # the part after the last newline is torn or empty
            try:
                record = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError):
                continue  # a torn line sealed by a later append
            if isinstance(record, dict) and isinstance(record.get("key"), str):
                yield record


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as fh:
        fh.seek(-1, os.SEEK_END)
        return fh.read(1) == b"\n"
