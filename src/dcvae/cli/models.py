"""``dcvae fit`` and ``dcvae sample``: train a detector on normal data, draw from its generative
model. (``dcvae score`` is ``dcvae.cli.score``: it runs without PyTorch on an ONNX export.)"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import numpy as np
from filelock import FileLock, Timeout

from dcvae.cli.inputs import (
    condition_labels,
    data_options,
    device_option,
    load_user_data,
    note,
    one_source,
    refuse_to_overwrite_inputs,
    threads_option,
    write_png,
)
from dcvae.cli.main import main
from dcvae.cli.options import build_detector, detector_settings, model_options, tracking_options
from dcvae.data import load_dataset
from dcvae.data.images import read_image
from dcvae.detector import AnomalyDetector
from dcvae.evaluation.protocols import PROTOCOLS, make_protocol
from dcvae.models import VAE
from dcvae.models.generation import image_grid
from dcvae.models.generation import traverse as traversals
from dcvae.tracking import tracking
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
@tracking_options
def fit(**kw: Any) -> None:
    """Train a detector on normal data and save it as a model directory."""
    source = one_source(kw)
    model, out, seed, quiet = kw.pop("model"), kw.pop("out"), kw.pop("seed"), kw.pop("quiet")
    every, resume, overwrite = kw.pop("checkpoint_every"), kw.pop("resume"), kw.pop("overwrite")
    track_to = {"mlflow": kw.pop("mlflow_uri"), "tensorboard": kw.pop("tensorboard_dir")}
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
        with tracking(mlflow=track_to["mlflow"], tensorboard=track_to["tensorboard"],
                      run_name=f"fit {model}") as track:  # a bad store fails here, before any data
            if source == "dataset":
                data = load_dataset(kw["dataset"], kw["data_dir"])
                for message in data.notes:
                    note(message)
                split = make_protocol(kw["protocol"], data, kw["target_class"], seed=seed,
                                      train_size=kw["train_size"])
                x = split.train.x
                fit_args: dict[str, Any] = {"c": split.train.y, "condition_names": split.condition_names,
                                            "validation": (split.validation.x, split.validation.y)}
                source_params = {"dataset": data.name, "protocol": kw["protocol"],
                                 "class": kw["target_class"], "train_size": kw["train_size"]}
            else:
                source_params = {"images": kw["images"], "array": kw["array_file"]}
                user, names, _, read, _ = load_user_data(kw)
                x = user.x
                fit_args = {"c": condition_labels(user, names)}
                source_params.update(read)
            track.log_params({**detector.get_params(), "data": source_params})
            start = time.perf_counter()
            detector.fit(x, **fit_args, checkpoint=checkpoint if use_checkpoint else None,
                         checkpoint_every=every or 1, resume=resume)
            seconds = time.perf_counter() - start
            if source != "dataset":  # `dcvae score` reads new files the same way
                detector.input_.update(read)
            detector.save(out)
            n_val = len(detector.validation_scores_["marginal"])
            n_fit = len(x) if "validation" in fit_args else len(x) - n_val  # counted as evaluate counts
            track.log_history(detector.history_)
            track.log_metrics({"train_seconds": seconds, "n_train": n_fit, "n_validation": n_val,
                               "threshold": detector.threshold_})
            track.log_model_dir(out)
        epochs = len(detector.history_.epochs)  # a classical detector fits without epochs
        click.echo(f"trained {model} on {n_fit} samples ({n_val} more held out for validation and the "
                   f"threshold){f' for {epochs} epochs' if epochs else ''} in {seconds:.1f} s; threshold "
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
    refuse_to_overwrite_inputs(out, model_dir, None, traverse)
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
    write_png(out, image_grid(grid))
    click.echo(f"wrote {what} to {out}")
