"""Experiment tracking: a run's parameters, per-epoch loss terms, final metrics and model directory,
logged to MLflow and/or TensorBoard (issue 17), for ``fit``, ``evaluate`` and ``benchmark``.

Use::

    with tracking(mlflow="./mlruns", tensorboard="tb/run1", run_name="fit-dcvae") as track:
        track.log_params(config)            # nested dicts flattened with '.'
        ...train...
        track.log_history(detector.history_)
        track.log_metrics({"auc": 0.93})
        track.log_model_dir("model/")

Both trackers are optional extras, imported only when asked: ``pip install 'dcvae[mlflow]'``
(``mlflow-skinny``: the client alone, without the server, UI and their SQL/pandas stack) and
``pip install 'dcvae[tensorboard]'`` (``tensorboardX``: a 0.1 MB pure-Python event writer on
numpy and protobuf, instead of ``tensorboard`` with grpcio and its data server, ~55 MB, which only
the viewer needs). Neither asked: a ``Tracking`` that does nothing and imports nothing.

MLflow store. ``mlflow`` is a tracking URI (``http(s)://`` server, ``file:`` URI, ``sqlite:///``
with SQLAlchemy installed, ...) or a plain directory path; ``DEFAULT_MLFLOW_STORE`` (``./mlruns``)
is what ``--mlflow`` without a value means. Paths and relative ``file:`` URIs are resolved against
the current directory into an absolute ``file:`` URI. The local store is MLflow's file store: no
server and no database. MLflow 3 keeps it in maintenance mode and refuses it unless
``MLFLOW_ALLOW_FILE_STORE=true``; ``tracking`` sets that while it is open (restoring the old value
after), so read the store with ``MLFLOW_ALLOW_FILE_STORE=true mlflow ui --backend-store-uri
./mlruns``. The ``sqlite:`` alternative would add SQLAlchemy and Alembic (~5 MB) and a schema
migration of seconds on each new store.

Before yielding, ``tracking`` opens the store and looks the experiment up, so a bad URI fails before
any training, with a one-line ``TrackingError`` naming it; HTTP stores are probed with one try and a
``PROBE_TIMEOUT_S`` timeout instead of MLflow's default of 7 retries with backoff (~4 minutes); later
calls keep MLflow's retries, and a server lost mid-run ends as a ``TrackingError``. The run
is created only after the probe and the TensorBoard directory succeed: a failure leaves no run. On
exit the run is ended FINISHED, or FAILED when an exception left the block (KILLED for Ctrl-C); the
exception propagates.

Names: per-epoch terms are ``<group>_<term>`` (``train_loss``, ``validation_kl``, ``train_tc``: every
key of every group there is), other numbers of an epoch ``epoch_<key>`` (``epoch_seconds``), each at
step = the epoch number; ``best_epoch`` and ``stopped_early`` (0/1) once, at step 0. TensorBoard gets
the same names and steps. Non-finite values are logged as they are (a diverged loss shows as NaN;
MLflow's file store keeps NaN and infinities); only values that are not numbers are skipped.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

if TYPE_CHECKING:
    from dcvae.training.history import History

#: What ``--mlflow`` without a URI means: MLflow's file store under the current directory.
DEFAULT_MLFLOW_STORE = "./mlruns"
#: Seconds one HTTP request of the probe may take (connect and read), with no retries.
PROBE_TIMEOUT_S = 5
#: MLflow's longest parameter value (MAX_PARAM_VAL_LENGTH since MLflow 2); longer ones are cut.
MAX_PARAM_LENGTH = 6000

_TERMINAL_STATUS = {"ok": "FINISHED", "error": "FAILED", "interrupt": "KILLED"}


class TrackingError(ValueError):
    """A tracker that cannot be used: its extra is missing or its store cannot be reached or written."""


def resolve_mlflow_uri(uri: str | os.PathLike[str]) -> str:
    """A tracking URI as MLflow takes it: a plain path or a ``file:`` URI becomes an absolute
    ``file:`` URI (resolved against the current directory); other schemes pass unchanged."""
    text = os.fspath(uri)
    parsed = urlparse(text)
    if len(parsed.scheme) <= 1:  # no scheme, or a Windows drive letter
        return Path(text).expanduser().resolve().as_uri()
    if parsed.scheme == "file":
        local = parsed.path if not parsed.netloc or parsed.netloc == "localhost" else None
        if local is None:
            raise TrackingError(f"MLflow store {text!r}: a file: URI on another host is not supported")
        return Path(local).expanduser().resolve().as_uri()
    return text


def flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings as one level, keys joined with '.' (``{"a": {"b": 1}}`` → ``{"a.b": 1}``)."""
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def history_metrics(history: History | Mapping[str, Any]) -> list[tuple[str, float, int]]:
    """``(name, value, step)`` for every per-epoch number of a training history (``History`` or its
    ``to_dict()``), named as the module docstring says, plus ``best_epoch`` and ``stopped_early``."""
    data = history.to_dict() if hasattr(history, "to_dict") else history
    rows: list[tuple[str, float, int]] = []
    for index, record in enumerate(data.get("epochs", [])):
        step = record.get("epoch", index + 1)
        for key, value in record.items():
            if key == "epoch":
                continue
            if isinstance(value, Mapping):
                rows += [(f"{key}_{term}", float(v), step) for term, v in value.items() if _is_number(v)]
            elif _is_number(value):
                rows.append((f"epoch_{key}", float(value), step))
    if _is_number(data.get("best_epoch")):
        rows.append(("best_epoch", float(data["best_epoch"]), 0))
    if "stopped_early" in data:
        rows.append(("stopped_early", float(bool(data["stopped_early"])), 0))
    return rows


#: The fields of a run record (``dcvae.evaluation.run.RunRecord.to_dict()``) that say what ran:
#: logged as parameters. Its other numbers (AUCs, per-score metrics, final loss terms, timings)
#: are the metrics; its lists (ROC curves, notes) are left out.
RECORD_PARAMS = ("model", "dataset", "protocol", "class", "class_name", "seed", "settings", "scores",
                 "condition_mode", "n_train", "n_validation", "n_test", "n_anomalies", "library_version",
                 "commit", "hardware")


def log_record(track: Tracking, record: Mapping[str, Any]) -> None:
    """One protocol run, as ``dcvae evaluate`` and ``dcvae benchmark`` log it: parameters, metrics
    and its status (and error) as tags."""
    track.log_params({k: record[k] for k in RECORD_PARAMS if k in record})
    track.set_tags({"dcvae.status": record.get("status"), "dcvae.error": record.get("error"),
                    "dcvae.key": record.get("key")})
    track.log_metrics({k: v for k, v in record.items() if k not in RECORD_PARAMS})


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _param_value(value: Any) -> str:
    """A parameter as text: strings as they are, paths as their text, anything else as JSON (repr
    if not JSON-able)."""
    if isinstance(value, str | os.PathLike):
        text = os.fspath(value)
    else:
        try:
            text = json.dumps(value, sort_keys=True, allow_nan=True)
        except (TypeError, ValueError):
            text = repr(value)
    return text if len(text) <= MAX_PARAM_LENGTH else text[: MAX_PARAM_LENGTH - 3] + "..."


def _one_line(error: BaseException) -> str:
    """An error as one short line: the OS's reason where the text holds one ("Connection refused"),
    else the text itself, whitespace collapsed and cut at 300 characters."""
    text = " ".join(str(error).split()) or type(error).__name__
    reason = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", text)
    if reason:
        return reason.group(1).strip()
    return text if len(text) <= 300 else text[:297] + "..."


class Tracking:
    """The open trackers of one run; every method logs to each of them (none: does nothing)."""

    def __init__(self, mlflow_client: Any = None, run_id: str | None = None, writer: Any = None) -> None:
        self._client, self.run_id, self._writer = mlflow_client, run_id, writer

    @property
    def active(self) -> bool:
        """Whether anything is logged at all."""
        return self._client is not None or self._writer is not None

    def log_params(self, params: Mapping[str, Any]) -> None:
        """The run's parameters: nested mappings flattened with '.', values as text (JSON for
        non-strings), None skipped. MLflow keeps one value per key: log each key once."""
        flat = {k: _param_value(v) for k, v in flatten(params).items() if v is not None}
        if not flat:
            return
        if self._client is not None:
            from mlflow.entities import Param

            self._mlflow("log parameters", self._client.log_batch, self.run_id,
                         params=[Param(k, v) for k, v in flat.items()])
        if self._writer is not None:
            table = "\n".join(f"| {k} | {v} |" for k, v in sorted(flat.items()))
            self._writer.add_text("params", f"| parameter | value |\n|---|---|\n{table}", 0)

    def log_history(self, history: History | Mapping[str, Any]) -> None:
        """Every per-epoch term of a training history, at step = its epoch (see ``history_metrics``)."""
        self._log_rows(history_metrics(history))

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Numbers by name (nested mappings flattened with '.'), at ``step`` (None: 0, as MLflow
        does); values that are not numbers (None, text, lists) are skipped."""
        self._log_rows([(k, float(v), step or 0) for k, v in flatten(metrics).items() if _is_number(v)])

    def log_model_dir(self, path: str | os.PathLike[str]) -> None:
        """MLflow: the files of a saved model directory as artifacts under ``model/``.
        TensorBoard has no artifacts: nothing."""
        if self._client is None:
            return
        if not Path(path).is_dir():
            raise TrackingError(f"model directory {os.fspath(path)!r} does not exist")
        self._mlflow("log the model directory", self._client.log_artifacts, self.run_id,
                     os.fspath(path), "model")

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """MLflow tags (text; None skipped), e.g. the dataset or the command. TensorBoard: nothing."""
        if self._client is None or not tags:
            return
        from mlflow.entities import RunTag

        rows = [RunTag(k, v if isinstance(v, str) else _param_value(v))
                for k, v in flatten(tags).items() if v is not None]
        self._mlflow("set tags", self._client.log_batch, self.run_id, tags=rows)

    def _log_rows(self, rows: list[tuple[str, float, int]]) -> None:
        if not rows:
            return
        if self._client is not None:
            from mlflow.entities import Metric

            now = int(time.time() * 1000)
            self._mlflow("log metrics", self._client.log_batch, self.run_id,
                         metrics=[Metric(name, value, now, step) for name, value, step in rows])
        if self._writer is not None:
            for name, value, step in rows:
                self._writer.add_scalar(name, value, step)

    def _mlflow(self, what: str, call: Any, *args: Any, **kwargs: Any) -> None:
        """One MLflow call; its failure as a one-line TrackingError (a server gone mid-run)."""
        try:
            call(*args, **kwargs)
        except Exception as error:  # MlflowException, requests' and OSError's: one message
            raise TrackingError(f"MLflow: could not {what}: {_one_line(error)}") from error


@contextlib.contextmanager
def tracking(*, mlflow: str | os.PathLike[str] | None = None,
             tensorboard: str | os.PathLike[str] | None = None,
             run_name: str, experiment: str = "dcvae") -> Iterator[Tracking]:
    """The asked-for trackers, open for one run (none asked: a ``Tracking`` that does nothing).

    The MLflow store is probed and the TensorBoard directory created before yielding, and the run
    created only then, so a bad URI or path fails before any training and leaves no run. On exit the
    run ends FINISHED, or FAILED (KILLED for Ctrl-C) with the exception propagating.
    """
    if mlflow is None and tensorboard is None:
        yield Tracking()
        return
    summary_writer = _import_tensorboard() if tensorboard is not None else None
    if mlflow is not None:
        _import_mlflow()
    with contextlib.ExitStack() as stack:
        client, experiment_id, uri = None, None, None
        if mlflow is not None:
            uri = resolve_mlflow_uri(mlflow)
            stack.enter_context(_file_store_allowed())
            client, experiment_id = _probe_mlflow(uri, experiment)
        writer, suffix = None, f".{uuid.uuid4().hex[:8]}"
        logdir = Path(tensorboard) if tensorboard is not None else None
        if summary_writer is not None and logdir is not None:
            writer = _open_writer(summary_writer, logdir, suffix)
            stack.callback(writer.close)
        run_id = None
        if client is not None:
            from dcvae import __version__

            try:
                run = client.create_run(experiment_id, run_name=run_name,
                                        tags={"dcvae.version": __version__})
            except Exception as error:
                if writer is not None and logdir is not None:  # its event file holds nothing yet
                    writer.close()
                    for events in logdir.glob(f"*{suffix}"):
                        events.unlink()
                reason = _one_line(error)
                raise TrackingError(f"MLflow store {uri!r}: cannot create a run: {reason}") from error
            run_id = run.info.run_id
        track = Tracking(client, run_id, writer)
        outcome = "ok"
        try:
            yield track
        except Exception:
            outcome = "error"
            raise
        except BaseException:  # KeyboardInterrupt, SystemExit
            outcome = "interrupt"
            raise
        finally:
            if client is not None:
                _end_run(client, run_id, _TERMINAL_STATUS[outcome], raise_errors=outcome == "ok")


def _import_mlflow() -> None:
    try:
        import mlflow  # noqa: F401
    except ImportError as error:
        raise TrackingError("MLflow tracking needs the mlflow extra: pip install 'dcvae[mlflow]'") from error


def _import_tensorboard() -> Any:
    try:
        from tensorboardX import SummaryWriter
    except ImportError as error:
        raise TrackingError(
            "TensorBoard logging needs the tensorboard extra: pip install 'dcvae[tensorboard]'"
        ) from error
    return SummaryWriter


@contextlib.contextmanager
def _file_store_allowed() -> Iterator[None]:
    """MLflow 3's file store, refused unless MLFLOW_ALLOW_FILE_STORE is true, allowed while open."""
    with _environment(MLFLOW_ALLOW_FILE_STORE=os.environ.get("MLFLOW_ALLOW_FILE_STORE", "true")):
        yield


@contextlib.contextmanager
def _environment(**values: str) -> Iterator[None]:
    """Environment variables set for the block, the old values (or their absence) restored after."""
    old = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in old.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _probe_mlflow(uri: str, experiment: str) -> tuple[Any, str]:
    """A client of the store at ``uri`` and the experiment's id (created if new), with one bounded
    try per HTTP request; a TrackingError naming the URI when the store cannot be reached."""
    from mlflow.tracking import MlflowClient

    if uri.startswith("file:"):
        root = Path(urlparse(uri).path)
        existing = next((p for p in (root, *root.parents) if p.exists()), None)
        if existing is not None and not existing.is_dir():
            raise TrackingError(f"MLflow store {uri!r}: {existing} is a file, not a directory")
        if existing is not None and not os.access(existing, os.W_OK | os.X_OK):
            raise TrackingError(f"MLflow store {uri!r}: {existing} is not writable")
    bounded = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": str(PROBE_TIMEOUT_S)}
    try:
        with _environment(**bounded):
            client = MlflowClient(tracking_uri=uri)
            found = client.get_experiment_by_name(experiment)
            if found is not None and found.lifecycle_stage != "active":
                raise TrackingError(f"MLflow store {uri!r}: experiment {experiment!r} is deleted")
            experiment_id = found.experiment_id if found is not None else client.create_experiment(experiment)
    except TrackingError:
        raise
    except Exception as error:  # MlflowException, requests' ConnectionError, OSError, ...
        raise TrackingError(f"MLflow store {uri!r} cannot be reached: {_one_line(error)}") from error
    return client, str(experiment_id)


def _open_writer(summary_writer: Any, logdir: Path, suffix: str) -> Any:
    """A TensorBoard event writer in ``logdir`` (created), its file name ending in ``suffix``: unique,
    so that two runs started in the same second in one directory do not overwrite each other."""
    try:
        logdir.mkdir(parents=True, exist_ok=True)
        return summary_writer(logdir=str(logdir), filename_suffix=suffix)
    except OSError as error:
        raise TrackingError(f"TensorBoard directory {os.fspath(logdir)!r}: {_one_line(error)}") from error


def _end_run(client: Any, run_id: str | None, status: str, *, raise_errors: bool) -> None:
    """Ends the run with ``status``; a failure to do so raises only when nothing else is raising."""
    try:
        client.set_terminated(run_id, status)
    except Exception as error:
        if raise_errors:
            raise TrackingError(f"MLflow: could not end run {run_id}: {_one_line(error)}") from error
