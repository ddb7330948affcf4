"""The options of the commands that train (fit, evaluate), derived from the config dataclasses
(their defaults are written there, once). What every command reads is in ``dcvae.cli.inputs``."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from dcvae.cli.inputs import device_option, threads_option
from dcvae.detector import AnomalyDetector, default_settings
from dcvae.models import DEFAULT_MODEL, LIKELIHOODS, all_models
from dcvae.nn import AUTO, BACKBONES
from dcvae.scoring import parse_score
from dcvae.tracking import DEFAULT_MLFLOW_STORE
from dcvae.training import PRECISIONS
from dcvae.training.config import MAX_SEED

DEFAULTS = default_settings()
#: The options of ``model_options`` that are detector settings (everything but --param, --quiet).
SETTING_OPTIONS = ("backbone", "latent_dim", "beta", "gamma", "epochs", "batch_size", "lr",
                   "secondary_lr", "patience", "anomaly_score", "contamination", "device", "precision",
                   "likelihood")


def parse_params(values: tuple[str, ...]) -> dict[str, Any]:
    """--param KEY=VALUE, VALUE read as JSON when it parses (numbers, lists), else as text."""
    out: dict[str, Any] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint="--param")
        if key in (*SETTING_OPTIONS, "seed", "model"):  # one way to set each: else one silently wins
            option = {"anomaly_score": "score"}.get(key, key).replace("_", "-")
            raise click.BadParameter(f"{key} has its own option: pass --{option} instead of --param {item}",
                                     param_hint="--param")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out


def _check_score(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:  # the model's own default score
        return None
    try:
        return parse_score(value).name
    except ValueError as err:
        raise click.BadParameter(str(err)) from None


def score_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--score", "anomaly_score", default=DEFAULTS["anomaly_score"],
                        callback=_check_score,
                        help="Anomaly score: recon, elbo, kl, prior, latent, latent-knn, ic-elbo (VAEs), "
                             "distance (knn), ...; "
                             "'typical-' before one (e.g. typical-elbo); several joined by '+' (e.g. "
                             "recon+kl). Default: the model's own (recon for the VAEs). See `dcvae list`.")(f)


def model_options(f: Callable[..., Any]) -> Callable[..., Any]:
    options: list[Callable[[Callable[..., Any]], Callable[..., Any]]] = [
        click.option("--model", "model", type=click.Choice(sorted(all_models())), default=DEFAULT_MODEL,
                     show_default=True, help="Which model to train: a VAE or a classical detector."),
        click.option("--backbone", type=click.Choice(sorted((*BACKBONES, AUTO))),
                     default=DEFAULTS["backbone"],
                     help="Encoder/decoder: mlp, conv, or auto (conv for images, mlp for feature "
                          "vectors). Default: the model's own (auto for dcvae-prior, mlp for the "
                          "other VAEs)."),
        click.option("--latent-dim", type=click.IntRange(min=1), default=DEFAULTS["latent_dim"],
                     show_default=True),
        click.option("--beta", type=float, default=None, help="KL weight (beta-vae, dcvae)."),
        click.option("--gamma", type=float, default=None,
                     help="Total-correlation weight (factorvae, rfvae, dcvae's TC(z|c))."),
        click.option("--param", "params", multiple=True, metavar="KEY=VALUE",
                     help="Any other model hyper-parameter, e.g. --param lambda_max=10 or "
                          "--param tc_weight=6 (beta-tcvae)."),
        click.option("--epochs", type=click.IntRange(min=1), default=DEFAULTS["epochs"],
                     show_default=True),
        click.option("--batch-size", type=click.IntRange(min=1), default=DEFAULTS["batch_size"],
                     show_default=True),
        click.option("--lr", type=float, default=DEFAULTS["lr"], show_default=True,
                     help="Primary learning rate."),
        click.option("--secondary-lr", type=float, default=DEFAULTS["secondary_lr"], show_default=True,
                     help="Discriminator learning rate (factorvae, rfvae)."),
        click.option("--patience", type=click.IntRange(min=0), default=DEFAULTS["patience"],
                     show_default=True, help="Early-stopping patience in epochs (0 = off)."),
        click.option("--seed", type=click.IntRange(0, MAX_SEED), default=DEFAULTS["seed"],
                     show_default=True),
        score_option,
        click.option("--contamination", type=click.FloatRange(0.0, 0.5),
                     default=DEFAULTS["contamination"], show_default=True,
                     help="Expected anomaly fraction; sets the threshold."),
        click.option("--likelihood", type=click.Choice(["auto", *sorted(LIKELIHOODS)]),
                     default=DEFAULTS["likelihood"], show_default=True,
                     help="p(x|z,c): auto = Bernoulli for pixels (uint8, or images in [0, 1]), "
                          "Gaussian on standardised features for other arrays (tables too)."),
        device_option,
        threads_option,
        click.option("--precision", type=click.Choice(sorted(PRECISIONS)), default=DEFAULTS["precision"],
                     show_default=True, help="bf16: matrix products in bfloat16 (autocast)."),
        click.option("--quiet", is_flag=True, help="No progress bar."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def tracking_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """--mlflow [URI] and --tensorboard DIR (``dcvae.tracking``), as ``mlflow_uri`` and
    ``tensorboard_dir``."""
    f = click.option("--tensorboard", "tensorboard_dir", type=click.Path(file_okay=False, path_type=Path),
                     default=None, metavar="DIR",
                     help="Write the same scalars as TensorBoard event files in DIR (dcvae[tensorboard]).")(f)
    return click.option("--mlflow", "mlflow_uri", is_flag=False, flag_value=DEFAULT_MLFLOW_STORE,
                        default=None, metavar="[URI]",
                        help="Log the parameters, every epoch's loss terms, the metrics and the model "
                             "directory to MLflow (dcvae[mlflow]): a tracking server's URI or a local "
                             f"store; alone, {DEFAULT_MLFLOW_STORE} (no server).")(f)


def detector_settings(kw: dict[str, Any], *, only_given: bool = False) -> dict[str, Any]:
    """The flat settings of ``model_options`` (popped from ``kw``), as a grid file writes them;
    ``only_given``: just those the user set (the identity of an ``evaluate`` run)."""
    ctx = click.get_current_context()
    settings: dict[str, Any] = {}
    for name in SETTING_OPTIONS:
        value = kw.pop(name)
        given = ctx.get_parameter_source(name) != click.core.ParameterSource.DEFAULT
        if value is not None and (given or not only_given):
            settings[name] = value
    return {**settings, **parse_params(kw.pop("params"))}


def build_detector(model: str, settings: dict[str, Any], *, seed: int, quiet: bool) -> AnomalyDetector:
    """The detector of these settings, checked now: before any data is read or file written."""
    detector = AnomalyDetector.from_settings(model, settings, seed=seed, progress=not quiet)
    detector.check_settings()
    return detector
