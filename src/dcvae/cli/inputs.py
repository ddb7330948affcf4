"""What every command reads and writes, without PyTorch: the data options and the reading of the
files they name, the device and thread options, and the rule that outputs never replace inputs.

``dcvae score --onnx`` is built from this module alone, so a deployment scores with onnxruntime
and NumPy; the options of training live in ``dcvae.cli.options``.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import click
import numpy as np
from PIL import Image

from dcvae.data import DATASETS, DataFileError, LabelledArray, load_array_file, read_image_folder
from dcvae.io.atomic import atomic_file
from dcvae.training.device import DEFAULT_DEVICE, check_device_name

if TYPE_CHECKING:
    from dcvae.detector import AnomalyDetector
    from dcvae.export.runtime import OnnxDetector

#: Where ``--threads`` keeps its value in the click context, for runtimes other than PyTorch's.
THREADS_KEY = "dcvae.threads"


def note(message: str) -> None:
    click.echo(f"note: {message}", err=True)


def _check_device(ctx: click.Context, param: click.Parameter, value: str) -> str:
    try:  # the name, and whether this machine has the device, before any data is read
        check_device_name(value)
        if value != DEFAULT_DEVICE:  # the CPU is always there; asking for another needs PyTorch
            from dcvae.training.device import resolve_device

            resolve_device(value)
    except ValueError as err:
        raise click.BadParameter(str(err)) from None
    return value


def device_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--device", default=DEFAULT_DEVICE, show_default=True, callback=_check_device,
                        help="cpu, cuda, cuda:N, mps, or auto (CUDA, else MPS, else CPU).")(f)


def busy_elsewhere(samples: int = 5, interval_s: float = 0.01) -> int | None:
    """How many other processes are running right now: Linux's count of runnable tasks
    (``/proc/loadavg``, 4th field) less this one, the fewest over a few samples so that a passing
    spike does not count. None where the count cannot be read."""
    counts = []
    for i in range(samples):
        try:
            with open("/proc/loadavg") as fh:
                running = int(fh.read().split()[3].split("/")[0])
        except (OSError, ValueError, IndexError):
            return None
        counts.append(running - 1)
        if i + 1 < samples:
            time.sleep(interval_s)
    return max(0, min(counts))


def automatic_threads() -> int | None:
    """The threads a command uses when not told: the cores this process may run on that no other
    running process holds (at least 1). Two thread pools that both size themselves to every core
    slow each other down several-fold (issue 18: the demo 170 s beside one busy process, 53 s with
    one thread); None where the load cannot be read (PyTorch's own default then)."""
    busy = busy_elsewhere()
    return None if busy is None else max(1, usable_cores() - busy)


def usable_cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def choose_threads(ctx: click.Context) -> None:
    """Size PyTorch's (and onnxruntime's) thread pool by ``automatic_threads`` for a command run
    without --threads: before its module imports PyTorch, which reads OMP_NUM_THREADS once, when it
    loads. Left alone: an OMP_NUM_THREADS the user set, and a process that already holds PyTorch
    (a test, a notebook calling the command)."""
    if "OMP_NUM_THREADS" in os.environ or sys.modules.get("torch") is not None:
        return
    value = automatic_threads()
    if value is None or value == usable_cores():
        return
    note(f"{usable_cores() - value} core(s) busy with other processes: using {value} thread(s); "
         "--threads N chooses")
    ctx.meta[THREADS_KEY] = value
    os.environ["OMP_NUM_THREADS"] = str(value)


def _set_threads(ctx: click.Context, param: click.Parameter, value: int | None) -> int | None:
    if value is None:  # the group chose, or left PyTorch's default (``choose_threads``)
        return None
    ctx.meta[THREADS_KEY] = value
    if sys.modules.get("torch") is not None:  # PyTorch's intra-op pool takes it from here on
        import torch

        torch.set_num_threads(value)
    else:  # PyTorch, if the command imports it, sizes its pool from this when it loads
        os.environ["OMP_NUM_THREADS"] = str(value)
    return value


def threads_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--threads", type=click.IntRange(1, 1024), default=None, expose_value=False,
                        callback=_set_threads, is_eager=True,
                        help="Threads for this command's computations [default: the cores no other "
                             "running process keeps busy, at least 1].")(f)


def threads_given() -> int | None:
    """The ``--threads`` of the running command, or None."""
    value = click.get_current_context().meta.get(THREADS_KEY)
    return None if value is None else int(value)


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
        shape = () if like is None else like.input_shape
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


def refuse_to_overwrite_inputs(out: Path, model_dir: Path, images: Path | None,
                               array_file: Path | None) -> None:
    """The outputs never replace what they come from: the model's files, the array file, an image."""
    target = out.resolve()
    if target.is_relative_to(model_dir.resolve()):
        what = "model directory" if model_dir.is_dir() else "model file"
        raise click.UsageError(f"--out {out} lies inside the {what} {model_dir}; write the "
                               "scores elsewhere")
    if (array_file is not None and target == Path(array_file).resolve()) or (
            images is not None and target.is_relative_to(Path(images).resolve()) and target.exists()):
        raise click.UsageError(f"--out {out} is a file being scored; write the scores elsewhere")


def write_png(path: Path, picture: np.ndarray) -> None:
    """An ``(H, W, 1 | 3)`` uint8 picture as a PNG file, written atomically."""
    with atomic_file(path) as fh:
        Image.fromarray(picture[..., 0] if picture.shape[-1] == 1 else picture).save(fh, format="PNG")
