"""The results store (dcvae.benchmark.store): concurrent appends lose nothing, torn lines are sealed."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from dcvae.benchmark import ResultStore


def _append_many(directory: str, worker: int, n: int) -> None:
    store = ResultStore(directory)
    for i in range(n):
        store.append({"key": f"{worker}-{i}", "payload": "x" * 2000})


@pytest.mark.slow
def test_two_processes_appending_to_one_store_lose_nothing(tmp_path: Path):
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_append_many, args=(str(tmp_path), w, 150)) for w in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    records = ResultStore(tmp_path).records()
    assert sorted(r["key"] for r in records) == sorted(f"{w}-{i}" for w in range(2) for i in range(150))
    lines = (tmp_path / "results.jsonl").read_text().splitlines()
    assert len(lines) == 300  # no interleaved or merged lines


def test_a_torn_last_line_is_ignored_and_sealed(tmp_path: Path):
    store = ResultStore(tmp_path)
    store.append({"key": "a", "auc": 0.5})
    with open(store.path, "ab") as fh:
        fh.write(b'{"key": "b", "auc": 0.')  # a writer died mid-line
    assert [r["key"] for r in store.records()] == ["a"]
    store.append({"key": "c", "auc": 0.7})
    assert [r["key"] for r in store.records()] == ["a", "c"]
    assert store.done_keys() == {"a", "c"}


def test_the_first_record_of_a_key_counts(tmp_path: Path):
    store = ResultStore(tmp_path)
    store.append({"key": "a", "auc": 0.5})
    store.append({"key": "a", "auc": 0.9})
    assert store.records() == [{"key": "a", "auc": 0.5}]
    with pytest.raises(ValueError, match="key"):
        store.append({"auc": 1.0})


