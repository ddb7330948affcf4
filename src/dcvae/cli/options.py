"""The options commands share, derived from the config dataclasses (their defaults are written
there, once), and the reading of the data they name."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import click
import numpy as np

from dcvae.data import DATASETS, DataFileError, LabelledArray, load_array_file, read_image_folder
from dcvae.detector import AnomalyDetector, default_settings
from dcvae.export.runtime import OnnxDetector
from dcvae.models import DEFAULT_MODEL, LIKELIHOODS, all_models
from dcvae.nn import BACKBONES
from dcvae.scoring import parse_score
from dcvae.training import PRECISIONS
from dcvae.training.config import MAX_SEED
from dcvae.training.device import resolve_device

DEFAULTS = default_settings()
#: The options of ``_model_options`` that are detector settings (everything but --param, --quiet).
SETTING_OPTIONS = ("backbone", "latent_dim", "beta", "gamma", "epochs", "batch_size", "lr",
                   "secondary_lr", "patience", "anomaly_score", "contamination", "device", "precision",
                   "likelihood")


def note(message: str) -> None:
    click.echo(f"note: {message}", err=True)


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
                        help="Anomaly score: recon, elbo, kl, prior, ic-elbo (VAEs), distance (knn), ...; "
                             "'typical-' before one (e.g. typical-elbo); several joined by '+' (e.g. "
                             "recon+kl). Default: the model's own (recon for the VAEs). See `dcvae list`.")(f)


def _check_device(ctx: click.Context, param: click.Parameter, value: str) -> str:
    try:  # the name, and whether this machine has the device, before any data is read
        resolve_device(value)
    except ValueError as err:
        raise click.BadParameter(str(err)) from None
    return value


def _set_threads(ctx: click.Context, param: click.Parameter, value: int | None) -> int | None:
    if value is not None:  # before any tensor work: PyTorch's intra-op pool takes it from here on
        import torch

        torch.set_num_threads(value)
    return value


def threads_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--threads", type=click.IntRange(1, 1024), default=None, expose_value=False,
                        callback=_set_threads, is_eager=True,
                        help="PyTorch threads for this command [default: PyTorch's, the CPU cores]; "
                             "1 keeps a shared machine responsive.")(f)


def device_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--device", default=DEFAULTS["device"], show_default=True, callback=_check_device,
                        help="cpu, cuda, cuda:N, mps, or auto (CUDA, else MPS, else CPU).")(f)


def model_options(f: Callable[..., Any]) -> Callable[..., Any]:
    options: list[Callable[[Callable[..., Any]], Callable[..., Any]]] = [
        click.option("--model", "model", type=click.Choice(sorted(all_models())), default=DEFAULT_MODEL,
                     show_default=True, help="Which model to train: a VAE or a classical detector."),
        click.option("--backbone", type=click.Choice(sorted(BACKBONES)), default=DEFAULTS["backbone"],
                     show_default=True),
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


def data_options(f: Callable[..., Any]) -> Callable[..., Any]:
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


def parse_size(size: str | None) -> tuple[int, int] | None:
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


class UserData(NamedTuple):
    data: LabelledArray
    names: tuple[str, ...]  # the condition names
    ids: list[str]  # the file of each sample ("" for arrays)
    read: dict[str, Any]  # how it was read, as ``detector.input_`` keeps it
    skipped: tuple[DataFileError, ...] = ()  # images left out, with the reason


def load_user_data(kw: dict[str, Any], like: AnomalyDetector | OnnxDetector | None = None, *,
                   skip_unreadable: bool = False) -> UserData:
    """The samples named by --images or --array. ``like``: a fitted detector, whose data the new
    data is read like when an option is not given: images at its size and colour mode, tables with
    its condition column. ``skip_unreadable``: see ``read_image_folder``."""
    images, array_file = kw.pop("images"), kw.pop("array_file")
    column, size = kw.pop("condition_column"), parse_size(kw.pop("size"))
    no_conditions = kw.pop("no_conditions")
    fitted: dict[str, Any] = {} if like is None else like.input_
    if like is not None and not no_conditions:
        no_conditions = fitted.get("no_conditions", False)
    if images is not None:
        mode = "auto"
        shape = () if like is None else _input_shape(like)
        if len(shape) == 3:  # an image model: its colour mode, and the --size fit was given
            mode = "L" if shape[0] == 1 else "RGB"
            if size is None and fitted.get("size") is not None:
                size = (int(fitted["size"][0]), int(fitted["size"][1]))
        # one listing: each score keeps its file
        folder = read_image_folder(images, size=size, mode=mode, skip_unreadable=skip_unreadable)
        data, names, skipped = folder.data, folder.names, folder.skipped
        ids = [f.relative_to(images).as_posix() for f in folder.files]
        read: dict[str, Any] = {"size": None if size is None else list(size), "no_conditions": no_conditions}
    else:
        col: str | int | None = column
        if column is not None and column.isdigit():
            col = int(column)
        elif column is None:
            col = fitted.get("condition_column")
        data, names = load_array_file(array_file, condition_column=col)
        ids, skipped = [""] * len(data), ()
        read = {"condition_column": col, "no_conditions": no_conditions}
    if no_conditions or not names:
        data, names = LabelledArray(data.x, np.full(len(data), -1, dtype=np.int64)), ()
    return UserData(data, names, ids, read, skipped)


def _input_shape(like: AnomalyDetector | OnnxDetector) -> tuple[int, ...]:
    if isinstance(like, AnomalyDetector):
        return tuple(like.model_.config.input_shape)
    return like.input_shape


def condition_labels(data: LabelledArray, names: tuple[str, ...]) -> np.ndarray | None:
    """Each sample's condition *name*, as the API takes it (the detector encodes it), or None."""
    if not names:
        return None
    return np.asarray(names, dtype=object)[data.y]


def one_source(kw: dict[str, Any]) -> str:
    given = [k for k in ("dataset", "images", "array_file") if kw.get(k) is not None]
    if len(given) != 1:
        raise click.UsageError("give exactly one of --dataset, --images or --array")
    return given[0]
