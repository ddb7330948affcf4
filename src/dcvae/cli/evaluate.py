"""``dcvae evaluate`` and ``dcvae demo``: protocol runs through the library's one run function."""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path
from typing import Any, cast

import click
import numpy as np

from dcvae.classical import CLASSICAL
from dcvae.cli.inputs import note, threads_option
from dcvae.cli.main import main
from dcvae.cli.options import build_detector, detector_settings, model_options, score_option, tracking_options
from dcvae.data import DATASETS, load_dataset
from dcvae.evaluation.protocols import PROTOCOLS
from dcvae.evaluation.provenance import hardware_summary
from dcvae.evaluation.run import RunSpec, run_protocol
from dcvae.models import DEFAULT_MODEL, VAEConfig, model_class
from dcvae.scoring import parse_score
from dcvae.scoring.family import default_score, offered_scores
from dcvae.tracking import log_record, tracking
from dcvae.training import COLLAPSE_KL_PER_DIMENSION, PosteriorCollapseWarning
from dcvae.training.config import MAX_SEED

#: The classical detector ``evaluate`` runs beside the model: the strongest on FMNIST, KMNIST and
#: EMNIST in the committed leave-one-out table.
BASELINE = "knn"

#: The demo's rows: the default model, the SPEC's dCVAE, a VAE, and the classical kNN.
DEMO_MODELS = (DEFAULT_MODEL, "dcvae", "vae", "knn")


@main.command()
@click.option("--dataset", type=click.Choice(sorted(DATASETS)), required=True)
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None)
@click.option("--protocol", type=click.Choice(sorted(PROTOCOLS)), default="leave-one-out",
              show_default=True)
@click.option("--class", "target_class", type=int, required=True,
              help="Held-out class (leave-one-out) or normal class (one-class).")
@click.option("--train-size", type=click.IntRange(min=2), default=None,
              help="Stratified subsample of the normal training data for quick runs.")
@model_options
@click.option("--save", "save_dir", type=click.Path(path_type=Path), default=None,
              help="Also save the trained model here.")
@click.option("--json", "as_json", is_flag=True, help="Print the run's record as one JSON object.")
@click.option("--baseline", type=click.Choice(["none", *sorted(CLASSICAL)]), default=BASELINE,
              show_default=True,
              help="A classical detector run on the same split, its ROC-AUC printed beside the model's "
                   "(not with --json, whose object is the model's record alone).")
@tracking_options
def evaluate(**kw: Any) -> None:
    """Fit on a protocol's normal training data, score its test split, print the metrics."""
    model, seed, quiet, baseline = kw.pop("model"), kw.pop("seed"), kw.pop("quiet"), kw.pop("baseline")
    score = kw["anomaly_score"] or default_score(model_class(model))
    settings = detector_settings(kw, only_given=True)
    settings.pop("anomaly_score", None)  # the run's score is its own field, as in a grid
    if kw["train_size"] is not None:
        settings["train_size"] = kw["train_size"]
    build_detector(model, {k: v for k, v in settings.items() if k != "train_size"}, seed=seed,
                   quiet=quiet)  # a bad option fails before the data is read
    data = load_dataset(kw.pop("dataset"), kw.pop("data_dir"))
    for message in data.notes:
        note(message)
    spec = RunSpec(model, data.name, kw.pop("protocol"), kw.pop("target_class"), seed, settings, (score,))
    with tracking(mlflow=kw.pop("mlflow_uri"), tensorboard=kw.pop("tensorboard_dir"),
                  run_name=f"evaluate {spec.label}") as track:
        result = run_protocol(spec, data, progress=not quiet)
        record = result.record
        if kw["save_dir"] is not None and result.detector is not None:
            result.detector.save(kw["save_dir"])
        log_record(track, record.to_dict())
        if result.detector is not None:
            track.log_history(result.detector.history_)
        if kw["save_dir"] is not None and result.detector is not None:
            track.log_model_dir(kw["save_dir"])
    if kw["as_json"]:
        click.echo(json.dumps(record.to_dict()))
        return
    if record.status != "ok":
        raise click.ClickException(record.error or "training diverged")
    click.echo(
        f"{record.model} on {record.dataset}, {record.protocol}, class {record.target_class} "
        f"({record.class_name}), {score} score, {record.condition_mode} mode:\n"
        f"  ROC-AUC {record.auc:.4f}   average precision {record.average_precision:.4f}   "
        f"F1 {record.f1:.4f}\n"
        f"  trained {record.epochs_run} epochs on {record.n_train} samples ({record.n_validation} more "
        f"held out for validation and the threshold) in "
        f"{record.train_seconds:.1f} s; scored {record.n_test} in {record.score_seconds:.1f} s"
    )
    if baseline != "none" and baseline != model:  # what a user would try first, on the same split
        kept = {k: v for k, v in settings.items() if k == "train_size"}
        other = run_protocol(RunSpec(baseline, data.name, spec.protocol, spec.target_class, seed, kept,
                                     (default_score(model_class(baseline)),)), data).record
        if other.auc is not None:
            assert record.auc is not None  # an "ok" run has its AUC (formatted above)
            click.echo(f"  classical baseline {baseline}: ROC-AUC {other.auc:.4f} on the same split "
                       f"(model - baseline {record.auc - other.auc:+.4f}, one run)")


@main.command()
@click.option("--epochs", type=click.IntRange(min=1), default=40, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=128, show_default=True)
@click.option("--seed", type=click.IntRange(0, MAX_SEED), default=0, show_default=True)
@score_option
@threads_option
def demo(epochs: int, batch_size: int, seed: int, anomaly_score: str) -> None:
    """The default dCVAE-prior against the SPEC's dCVAE, a VAE and kNN, leave-one-out on the
    bundled 8×8 digits (no download)."""
    data = load_dataset("digits")
    for message in data.notes:
        note(message)
    # --score applies to every model that offers it; the others keep their own default score
    scores = {m: anomaly_score if anomaly_score and set(parse_score(anomaly_score).bases)
              <= set(offered_scores(model_class(m))) else default_score(model_class(m))
              for m in DEMO_MODELS}
    # each VAE on its own backbone, as its config resolves it for these images
    backbones = {m: cast(VAEConfig, model_class(m).config_class(input_shape=data.train.x.shape[1:])).backbone
                 for m in DEMO_MODELS if m not in CLASSICAL}
    click.echo(f"leave-one-out on {data.name}: train on 9 digits, flag the 10th; latent 8, {epochs} "
               "epochs, marginal mode (no test labels); backbones: "
               + ", ".join(f"{m} {b}" for m, b in backbones.items()) + "; scores: "
               + ", ".join(f"{m} {s}" for m, s in scores.items()))
    click.echo(f"{'held-out':>8}" + "".join(f"  {m:>11}" for m in DEMO_MODELS))
    totals: dict[str, list[float]] = {m: [] for m in DEMO_MODELS}
    settings = {"latent_dim": 8, "epochs": epochs, "batch_size": batch_size, "patience": 0}
    start = time.perf_counter()
    collapsed: dict[str, int] = {}
    for k in range(len(data.class_names)):
        for model in DEMO_MODELS:
            spec = RunSpec(model, data.name, "leave-one-out", k, seed, settings, (scores[model],))
            with warnings.catch_warnings(record=True) as caught:  # one summary line, not one per run
                warnings.simplefilter("always", PosteriorCollapseWarning)
                record = run_protocol(spec, data).record
            for w in caught:
                if issubclass(w.category, PosteriorCollapseWarning):
                    collapsed[model] = collapsed.get(model, 0) + 1
                else:
                    warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
            if record.auc is None:
                raise click.ClickException(f"{model}, held-out digit {k}: {record.error}")
            totals[model].append(record.auc)
        click.echo(f"{data.class_names[k]:>8}" + "".join(f"  {totals[m][-1]:11.3f}" for m in DEMO_MODELS))
    click.echo(f"{'mean':>8}" + "".join(f"  {np.mean(totals[m]):11.3f}" for m in DEMO_MODELS))
    click.echo(f"({time.perf_counter() - start:.0f} s on {hardware_summary()})")
    if collapsed:
        click.echo("warning: posterior collapse (KL below "
                   f"{COLLAPSE_KL_PER_DIMENSION} nats per latent dimension) in "
                   + ", ".join(f"{n} of 10 {m} runs" for m, n in collapsed.items())
                   + ": their latent is barely used on this small data",
                   err=True)
