"""Rerun committed benchmark records from scratch with today's code and compare every score's AUC.

    python benchmarks/rerun_records.py benchmarks/results/epochs10 KEY [KEY ...] \
        --out benchmarks/results/rerun_records.json

Each KEY is a record's key (or a unique prefix) in DIR/results.jsonl. The run is rebuilt from the
record's own spec (RunSpec.from_dict), trained and scored through the library's one run path,
with one PyTorch thread (as the committed grids ran). Appends to --out, one entry per run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from dcvae.benchmark import ResultStore
from dcvae.benchmark.runner import cached_dataset
from dcvae.evaluation.provenance import source_commit
from dcvae.evaluation.run import RunSpec, run_protocol


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store", type=Path)
    parser.add_argument("keys", nargs="+")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/rerun_records.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    records = ResultStore(args.store).records()
    done = json.loads(args.out.read_text()) if args.out.is_file() else {"runs": []}
    for prefix in args.keys:
        [record] = [r for r in records if r["key"].startswith(prefix)]
        spec = RunSpec.from_dict(record)
        assert spec.key == record["key"], "the record's spec no longer gives its key"
        start = time.perf_counter()
        again = run_protocol(spec, cached_dataset(spec.dataset, None)).record.to_dict()
        rows = {score: {"recorded": m["auc"], "now": again["metrics"][score]["auc"],
                        "difference": again["metrics"][score]["auc"] - m["auc"]}
                for score, m in record["metrics"].items()}
        worst = max(abs(r["difference"]) for r in rows.values())
        entry = {"store": args.store.as_posix(), "key": record["key"], "run": spec.label,
                 "recorded_at": record.get("commit"), "rerun_at": source_commit(),
                 "seconds": round(time.perf_counter() - start, 1), "max_abs_difference": worst,
                 "auc": rows}
        done["runs"] = [r for r in done["runs"] if r["key"] != record["key"]] + [entry]
        print(f"{spec.label} (recorded at {entry['recorded_at']}): max |AUC difference| {worst:.1e} "
              "over " + ", ".join(f"{s} {r['now']:.6f}" for s, r in rows.items()), flush=True)
    done["command"] = "python " + " ".join(sys.argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(done, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
