"""How long ``dcvae report`` takes on the committed result stores (issue 18: a 500-run report in
under 60 s, with progress shown).

Each store is copied to a temporary folder (the report writes into its store) and reported there
by the CLI in a fresh process, so the time includes start-up and imports. The committed stores hold
the records, not the per-sample score files or saved models, so the figures that need those are
skipped with a line, as in a fresh clone.

    python benchmarks/report_time.py benchmarks/results/epochs10 benchmarks/results/tuned \\
        benchmarks/results/paper --out benchmarks/results/report_time.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dcvae.io.atomic import atomic_write_text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stores", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    exe = str(Path(sys.executable).with_name("dcvae"))
    rows = []
    for store in args.stores:
        with open(store / "results.jsonl", encoding="utf-8") as fh:
            runs = sum(1 for line in fh if line.strip())
        with tempfile.TemporaryDirectory() as tmp:
            copy = Path(tmp) / store.name
            shutil.copytree(store, copy, ignore=shutil.ignore_patterns("report.*", "figures"))
            start = time.perf_counter()
            done = subprocess.run([exe, "report", str(copy)], capture_output=True, text=True, check=True)
            seconds = time.perf_counter() - start
        progress = [line for line in done.stderr.splitlines() + done.stdout.splitlines()
                    if line.startswith("report [")]
        rows.append({"store": store.as_posix(), "runs": runs, "seconds": round(seconds, 2),
                     "progress_lines": len(progress)})
        print(f"{store.as_posix():40s} {runs:5d} runs {seconds:6.1f} s, {len(progress)} progress lines",
              flush=True)
    command = "python benchmarks/report_time.py " + " ".join(s.as_posix() for s in args.stores)
    result = {"rows": rows, "command": f"{command} --out {args.out.as_posix()}"}
    atomic_write_text(args.out, json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
