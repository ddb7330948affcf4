"""``dcvae score``: score new data with a saved model, or with an ONNX export and onnxruntime alone.

This module imports no PyTorch: the model directory's path imports the detector when it is taken,
so ``dcvae score --onnx FILE`` runs where only onnxruntime and NumPy are installed.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import click
import numpy as np

from dcvae.cli.inputs import (
    data_options,
    device_option,
    load_user_data,
    note,
    one_source,
    refuse_to_overwrite_inputs,
    threads_given,
    threads_option,
    write_png,
)
from dcvae.cli.main import main
from dcvae.data import DataFileError, load_dataset
from dcvae.export.runtime import OnnxDetector
from dcvae.io.atomic import atomic_write_text
from dcvae.training.device import DEFAULT_DEVICE

if TYPE_CHECKING:
    from dcvae.detector import AnomalyDetector


@main.command()
@click.argument("model_dir", type=click.Path(exists=True, file_okay=False, path_type=Path), required=False)
@click.option("--onnx", "onnx_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="Score with a file of `dcvae export --format onnx` (onnxruntime) instead "
                                 "of MODEL_DIR.")
@data_options
@click.option("--split", type=click.Choice(["train", "test"]), default="test", show_default=True,
              help="With --dataset: which split to score.")
@click.option("--given", is_flag=True,
              help="Score conditional models with the data's own conditions (given mode) "
                   "instead of the minimum over all training conditions (marginal mode).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="CSV file to write: index, file (for images), label, score, anomaly, error (why an "
                   "image was skipped).")
@click.option("--maps", "maps_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="With --images: write each image's anomaly map as a heat-map PNG here (same relative "
                   "path), and contact-sheet.png of the 16 most anomalous images beside their maps.")
@click.option("--strict", is_flag=True,
              help="Fail on an unreadable image instead of skipping it (skipped images are listed in "
                   "the CSV with the reason).")
@device_option
@threads_option
def score(model_dir: Path | None, onnx_file: Path | None, split: str, given: bool, out: Path,
          maps_dir: Path | None, strict: bool, device: str, **kw: Any) -> None:
    """Score data with a saved model (MODEL_DIR, or an exported --onnx FILE); writes a CSV (higher
    score = more anomalous)."""
    if (model_dir is None) == (onnx_file is None):
        raise click.UsageError("give a MODEL_DIR or --onnx FILE to score with (one of them)")
    if onnx_file is not None and maps_dir is not None:
        raise click.UsageError("--maps needs the model directory: an ONNX export computes scores only")
    source, root = one_source(kw), kw.get("images")
    if maps_dir is not None and root is None:
        raise click.UsageError("--maps needs --images: a map is drawn over each image file")
    if maps_dir is not None and root is not None and maps_dir.resolve().is_relative_to(Path(root).resolve()):
        raise click.UsageError(f"--maps {maps_dir} lies inside the image folder being scored; write the "
                               "maps elsewhere")
    refuse_to_overwrite_inputs(out, model_dir or cast(Path, onnx_file), root, kw.get("array_file"))
    detector: AnomalyDetector | OnnxDetector
    if model_dir is not None:
        from dcvae.detector import AnomalyDetector  # here: an ONNX file is scored without PyTorch

        detector = AnomalyDetector.load(model_dir, device=device)
    else:
        if device != DEFAULT_DEVICE:
            raise click.UsageError(f"--device {device} is for MODEL_DIR: an ONNX file is scored by "
                                   "onnxruntime on the CPU")
        detector = OnnxDetector(cast(Path, onnx_file), threads=threads_given())
    skipped: tuple[DataFileError, ...]
    if source == "dataset":
        data = load_dataset(kw["dataset"], kw["data_dir"])
        for message in data.notes:
            note(message)
        part = data.train if split == "train" else data.test
        x, labels, names = part.x, part.y, data.class_names
        ids, skipped = [""] * len(part), ()
    else:
        user, names, ids, _, skipped = load_user_data(kw, like=detector, skip_unreadable=not strict)
        x, labels = user.x, user.y
    conditions = None
    if given:
        if not names or (labels < 0).any():
            raise click.UsageError("--given needs data with a condition for every sample")
        conditions = np.array([names[i] for i in labels])
    scores = detector.decision_function(x, conditions)
    mode = "given" if given else "marginal"
    flags = (scores > detector.thresholds_[mode]).astype(int)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["index", "file", "label", "score", "anomaly", "error"])
    for i, (label, s, flag) in enumerate(zip(labels, scores, flags, strict=True)):
        writer.writerow([i, ids[i], names[label] if label >= 0 and names else "", repr(float(s)), flag, ""])
    for err in skipped:  # after the scored rows: a file that could not be read, and why
        writer.writerow(["", Path(err.path).relative_to(root).as_posix() if root else err.path, "", "", "",
                         err.problem])
    atomic_write_text(out, buffer.getvalue())
    click.echo(f"scored {len(scores)} samples ({mode} mode); {int(flags.sum())} flagged as "
               f"anomalies at threshold {detector.thresholds_[mode]:.4g}; wrote {out}")
    if maps_dir is not None:
        assert not isinstance(detector, OnnxDetector)  # --maps is refused with --onnx
        written = _write_maps(maps_dir, detector, x, conditions, scores, ids)
        click.echo(f"wrote {written} anomaly maps and contact-sheet.png to {maps_dir}")
    if skipped:
        note(f"skipped {len(skipped)} unreadable image(s), listed in {out} with the reason "
             f"(the first: {skipped[0]}); --strict fails on them instead")


def _write_maps(folder: Path, detector: AnomalyDetector, x: np.ndarray, conditions: np.ndarray | None,
                scores: np.ndarray, ids: list[str]) -> int:
    """Each image's overlay at its own relative path (``.png``) and the contact sheet, all on one
    colour scale; every file written atomically."""
    from dcvae.report.maps import contact_sheet, map_scale, overlay

    maps = detector.anomaly_map(x, conditions)
    if maps.ndim != 4:
        raise click.UsageError("--maps: the model was trained on feature vectors, not images")
    images = x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32)
    scale = map_scale(maps)
    folder.mkdir(parents=True, exist_ok=True)
    for image, amap, name in zip(images, maps, ids, strict=True):
        target = (folder / name).with_suffix(".png")
        target.parent.mkdir(parents=True, exist_ok=True)
        write_png(target, overlay(image, amap, scale))
    write_png(folder / "contact-sheet.png", contact_sheet(images, maps, scores, scale=scale))
    return len(ids)
