"""What a benchmark run spends besides `detector.fit` and scoring the test split (issue 18): data
loading, the protocol's carve, the metrics, writing the record and the score files.

Read from a store written by one worker (``--workers 1``): a run's wall time is the time between
its record's ``finished_at`` and the previous record's; the overhead is that wall time less the
record's ``train_seconds`` (the whole ``detector.fit``, which includes scoring the validation
carve for the threshold and fitting the latent Gaussians) and ``score_seconds`` (the test split).
The first record has no predecessor and is left out.

    python benchmarks/run_overhead.py benchmarks/results/ensemble10 --out benchmarks/results/run_overhead.json
"""

from __future__ import annotations

import argparse
import datetime
import json
from collections import defaultdict
from pathlib import Path

from dcvae.benchmark import ResultStore
from dcvae.io.atomic import atomic_write_text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    records = list(ResultStore(args.directory).records())
    times = [datetime.datetime.fromisoformat(r["finished_at"]) for r in records]
    parts: dict[str, list[tuple[float, float, float]]] = defaultdict(list)
    for before, now, r in zip(times, times[1:], records[1:], strict=False):
        wall = (now - before).total_seconds()
        parts[r["dataset"]].append((wall, r["train_seconds"], r.get("score_seconds") or 0.0))
    summary = {}
    for dataset, rows in sorted(parts.items()):
        wall = sum(w for w, _, _ in rows)
        overhead = sum(w - t - s for w, t, s in rows)
        summary[dataset] = {"runs": len(rows), "wall_mean_s": wall / len(rows),
                            "fit_mean_s": sum(t for _, t, _ in rows) / len(rows),
                            "test_scoring_mean_s": sum(s for _, _, s in rows) / len(rows),
                            "overhead_mean_s": overhead / len(rows), "overhead_fraction": overhead / wall}
        print(f"{dataset}: {len(rows)} runs, {wall / len(rows):.1f} s each; besides fit and test scoring "
              f"{overhead / len(rows):.2f} s ({100 * overhead / wall:.1f}%)")
    command = f"python benchmarks/run_overhead.py {args.directory} --out {args.out}"
    atomic_write_text(args.out, json.dumps({"command": command, "summary": summary}, indent=1) + "\n")


if __name__ == "__main__":
    main()
