"""Rewrite a results store with each record's ROC curve kept for its headline score only.

    python benchmarks/compact_records.py benchmarks/results/epochs10

Records written before dcvae 0.2 kept a 51-point ROC curve for every score; the report draws the
headline score's only, and the library now records only that one. Every other field (every
score's AUC, average precision, F1, threshold, validation AUC) is kept as it is, and so are the
keys, so the store still resumes. The final loss terms (``final_terms``, read by no table) are
kept to 6 significant digits. The file is replaced atomically.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from dcvae.benchmark.store import RESULTS_FILE, ResultStore
from dcvae.io.atomic import atomic_write_text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path)
    args = parser.parse_args()
    path = args.directory / RESULTS_FILE
    before = path.stat().st_size
    records = ResultStore(args.directory).records()
    dropped = 0
    for record in records:
        headline = record["scores"][0] if record.get("scores") else None
        for score, metrics in record.get("metrics", {}).items():
            if score != headline and "roc_tpr" in metrics:
                del metrics["roc_tpr"]
                dropped += 1
        if isinstance(record.get("final_terms"), dict):
            record["final_terms"] = {k: float(f"{v:.6g}") if isinstance(v, float) else v
                                     for k, v in record["final_terms"].items()}
    text = "".join(json.dumps(r, sort_keys=True, allow_nan=False) + "\n" for r in records)
    atomic_write_text(path, text)
    print(f"{path}: {len(records)} records, {dropped} ROC curves of non-headline scores dropped, "
          f"{before:,} -> {path.stat().st_size:,} bytes")


if __name__ == "__main__":
    main()
