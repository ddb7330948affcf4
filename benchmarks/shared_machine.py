"""Commands on a shared machine (issue 18): with one busy competing process, how long do `dcvae fit`
and `dcvae demo` take with the automatic thread count, against `--threads 1` and `--threads` set
to every core (PyTorch's own default, and dcvae's before issue 18)?

The script starts the competitor (one Python process spinning on one core) and stops it itself,
runs each variant as a fresh command without OMP_NUM_THREADS, interleaved, ``--repeats`` times,
and reports the median wall time and its ratio to ``--threads 1`` (the issue asks for at most 1.3).
It also runs each command once with no competitor, automatic threads, after one untimed warm-up run.

    python benchmarks/shared_machine.py --out benchmarks/results/shared_machine.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dcvae.cli.inputs import usable_cores
from dcvae.io.atomic import atomic_write_text


def commands(workdir: Path) -> dict[str, list[str]]:
    dcvae = [sys.executable, "-m", "dcvae"]
    return {"fit": [*dcvae, "fit", "--dataset", "digits", "--protocol", "leave-one-out", "--class", "1",
                    "--epochs", "20", "--quiet", "--overwrite", "--out", str(workdir / "model")],
            "demo": [*dcvae, "demo", "--epochs", "10"]}


def timed(command: list[str], extra: list[str]) -> float:
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    start = time.perf_counter()
    subprocess.run(command + extra, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    cores = usable_cores()
    variants = {"automatic": [], "threads 1": ["--threads", "1"],
                f"threads {cores}": ["--threads", str(cores)]}
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        cmds = commands(Path(tmp))
        for name, command in cmds.items():
            timed(command, [])  # untimed: file caches and compiled modules warm for every variant
            results[name] = {"idle automatic": round(timed(command, []), 2)}
        competitor = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        try:
            time.sleep(1.0)
            for name, command in cmds.items():
                times: dict[str, list[float]] = {v: [] for v in variants}
                for _ in range(args.repeats):
                    for variant, extra in variants.items():  # interleaved: the same load for each
                        times[variant].append(timed(command, extra))
                one = statistics.median(times["threads 1"])
                for variant, values in times.items():
                    median = statistics.median(values)
                    results[name][f"busy {variant}"] = {"seconds": [round(v, 2) for v in values],
                                                        "median": round(median, 2),
                                                        "ratio_to_threads_1": round(median / one, 3)}
        finally:
            competitor.kill()
            competitor.wait()
    for name, row in results.items():
        print(f"{name}: idle {row['idle automatic']:.1f} s; beside one busy process: " + ", ".join(
            f"{k[5:]} {v['median']:.1f} s ({v['ratio_to_threads_1']:.2f}x)" for k, v in row.items()
            if k.startswith("busy")))
    out = {"cores": cores, "repeats": args.repeats, "results": results,
           "command": f"python benchmarks/shared_machine.py --out {args.out.as_posix()}"}
    atomic_write_text(args.out, json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
