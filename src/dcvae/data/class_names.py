"""The class names of the benchmark datasets: built in, or read from the files that ship with them."""

from __future__ import annotations

import csv
import string
from pathlib import Path

from .errors import DataFileError

__all__ = ["DIGITS", "EMNIST_MERGED", "FASHION_CLASSES", "KMNIST_CLASSES", "LETTERS", "LOWER", "UPPER",
           "read_emnist_mapping", "read_kmnist_classmap"]

DIGITS = tuple(string.digits)
UPPER = tuple(string.ascii_uppercase)
LOWER = tuple(string.ascii_lowercase)
# Official EMNIST label orders (as in the emnist-<split>-mapping.txt files of gzip.zip).
# ByMerge/Balanced merge the 15 lowercase letters that look like their capitals.
EMNIST_MERGED = tuple("abdefghnqrt")
LETTERS = tuple(f"{u}/{lo}" for u, lo in zip(UPPER, LOWER, strict=True))

FASHION_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
# Official romanised KMNIST class names (rois-codh/kmnist README, kmnist_classmap.csv order).
KMNIST_CLASSES = ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo")


def read_emnist_mapping(path: Path) -> dict[int, str]:
    """Parse ``emnist-<split>-mapping.txt``: lines ``label code [code ...]`` (ASCII codes)."""
    out: dict[int, str] = {}
    try:
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as err:
        raise DataFileError(path, f"cannot read the mapping ({err})") from err
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split()
        try:
            label, codes = int(fields[0]), [int(f) for f in fields[1:]]
            names = "/".join(chr(c) for c in codes)
        except (ValueError, OverflowError) as err:
            raise DataFileError(
                path, f"line {lineno}: expected 'label ascii_code ...', found {line!r}"
            ) from err
        if not codes:
            raise DataFileError(path, f"line {lineno}: no character code for label {label}")
        out[label] = names
    return out


def read_kmnist_classmap(path: Path) -> dict[int, str]:
    """Parse ``kmnist_classmap.csv`` (``index,codepoint,char``) into label -> character."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            rows = list(csv.DictReader(f))
        return {int(row["index"]): row["char"].strip() for row in rows}
    except (OSError, UnicodeDecodeError, KeyError, ValueError, TypeError, csv.Error) as err:
        raise DataFileError(
            path, f"expected CSV columns index,codepoint,char with integer index ({err!r})"
        ) from err

