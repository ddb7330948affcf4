"""The README's examples run as written: every ```bash block marked ``<!-- runnable ... -->`` on the
line before it runs, line by line, in a fresh folder that holds the files the examples name.

To run on tiny data, three things are rewritten and nothing else: a named dataset becomes the bundled
``digits``, ``--epochs N`` becomes ``--epochs 1`` and ``--train-size N`` becomes ``--train-size 300``.
``dcvae`` and ``python`` are this environment's.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

README = Path(__file__).resolve().parents[1] / "README.md"
MARK = "<!-- runnable"
REWRITES = [
    (re.compile(r"--dataset \S+"), "--dataset digits"),
    (re.compile(r"--epochs \d+"), "--epochs 1"),
    (re.compile(r"--train-size \d+"), "--train-size 300"),
]


def runnable_blocks(text: str) -> list[str]:
    """The ```bash blocks whose fence follows a runnable mark."""
    lines, blocks = text.splitlines(), []
    for i, line in enumerate(lines):
        if line.startswith(MARK) and i + 1 < len(lines) and lines[i + 1].strip() == "```bash":
            end = lines.index("```", i + 2)
            blocks.append("\n".join(lines[i + 2:end]))
    return blocks


def tiny(block: str) -> str:
    for pattern, replacement in REWRITES:
        block = pattern.sub(replacement, block)
    return block


def _files_the_examples_name(root: Path) -> None:
    rng = np.random.default_rng(0)
    for folder, classes in (("my_images", ("a", "b")), ("new_images", ("a", "b"))):
        for k, name in enumerate(classes):
            (root / folder / name).mkdir(parents=True)
            for i in range(12):
                pixels = rng.integers(0, 120, (20 + i, 24)) + 100 * k  # sizes differ: --size resizes
                Image.fromarray(pixels.astype(np.uint8)).save(root / folder / name / f"{i}.png")
    rows = ["site,x1,x2,x3"] + [f"{'ns'[i % 2]},{a:.3f},{b:.3f},{c:.3f}" for i, (a, b, c)
                                in enumerate(rng.normal(size=(60, 3)))]
    (root / "table.csv").write_text("\n".join(rows) + "\n")


def test_the_marked_blocks_are_found_and_rewritten():
    blocks = runnable_blocks(README.read_text(encoding="utf-8"))
    assert blocks and any("dcvae fit --images my_images/" in b for b in blocks)
    assert tiny("dcvae evaluate --dataset mnist --epochs 10 --train-size 3000") == (
        "dcvae evaluate --dataset digits --epochs 1 --train-size 300")


@pytest.mark.slow
def test_the_readme_examples_run_as_written(tmp_path):
    _files_the_examples_name(tmp_path)
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""), "OMP_NUM_THREADS": "1"}
    for block in runnable_blocks(README.read_text(encoding="utf-8")):
        for line in tiny(block).splitlines():
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            done = subprocess.run(["bash", "-c", line], cwd=tmp_path, env=env, capture_output=True, text=True,
                                  timeout=600)
            assert done.returncode == 0, f"{line}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    assert (tmp_path / "scores.csv").read_text().startswith("index,file,label,score,anomaly,error")
