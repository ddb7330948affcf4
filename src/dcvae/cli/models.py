"""``dcvae fit``, ``dcvae score`` and ``dcvae sample``: train a detector on normal data, score new data
with it, draw from its generative model."""

from __future__ import annotations

import contextlib
import csv
import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import click
import numpy as np
from filelock import FileLock, Timeout
from PIL import Image

from dcvae.cli.main import main
from dcvae.cli.options import (
    build_detector,
    condition_labels,
    data_options,
    detector_settings,
    device_option,
    load_user_data,
    model_options,
    note,
    one_source,
    threads_option,
)
from dcvae.data import DataFileError, load_dataset
from dcvae.data.images import read_image
from dcvae.detector import AnomalyDetector
from dcvae.evaluation.protocols import PROTOCOLS, make_protocol
from dcvae.export.runtime import OnnxDetector
from dcvae.io.atomic import atomic_file, atomic_write_text
from dcvae.models import VAE
from dcvae.models.generation import image_grid
from dcvae.models.generation import traverse as traversals
from dcvae.report.maps import contact_sheet, map_scale, overlay
from dcvae.training.config import MAX_SEED

CHECKPOINT_FILE = "checkpoint.safetensors"


@main.command()
@data_options
@click.option("--protocol", type=click.Choice(sorted(PROTOCOLS)), default=None,
              help="With --dataset: train on the normal data of this protocol.")
@click.option("--class", "target_class", type=int, default=None,
              help="With --protocol: the held-out (leave-one-out) or normal (one-class) class.")
@click.option("--train-size", type=click.IntRange(min=2), default=None,
              help="Stratified subsample of the normal training data.")
@model_options
@click.option("--checkpoint-every", type=click.IntRange(min=1), default=None, metavar="N",
              help="Write a resumable checkpoint to OUT/checkpoint.safetensors every N epochs.")
@click.option("--resume", is_flag=True,
              help="Continue from OUT/checkpoint.safetensors (same data and options).")
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="Directory to save the model in.")
@click.option("--overwrite", is_flag=True,
              help="Replace the model (or the checkpoint) already in OUT.")
def fit(**kw: Any) -> None:
    """Train a detector on normal data and save it as a model directory."""
    source = one_source(kw)
    model, out, seed, quiet = kw.pop("model"), kw.pop("out"), kw.pop("seed"), kw.pop("quiet")
    every, resume, overwrite = kw.pop("checkpoint_every"), kw.pop("resume"), kw.pop("overwrite")
    checkpoint = out / CHECKPOINT_FILE
    ours = (out / "config.json").exists() or checkpoint.exists()
    if out.exists() and (not out.is_dir() or (any(not _ours_hidden(p) for p in out.iterdir()) and not ours)):
        raise click.UsageError(f"--out {out} exists, is not empty and holds no dcvae model; "
                               "refusing to write into it")
    if source == "dataset" and (kw["protocol"] is None or kw["target_class"] is None):
        raise click.UsageError("--dataset needs --protocol and --class to say what is normal")
    # options are checked here, before any data is read or any directory is made
    detector = build_detector(model, detector_settings(kw), seed=seed, quiet=quiet)
    if not out.exists() and resume:
        raise click.UsageError(f"--resume: no checkpoint at {checkpoint}")
    with _exclusive(out):  # what OUT holds is read under the lock: another fit may just have saved
        for stale in out.glob(".*.tmp"):  # a killed write's temporary file; no one else writes here now
            stale.unlink()
        trained = (out / "config.json").exists()
        if (trained or checkpoint.exists()) and not (resume or overwrite):  # never lost silently
            held = "a trained model" if trained else "the checkpoint of an unfinished run"
            hint = " or --resume to continue from its checkpoint" if checkpoint.exists() else ""
            raise click.UsageError(f"--out {out} holds {held}; pass --overwrite to replace it{hint}")
        if resume and not checkpoint.exists():
            raise click.UsageError(f"--resume: no checkpoint at {checkpoint}")
        use_checkpoint = every is not None or resume
        if source == "dataset":
            data = load_dataset(kw["dataset"], kw["data_dir"])
            for message in data.notes:
                note(message)
            split = make_protocol(kw["protocol"], data, kw["target_class"], seed=seed,
                                  train_size=kw["train_size"])
            x = split.train.x
            fit_args: dict[str, Any] = {"c": split.train.y, "condition_names": split.condition_names,
                                        "validation": (split.validation.x, split.validation.y)}
        else:
            user, names, _, read, _ = load_user_data(kw)
            x = user.x
            fit_args = {"c": condition_labels(user, names)}
        start = time.perf_counter()
        detector.fit(x, **fit_args, checkpoint=checkpoint if use_checkpoint else None,
                     checkpoint_every=every or 1, resume=resume)
        seconds = time.perf_counter() - start
        if source != "dataset":  # `dcvae score` reads new files the same way
            detector.input_.update(read)
        detector.save(out)
        n_val = len(detector.validation_scores_["marginal"])
        n_fit = len(x) if "validation" in fit_args else len(x) - n_val  # counted as evaluate counts
        click.echo(f"trained {model} on {n_fit} samples ({n_val} more held out for validation and the "
                   f"threshold) for {len(detector.history_.epochs)} epochs in {seconds:.1f} s; threshold "
                   f"{detector.threshold_:.4g}; saved to {out}")


FIT_LOCK = ".dcvae-fit.lock"


def _ours_hidden(path: Path) -> bool:
    """Files a fit leaves beside a model: its lock, and the temporary file of a killed write."""
    return path.name == FIT_LOCK or (path.name.startswith(".") and path.name.endswith(".tmp"))


@contextlib.contextmanager
def _exclusive(out: Path) -> Iterator[None]:
    """One fit at a time into ``out`` (made if need be): a second one is refused, never silently
    replaced. A fit that fails leaves no folder it made and left empty."""
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(out / FIT_LOCK))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise click.UsageError(f"--out {out}: another dcvae fit is writing to it; wait for it to end "
                               "or choose another --out") from None
    try:
        yield
    except BaseException:
        if created and all(p.name == FIT_LOCK for p in out.iterdir()):
            (out / FIT_LOCK).unlink(missing_ok=True)
            out.rmdir()
        raise
    finally:
        lock.release()


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
    _refuse_to_overwrite_inputs(out, model_dir or cast(Path, onnx_file), root, kw.get("array_file"))
    detector: AnomalyDetector | OnnxDetector
    if model_dir is not None:
        detector = AnomalyDetector.load(model_dir, device=device)
    else:
        detector = OnnxDetector(cast(Path, onnx_file))
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
        assert isinstance(detector, AnomalyDetector)  # --maps is refused with --onnx
        written = _write_maps(maps_dir, detector, x, conditions, scores, ids)
        click.echo(f"wrote {written} anomaly maps and contact-sheet.png to {maps_dir}")
    if skipped:
        note(f"skipped {len(skipped)} unreadable image(s), listed in {out} with the reason "
             f"(the first: {skipped[0]}); --strict fails on them instead")


def _refuse_to_overwrite_inputs(out: Path, model_dir: Path, images: Path | None,
                                array_file: Path | None) -> None:
    """The scores never replace what they come from: the model's files, the array file, an image."""
    target = out.resolve()
    if target.is_relative_to(model_dir.resolve()):
        what = "model directory" if model_dir.is_dir() else "model file"
        raise click.UsageError(f"--out {out} lies inside the {what} {model_dir}; write the "
                               "scores elsewhere")
    if (array_file is not None and target == Path(array_file).resolve()) or (
            images is not None and target.is_relative_to(Path(images).resolve()) and target.exists()):
        raise click.UsageError(f"--out {out} is a file being scored; write the scores elsewhere")


@main.command()
@click.argument("model_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--n", "n", type=click.IntRange(1, 1024), default=64, show_default=True,
              help="How many samples (a square-ish grid).")
@click.option("--condition", default=None, metavar="NAME",
              help="Sample this condition (conditional models); default: each sample's drawn at random.")
@click.option("--traverse", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              metavar="IMAGE", help="Instead of samples: latent traversals around this image's code, one "
                                    "row per latent dimension swept over ±3 prior standard deviations.")
@click.option("--seed", type=click.IntRange(0, MAX_SEED), default=0, show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="PNG file to write.")
@device_option
@threads_option
def sample(model_dir: Path, n: int, condition: str | None, traverse: Path | None, seed: int, out: Path,
           device: str) -> None:
    """Draw samples of a trained VAE (or latent traversals) as one PNG grid."""
    _refuse_to_overwrite_inputs(out, model_dir, None, traverse)
    detector = AnomalyDetector.load(model_dir, device=device)
    model = detector._fitted()
    if not isinstance(model, VAE):
        raise click.UsageError(f"{model.name} is a classical detector: it has no generative model to "
                               "sample from")
    shape = tuple(model.config.input_shape)
    if len(shape) != 3:
        raise click.UsageError(f"{model_dir} was trained on feature vectors {shape}; only image models "
                               "draw a picture")
    names = tuple(model.config.condition_names)
    if condition is not None and condition not in names:
        raise click.UsageError(f"--condition {condition!r}: the model's conditions are {list(names)[:20]}")
    if traverse is not None:  # the seed image read as a folder of the model's is read
        seed_image = read_image(traverse, size=(shape[1], shape[2]), mode="L" if shape[0] == 1 else "RGB")
        index = names.index(condition) if condition is not None else None
        grid = traversals(model, seed_image, index)
        what = f"traversals of {model.config.latent_dim} latent dimensions"
    else:
        x = detector.sample(n, condition, seed=seed)
        cols = int(np.ceil(np.sqrt(n)))
        padded = np.ones((cols * int(np.ceil(n / cols)), *shape), dtype=np.float32)
        padded[:n] = x
        grid = padded.reshape(-1, cols, *shape)
        what = f"{n} samples" + (f" of condition {condition!r}" if condition else "")
    _write_png(out, image_grid(grid))
    click.echo(f"wrote {what} to {out}")


def _write_maps(folder: Path, detector: AnomalyDetector, x: np.ndarray, conditions: np.ndarray | None,
                scores: np.ndarray, ids: list[str]) -> int:
    """Each image's overlay at its own relative path (``.png``) and the contact sheet, all on one
    colour scale; every file written atomically."""
    maps = detector.anomaly_map(x, conditions)
    if maps.ndim != 4:
        raise click.UsageError("--maps: the model was trained on feature vectors, not images")
    images = x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32)
    scale = map_scale(maps)
    folder.mkdir(parents=True, exist_ok=True)
    for image, amap, name in zip(images, maps, ids, strict=True):
        target = (folder / name).with_suffix(".png")
        target.parent.mkdir(parents=True, exist_ok=True)
        _write_png(target, overlay(image, amap, scale))
    _write_png(folder / "contact-sheet.png", contact_sheet(images, maps, scores, scale=scale))
    return len(ids)


def _write_png(path: Path, picture: np.ndarray) -> None:
    with atomic_file(path) as fh:
        Image.fromarray(picture[..., 0] if picture.shape[-1] == 1 else picture).save(fh, format="PNG")
