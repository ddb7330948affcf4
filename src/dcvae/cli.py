"""The ``dcvae`` command: fit, score, evaluate, demo, list.

Every error a user can cause (bad data, unknown names, corrupt files, a diverging loss) is printed
as one line without a traceback, with a non-zero exit status.
"""

from __future__ import annotations

import csv
import io
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import numpy as np

from dcvae import __version__
from dcvae.atomic import atomic_write_text
from dcvae.config import ConfigError
from dcvae.data import (
    DATASETS,
    DataFileError,
    DatasetNotFoundError,
    LabelledArray,
    load_array_file,
    load_dataset,
    load_image_folder,
)
from dcvae.data.user import list_image_files
from dcvae.detector import AnomalyDetector, NotFittedError
from dcvae.experiment import evaluate_protocol
from dcvae.models import MODELS
from dcvae.persistence import ModelFileError
from dcvae.protocols import PROTOCOLS, make_protocol
from dcvae.score_family import BASE_SCORES, DEFAULT_SCORE, parse_score
from dcvae.training import TrainingDivergedError

CHECKPOINT_FILE = "checkpoint.safetensors"
USER_ERRORS = (ValueError, ConfigError, DatasetNotFoundError, DataFileError, ModelFileError,
               TrainingDivergedError, NotFittedError, FileNotFoundError, PermissionError)


class _Group(click.Group):
    """Turns the library's user-facing errors into ``Error: ...`` and exit status 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except USER_ERRORS as err:
            raise click.ClickException(str(err)) from None


def _note(message: str) -> None:
    click.echo(f"note: {message}", err=True)


def _parse_params(values: tuple[str, ...]) -> dict[str, Any]:
    """--param KEY=VALUE, VALUE read as JSON when it parses (numbers, lists), else as text."""
    out: dict[str, Any] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint="--param")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out


def _check_score(ctx: click.Context, param: click.Parameter, value: str) -> str:
    try:
        return parse_score(value).name
    except ValueError as err:
        raise click.BadParameter(str(err)) from None


def _model_options(f: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--model", "model", type=click.Choice(sorted(MODELS)), default="dcvae",
                     show_default=True, help="Which model to train."),
        click.option("--backbone", type=click.Choice(["mlp", "conv"]), default="mlp",
                     show_default=True),
        click.option("--latent-dim", type=click.IntRange(min=1), default=16, show_default=True),
        click.option("--beta", type=float, default=None,
                     help="KL weight (beta-vae, dcvae) or TC weight (beta-tcvae)."),
        click.option("--gamma", type=float, default=None,
                     help="TC weight (dcvae's conditional TC, factorvae, rfvae, beta-tcvae's dim-KL)."),
        click.option("--param", "params", multiple=True, metavar="KEY=VALUE",
                     help="Any other model hyper-parameter, e.g. --param lambda_max=10."),
        click.option("--epochs", type=click.IntRange(min=1), default=20, show_default=True),
        click.option("--batch-size", type=click.IntRange(min=1), default=128, show_default=True),
        click.option("--lr", type=float, default=1e-3, show_default=True,
                     help="Primary learning rate."),
        click.option("--secondary-lr", type=float, default=1e-4, show_default=True,
                     help="Discriminator learning rate (factorvae, rfvae)."),
        click.option("--patience", type=click.IntRange(min=0), default=5, show_default=True,
                     help="Early-stopping patience in epochs (0 = off)."),
        click.option("--seed", type=int, default=0, show_default=True),
        click.option("--score", default=DEFAULT_SCORE, show_default=True, callback=_check_score,
                     help="Anomaly score: recon, elbo, kl, prior, ic-elbo; 'typical-' before one "
                          "(e.g. typical-elbo); several joined by '+' (e.g. recon+kl). See `dcvae list`."),
        click.option("--contamination", type=click.FloatRange(0.0, 0.5), default=0.05,
                     show_default=True, help="Expected anomaly fraction; sets the threshold."),
        click.option("--device", default="cpu", show_default=True),
        click.option("--precision", type=click.Choice(["fp32", "bf16"]), default="fp32",
                     show_default=True, help="bf16: matrix products in bfloat16 (autocast)."),
        click.option("--quiet", is_flag=True, help="No progress bar."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _detector_kwargs(kw: dict[str, Any]) -> dict[str, Any]:
    """Collect the model/training options shared by fit and evaluate."""
    hyper = _parse_params(kw.pop("params"))
    for name in ("beta", "gamma"):
        value = kw.pop(name)
        if value is not None:
            hyper[name] = value
    return {
        "latent_dim": kw.pop("latent_dim"), "backbone": kw.pop("backbone"),
        "epochs": kw.pop("epochs"), "batch_size": kw.pop("batch_size"), "lr": kw.pop("lr"),
        "secondary_lr": kw.pop("secondary_lr"), "patience": kw.pop("patience"),
        "score": kw.pop("score"), "contamination": kw.pop("contamination"),
        "device": kw.pop("device"), "precision": kw.pop("precision"),
        "progress": not kw.pop("quiet"), **hyper,
    }


def _data_options(f: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--dataset", type=click.Choice(sorted(DATASETS)), default=None,
                     help="A named dataset."),
        click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                     help="Where dataset files are looked for first (then $DCVAE_DATA, the user "
                          "cache, /usr/share/datasets)."),
        click.option("--images", type=click.Path(exists=True, file_okay=False, path_type=Path),
                     default=None, help="A folder of images, one subfolder per condition."),
        click.option("--array", "array_file",
                     type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
                     help="A .npy, .npz or .csv file of samples."),
        click.option("--condition-column", default=None,
                     help="CSV column (name or index) holding the condition."),
        click.option("--size", default=None, metavar="HxW", help="Resize images to H×W."),
        click.option("--no-conditions", is_flag=True,
                     help="Ignore subfolder/column conditions (treat all data as one condition)."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _parse_size(size: str | None) -> tuple[int, int] | None:
    if size is None:
        return None
    try:
        h, w = (int(v) for v in size.lower().split("x"))
    except ValueError:
        raise click.BadParameter(f"expected HxW such as 28x28, got {size!r}",
                                 param_hint="--size") from None
    if h < 1 or w < 1:
        raise click.BadParameter(f"sizes must be positive, got {size!r}", param_hint="--size")
    return h, w


def _load_user_data(kw: dict[str, Any]) -> tuple[LabelledArray, tuple[str, ...], list[str]]:
    """The samples named by --images or --array: (data, condition names, file of each sample)."""
    images, array_file = kw.pop("images"), kw.pop("array_file")
    column, size = kw.pop("condition_column"), _parse_size(kw.pop("size"))
    if images is not None:
        data, names = load_image_folder(images, size=size)
        ids = [f.relative_to(images).as_posix() for f in list_image_files(images)]
    else:
        col: str | int | None = column
        if column is not None and column.isdigit():
            col = int(column)
        data, names = load_array_file(array_file, condition_column=col)
        ids = [""] * len(data)
    if kw.pop("no_conditions") or not names:
        data, names = LabelledArray(data.x, np.full(len(data), -1, dtype=np.int64)), ()
    return data, names, ids


def _one_source(kw: dict[str, Any]) -> str:
    given = [k for k in ("dataset", "images", "array_file") if kw.get(k) is not None]
    if len(given) != 1:
        raise click.UsageError("give exactly one of --dataset, --images or --array")
    return given[0]


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="dcvae")
def main() -> None:
    """Unsupervised anomaly detection with disentangled conditional VAEs (dCVAE) and baselines."""


@main.command()
@_data_options
@click.option("--protocol", type=click.Choice(sorted(PROTOCOLS)), default=None,
              help="With --dataset: train on the normal data of this protocol.")
@click.option("--class", "target_class", type=int, default=None,
              help="With --protocol: the held-out (leave-one-out) or normal (one-class) class.")
@click.option("--train-size", type=click.IntRange(min=2), default=None,
              help="Stratified subsample of the normal training data.")
@_model_options
@click.option("--checkpoint-every", type=click.IntRange(min=1), default=None, metavar="N",
              help="Write a resumable checkpoint to OUT/checkpoint.safetensors every N epochs.")
@click.option("--resume", is_flag=True,
              help="Continue from OUT/checkpoint.safetensors (same data and options).")
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="Directory to save the model in.")
def fit(**kw: Any) -> None:
    """Train a detector on normal data and save it as a model directory."""
    source = _one_source(kw)
    model, out, seed = kw.pop("model"), kw.pop("out"), kw["seed"]
    every, resume = kw.pop("checkpoint_every"), kw.pop("resume")
    checkpoint = out / CHECKPOINT_FILE
    ours = (out / "config.json").exists() or checkpoint.exists()
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not ours)):
        raise click.UsageError(f"--out {out} exists, is not empty and holds no dcvae model; "
                               "refusing to write into it")
    if resume and not checkpoint.exists():
        raise click.UsageError(f"--resume: no checkpoint at {checkpoint}")
    if source == "dataset" and (kw["protocol"] is None or kw["target_class"] is None):
        raise click.UsageError("--dataset needs --protocol and --class to say what is normal")
    # options are checked here, before any data is read or any directory is made
    detector = AnomalyDetector(model, seed=kw.pop("seed"), **_detector_kwargs(kw))
    use_checkpoint = every is not None or resume
    if use_checkpoint:
        out.mkdir(parents=True, exist_ok=True)
    validation = None
    names: tuple[str, ...] | None
    if source == "dataset":
        data = load_dataset(kw["dataset"], kw["data_dir"])
        for message in data.notes:
            _note(message)
        split = make_protocol(kw["protocol"], data, kw["target_class"], seed=seed,
                              train_size=kw["train_size"])
        x, c, names = split.train.x, split.train.y, split.condition_names
        validation = (split.validation.x, split.validation.y)
    else:
        user, user_names, _ = _load_user_data(kw)
        x, names = user.x, user_names or None
        c = user.y if user_names else None
    start = time.perf_counter()
    detector.fit(x, c, condition_names=names, validation=validation,
                 checkpoint=checkpoint if use_checkpoint else None,
                 checkpoint_every=every or 1, resume=resume)
    seconds = time.perf_counter() - start
    detector.save(out)
    assert detector.history_ is not None
    click.echo(f"trained {model} on {len(x)} samples for {len(detector.history_.epochs)} epochs "
               f"in {seconds:.1f} s; threshold {detector.threshold_:.4g}; saved to {out}")


@main.command()
@click.argument("model_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@_data_options
@click.option("--split", type=click.Choice(["train", "test"]), default="test", show_default=True,
              help="With --dataset: which split to score.")
@click.option("--given", is_flag=True,
              help="Score conditional models with the data's own conditions (given mode) "
                   "instead of the minimum over all training conditions (marginal mode).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="CSV file to write: index, file (for images), label, score, anomaly.")
def score(model_dir: Path, split: str, given: bool, out: Path, **kw: Any) -> None:
    """Score data with a saved model; writes a CSV (higher score = more anomalous)."""
    source = _one_source(kw)
    detector = AnomalyDetector.load(model_dir)
    if source == "dataset":
        data = load_dataset(kw["dataset"], kw["data_dir"])
        for message in data.notes:
            _note(message)
        part = data.train if split == "train" else data.test
        x, labels, names = part.x, part.y, data.class_names
        ids = [""] * len(part)
    else:
        user, names, ids = _load_user_data(kw)
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
    writer.writerow(["index", "file", "label", "score", "anomaly"])
    for i, (label, s, flag) in enumerate(zip(labels, scores, flags, strict=True)):
        writer.writerow([i, ids[i], names[label] if label >= 0 and names else "", repr(float(s)), flag])
    atomic_write_text(out, buffer.getvalue())
    click.echo(f"scored {len(scores)} samples ({mode} mode); {int(flags.sum())} flagged as "
               f"anomalies at threshold {detector.thresholds_[mode]:.4g}; wrote {out}")


@main.command()
@click.option("--dataset", type=click.Choice(sorted(DATASETS)), required=True)
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None)
@click.option("--protocol", type=click.Choice(sorted(PROTOCOLS)), default="leave-one-out",
              show_default=True)
@click.option("--class", "target_class", type=int, required=True,
              help="Held-out class (leave-one-out) or normal class (one-class).")
@click.option("--train-size", type=click.IntRange(min=2), default=None,
              help="Stratified subsample of the normal training data for quick runs.")
@_model_options
@click.option("--save", "save_dir", type=click.Path(path_type=Path), default=None,
              help="Also save the trained model here.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def evaluate(**kw: Any) -> None:
    """Fit on a protocol's normal training data, score its test split, print the metrics."""
    data = load_dataset(kw.pop("dataset"), kw.pop("data_dir"))
    for message in data.notes:
        _note(message)
    model, save_dir, as_json = kw.pop("model"), kw.pop("save_dir"), kw.pop("as_json")
    result, detector = evaluate_protocol(
        data, model=model, protocol=kw.pop("protocol"), target_class=kw.pop("target_class"),
        seed=kw.pop("seed"), train_size=kw.pop("train_size"), **_detector_kwargs(kw))
    if save_dir is not None:
        detector.save(save_dir)
    if as_json:
        click.echo(json.dumps(result.to_dict()))
        return
    click.echo(
        f"{result.model} on {result.dataset}, {result.protocol}, class {result.target_class} "
        f"({result.class_name}), {result.score} score, {result.condition_mode} mode:\n"
        f"  ROC-AUC {result.auc:.4f}   average precision {result.average_precision:.4f}   "
        f"F1 {result.f1:.4f}\n"
        f"  trained {result.epochs} epochs on {result.n_train} samples in "
        f"{result.train_seconds:.1f} s; scored {result.n_test} in {result.score_seconds:.1f} s"
    )


@main.command()
@click.option("--epochs", type=click.IntRange(min=1), default=40, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=128, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--score", default=DEFAULT_SCORE, show_default=True, callback=_check_score,
              help="The anomaly score (see `dcvae list`).")
def demo(epochs: int, batch_size: int, seed: int, score: str) -> None:
    """Compare dCVAE with a VAE, leave-one-out on the bundled 8×8 digits (no download)."""
    data = load_dataset("digits")
    for message in data.notes:
        _note(message)
    click.echo(f"leave-one-out on {data.name}: train on 9 digits, flag the 10th; MLP backbone, "
               f"latent 8, {epochs} epochs, {score} score, marginal mode (no test labels)")
    click.echo(f"{'held-out':>8}  {'dCVAE AUC':>9}  {'VAE AUC':>9}")
    totals = {"dcvae": [], "vae": []}
    start = time.perf_counter()
    for k in range(len(data.class_names)):
        row = []
        for model in ("dcvae", "vae"):
            result, _ = evaluate_protocol(
                data, model=model, protocol="leave-one-out", target_class=k, seed=seed,
                latent_dim=8, epochs=epochs, batch_size=batch_size, patience=0, score=score,
                progress=False)
            totals[model].append(result.auc)
            row.append(result.auc)
        click.echo(f"{data.class_names[k]:>8}  {row[0]:9.3f}  {row[1]:9.3f}")
    click.echo(f"{'mean':>8}  {np.mean(totals['dcvae']):9.3f}  {np.mean(totals['vae']):9.3f}")
    click.echo(f"({time.perf_counter() - start:.0f} s on {_hardware()})")


@main.command()
@click.argument("config", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="The results directory: results.jsonl, a copy of the config, saved models.")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="local: this process or a process pool; ray: one Ray task per run.")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Runs at a time (local pool size; Ray: CPUs of a local Ray instance = workers × threads).")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="PyTorch threads (and Ray CPUs) per run [default: CPU cores / workers].")
@click.option("--address", default=None,
              help="Ray: the address of an existing cluster (e.g. ray://head:10001 or auto).")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where dataset files are looked for first (workers need the same path).")
@click.option("--reuse", type=click.Path(file_okay=False, exists=True, path_type=Path), multiple=True,
              help="Another results directory whose records of the very same runs (same key) are "
                   "copied instead of trained again, e.g. a tuning grid's winners. Repeatable.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def benchmark(config: Path, out: Path, executor: str, workers: int, threads: int | None,
              address: str | None, data_dir: Path | None, reuse: tuple[Path, ...],
              quiet: bool) -> None:
    """Run the grid of a benchmark CONFIG (TOML); finished runs are skipped, so re-run to resume."""
    from dcvae.benchmark import run_benchmark

    if address is not None and executor != "ray":
        raise click.UsageError("--address is for --executor ray")
    start = time.perf_counter()
    counts = run_benchmark(config, out, data_dir=data_dir, executor=executor, workers=workers,
                           threads=threads, address=address, progress=not quiet, reuse=reuse)
    click.echo(f"{counts['total']} runs in the grid: {counts['skipped']} already done, "
               f"{counts['reused']} reused, {counts['ran']} run now in "
               f"{time.perf_counter() - start:.0f} s; results in {out / 'results.jsonl'}")


@main.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--command", "benchmark_command", default=None, metavar="TEXT",
              help="The `dcvae benchmark ...` command that produced DIRECTORY, quoted in the report.")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where dataset files are looked for first (the figures need the test images).")
@click.option("--max-samples", type=click.IntRange(min=10), default=2000, show_default=True,
              help="Test images (a seeded subsample) behind each latent-space figure.")
def report(directory: Path, benchmark_command: str | None, data_dir: Path | None,
           max_samples: int) -> None:
    """Write DIRECTORY/report.md and report.html (Table I side by side, figures) from benchmark results."""
    from dcvae.benchmark.report import write_report

    start = time.perf_counter()
    paths = write_report(directory, command=benchmark_command, max_figure_samples=max_samples,
                         data_dir=data_dir)
    figures = len(list(paths["figures"].glob("*.png")))
    click.echo(f"wrote {paths['markdown']} and {paths['html']} ({figures} figures in "
               f"{paths['figures']}) in {time.perf_counter() - start:.0f} s")


@main.command(name="list")
def list_() -> None:
    """The models, datasets, protocols and scores this version knows."""
    for cls in MODELS.values():
        click.echo(f"model     {cls.name:<12} {cls.describe()}")
    for name in sorted(DATASETS):
        click.echo(f"dataset   {name}")
    for name in sorted(PROTOCOLS):
        click.echo(f"protocol  {name}")
    for name in BASE_SCORES:
        click.echo(f"score     {name}")
    click.echo("score     typical-NAME (two-sided typicality), A+B (standardised sum)")


def _hardware() -> str:
    import os
    import platform

    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
