"""Choose each model's settings from the tuning grid by *validation* AUC, and write tuned.toml.

The selection signal is each record's ``validation_auc`` of the headline score: the normal
validation carve against the held-out class's *training* images. The test split is never looked at.
One setting per model across MNIST and Fashion-MNIST together (Table II's idea).

    python benchmarks/select_tuned.py benchmarks/results/tuning --write benchmarks/tuned.toml
    python benchmarks/select_tuned.py benchmarks/results/classical_tuning --write benchmarks/epochs10.toml \
        --block classical
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from dcvae.benchmark import ResultStore
from dcvae.io.atomic import atomic_write_text

# Settings of the tuning grid that describe its budget, not the choice: tuned.toml sets its own.
BUDGET_KEYS = {"epochs", "train_size"}


def select(directory: Path) -> tuple[dict[str, dict], list[dict]]:
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in ResultStore(directory).records():
        chosen = {k: v for k, v in r["settings"].items() if k not in BUDGET_KEYS}
        groups[(r["model"], json.dumps(chosen, sort_keys=True))].append(r)
    rows = []
    for (model, settings), records in groups.items():
        ok = [r for r in records if r["status"] == "ok"]
        val = [r["metrics"][r["scores"][0]]["validation_auc"] for r in ok]
        rows.append({"model": model, "settings": json.loads(settings), "runs": len(records),
                     "diverged": len(records) - len(ok),
                     # a setting that diverges anywhere is not a candidate
                     "validation_auc": float(np.mean(val)) if val and len(ok) == len(records) else None})
    best: dict[str, dict] = {}
    for row in rows:
        if row["validation_auc"] is None:
            continue
        if row["model"] not in best or row["validation_auc"] > best[row["model"]]["validation_auc"]:
            best[row["model"]] = row
    return best, sorted(rows, key=lambda r: (r["model"], -(r["validation_auc"] or -1)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--write", type=Path, default=None, help="the tuned.toml to (re)write")
    parser.add_argument("--block", default="selected",
                        help="the name of the block to replace, between '# >>> NAME' and '# <<< NAME'")
    args = parser.parse_args()
    best, rows = select(args.directory)
    print(f"{'model':<11} {'val AUC':>8}  runs  settings")
    for row in rows:
        mark = "*" if best.get(row["model"]) is row else " "
        auc = "diverged" if row["validation_auc"] is None else f"{row['validation_auc']:.4f}"
        print(f"{mark}{row['model']:<10} {auc:>8}  {row['runs']:>4}  {row['settings']}")
    atomic_write_text(args.directory / "selection.json", json.dumps({"best": best, "all": rows}, indent=1))
    if args.write is not None:
        text = args.write.read_text(encoding="utf-8")
        start = text.index(f"# >>> {args.block}")
        end = text.index(f"# <<< {args.block}")
        lines = [f"# >>> {args.block} by benchmarks/select_tuned.py {args.directory.as_posix()} "
                 "(validation AUC; do not edit by hand)"]
        for model in sorted(best):
            lines.append(f"[models.{model}]  # validation AUC {best[model]['validation_auc']:.4f}")
            for key, value in sorted(best[model]["settings"].items()):
                lines.append(f"{key} = {json.dumps(value)}")
        atomic_write_text(args.write, text[:start] + "\n".join(lines) + "\n" + text[end:])
        print(f"wrote the selection into {args.write}")


if __name__ == "__main__":
    main()
