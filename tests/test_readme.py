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
from concurrent.futures import ThreadPoolExecutor
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


def chains(lines: list[str]) -> list[list[str]]:
    """The lines in independent chains, in order: a line joins the chain of the last earlier line
    whose ``--out`` target it names (``dcvae score my_model`` after ``... --out my_model``), and
    starts a chain of its own otherwise, so that independent examples can run side by side."""
    out_target = re.compile(r"--out (\S+)")
    result: list[list[str]] = []
    owner: dict[str, int] = {}  # an --out target -> the chain that writes it
    for line in lines:
        words = set(line.split())
        named = [owner[target] for target in owner if target in words or target.rstrip("/") in words]
        index = named[-1] if named else len(result)
        if not named:
            result.append([])
        result[index].append(line)
        for target in out_target.findall(line):
            owner[target] = index
    return result


def test_a_line_waits_for_the_line_that_writes_what_it_names():
    assert chains(["dcvae fit --out m", "dcvae list", "dcvae score m --out s.csv", "cat s.csv"]) == [
        ["dcvae fit --out m", "dcvae score m --out s.csv", "cat s.csv"], ["dcvae list"]]


@pytest.mark.slow
def test_the_readme_examples_run_as_written(tmp_path):
    _files_the_examples_name(tmp_path)
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""), "OMP_NUM_THREADS": "1"}
    lines = [line for block in runnable_blocks(README.read_text(encoding="utf-8"))
             for line in tiny(block).splitlines() if line.strip() and not line.lstrip().startswith("#")]

    def run_chain(chain: list[str]) -> None:
        for line in chain:
            done = subprocess.run(["bash", "-c", line], cwd=tmp_path, env=env, capture_output=True,
                                  text=True, timeout=600)
            assert done.returncode == 0, f"{line}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"

    with ThreadPoolExecutor(max_workers=2) as pool:  # the machine's 2 cores; each line uses one
        for finished in [pool.submit(run_chain, chain) for chain in chains(lines)]:
            finished.result()
    assert (tmp_path / "scores.csv").read_text().startswith("index,file,label,score,anomaly,error")
