"""Start-up (issue 18): how long `dcvae --help` and `dcvae list` take warm, and what they import.

Each command runs once to warm the file cache, then 5 times; the median wall time is reported
with whether PyTorch or scikit-learn was imported. Issue 18 asks ≤ 0.5 s for --help and ≤ 1 s for
list. `python -c "import torch"` is timed the same way, beside them, as the scale of what is saved.

    python benchmarks/startup.py --out benchmarks/results/startup.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from dcvae.io.atomic import atomic_write_text

PROBE = ("import sys; from dcvae.cli import main\n"
         "try: main({args!r})\nexcept SystemExit: pass\n"
         "print('IMPORTED', 'torch' in sys.modules, 'sklearn' in sys.modules, file=sys.stderr)")
COMMANDS = {"dcvae --help": ["--help"], "dcvae list": ["list"]}


def wall(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    dcvae = [str(Path(sys.executable).with_name("dcvae"))]
    runs = {**{name: dcvae + argv for name, argv in COMMANDS.items()},
            "python -c 'import torch'": [sys.executable, "-c", "import torch"]}
    rows = {}
    for name, argv in runs.items():
        wall(argv)  # warm the file cache
        times = [wall(argv) for _ in range(args.repeats)]
        rows[name] = {"median_s": round(statistics.median(times), 3), "min_s": round(min(times), 3),
                      "max_s": round(max(times), 3)}
        if name in COMMANDS:
            done = subprocess.run([sys.executable, "-c", PROBE.format(args=COMMANDS[name])],
                                  capture_output=True, text=True, check=True)
            flags = done.stderr.split("IMPORTED")[-1].split()
            rows[name].update(imports_torch=flags[0] == "True", imports_sklearn=flags[1] == "True")
        print(f"{name:<26} median {rows[name]['median_s']:.3f} s  (min {rows[name]['min_s']:.3f}, "
              f"max {rows[name]['max_s']:.3f})", {k: v for k, v in rows[name].items() if "imports" in k})
    result = {"repeats": args.repeats, "rows": rows,
              "command": "python benchmarks/startup.py --out " + args.out.as_posix()}
    atomic_write_text(args.out, json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
