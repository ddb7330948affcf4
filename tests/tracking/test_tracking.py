"""Experiment tracking (issue 17): what is logged to MLflow and TensorBoard reads back as logged, a
failed block marks its run FAILED, and a bad store or a missing extra fails early and cleanly."""

import math
import os
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dcvae.tracking import DEFAULT_MLFLOW_STORE, TrackingError, resolve_mlflow_uri, tracking

pytest.importorskip("mlflow")
pytest.importorskip("tensorboardX")

from mlflow.entities import Run  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402

SRC = Path(__file__).parents[2] / "src"

HISTORY = {
    "epochs": [
        {"epoch": 1, "train": {"loss": 43.96, "recon": 43.87, "kl": 0.031, "tc": 0.5},
         "validation": {"loss": 42.95, "recon": 42.92, "kl": 0.011}, "seconds": 0.02},
        {"epoch": 2, "train": {"loss": 40.1, "recon": 39.9, "kl": 0.2, "tc": 0.25},
         "validation": {"loss": 41.5, "recon": 41.3, "kl": 0.2}, "seconds": 0.03},
        {"epoch": 3, "train": {"loss": 39.0, "recon": 38.7, "kl": 0.3, "tc": 0.125},
         "validation": {"loss": 41.7, "recon": 41.4, "kl": 0.3}, "seconds": 0.025},
    ],
    "best_epoch": 2,
    "stopped_early": False,
}
PARAMS = {"model": {"name": "dcvae", "latent_dim": 8, "hidden": [64, 32]}, "train": {"lr": 0.001},
          "dataset": "mnist", "threshold": None}
FLAT_PARAMS = {"model.name": "dcvae", "model.latent_dim": "8", "model.hidden": "[64, 32]",
               "train.lr": "0.001", "dataset": "mnist"}


def expected_series() -> dict[str, list[tuple[int, float]]]:
    """The per-step values log_history should give for HISTORY, written out by hand from it."""
    series: dict[str, list[tuple[int, float]]] = {}
    for record in HISTORY["epochs"]:
        for group in ("train", "validation"):
            for term, value in record[group].items():
                series.setdefault(f"{group}_{term}", []).append((record["epoch"], value))
        series.setdefault("epoch_seconds", []).append((record["epoch"], record["seconds"]))
    series["best_epoch"] = [(0, 2.0)]
    series["stopped_early"] = [(0, 0.0)]
    return series


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    path = tmp_path / "model"
    path.mkdir()
    (path / "config.json").write_text('{"model": "dcvae"}')
    (path / "weights.safetensors").write_bytes(b"\x00" * 64)
    return path


def only_run(uri: str) -> Run:
    """The one run of the store's dcvae experiment."""
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("dcvae")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1
    return runs[0]


def test_mlflow_run_reads_back_params_per_epoch_metrics_artifacts_and_status(tmp_path, model_dir):
    uri = (tmp_path / "mlruns").as_uri()
    with tracking(mlflow=uri, run_name="fit-dcvae") as track:
        track.log_params(PARAMS)
        track.log_history(HISTORY)
        track.log_metrics({"auc": 0.93, "scores": {"anomaly_score": {"f1": 0.5}}, "roc": [0.1, 0.2]})
        track.log_model_dir(model_dir)
    run = only_run(uri)
    assert run.info.run_id == track.run_id
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "fit-dcvae"
    assert run.data.params == FLAT_PARAMS
    client = MlflowClient(tracking_uri=uri)
    for name, series in expected_series().items():
        logged = sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, name))
        assert logged == series, name
    assert run.data.metrics["auc"] == 0.93
    assert run.data.metrics["scores.anomaly_score.f1"] == 0.5
    assert "roc" not in run.data.metrics  # a list is not a number: skipped
    artifacts = {f.path for f in client.list_artifacts(run.info.run_id, "model")}
    assert artifacts == {"model/config.json", "model/weights.safetensors"}
    local = Path(client.download_artifacts(run.info.run_id, "model/config.json", str(tmp_path)))
    assert local.read_text() == '{"model": "dcvae"}'


def test_a_history_object_and_a_nan_loss_are_logged_as_they_are(tmp_path):
    from dcvae.training.history import History

    history = History(epochs=[{"epoch": 1, "train": {"loss": float("nan"), "discriminator": 0.7},
                               "seconds": 0.1}], best_epoch=None, stopped_early=True)
    uri = (tmp_path / "mlruns").as_uri()
    with tracking(mlflow=uri, run_name="diverged") as track:
        track.log_history(history)
    metrics = only_run(uri).data.metrics
    assert math.isnan(metrics["train_loss"])  # a diverged loss shows as NaN, not as nothing
    assert metrics["train_discriminator"] == 0.7
    assert metrics["stopped_early"] == 1.0
    assert "best_epoch" not in metrics and not any(k.startswith("validation_") for k in metrics)


def test_an_exception_inside_marks_the_run_failed_and_propagates(tmp_path):
    uri = (tmp_path / "mlruns").as_uri()
    with pytest.raises(RuntimeError, match="diverged"), tracking(mlflow=uri, run_name="x") as track:
        track.log_metrics({"train_loss": 1.0}, step=1)
        raise RuntimeError("diverged")
    run = only_run(uri)
    assert run.info.status == "FAILED"
    assert run.data.metrics == {"train_loss": 1.0}  # what was logged before the failure is kept


def test_an_unreachable_server_fails_fast_naming_the_uri_and_creates_no_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    board = tmp_path / "tb"
    entered = False
    start = time.monotonic()
    with pytest.raises(TrackingError) as caught, \
            tracking(mlflow="http://127.0.0.1:9/", tensorboard=board, run_name="x"):
        entered = True
    assert time.monotonic() - start < 10  # MLflow's own retries with backoff would take minutes
    message = str(caught.value)
    assert "http://127.0.0.1:9/" in message and "\n" not in message
    assert not entered  # fails before the block: before any training
    assert list(tmp_path.iterdir()) == []  # no ./mlruns, no TensorBoard directory


def test_a_store_path_under_a_file_is_refused_before_anything_is_written(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    with pytest.raises(TrackingError, match="not-a-dir"), \
            tracking(mlflow=str(blocker / "mlruns"), run_name="x"):
        pytest.fail("the block must not run")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["not-a-dir"]


def test_the_default_store_is_mlruns_in_the_current_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    assert resolve_mlflow_uri(DEFAULT_MLFLOW_STORE) == (tmp_path / "mlruns").as_uri()
    assert resolve_mlflow_uri("file:runs/x") == (tmp_path / "runs" / "x").as_uri()
    assert resolve_mlflow_uri("http://host:5000") == "http://host:5000"
    with tracking(mlflow=DEFAULT_MLFLOW_STORE, run_name="x") as track:
        track.log_metrics({"auc": 0.5})
        assert os.environ["MLFLOW_ALLOW_FILE_STORE"] == "true"  # MLflow 3 refuses the file store without
    assert "MLFLOW_ALLOW_FILE_STORE" not in os.environ  # the process's environment is left as it was
    assert only_run((tmp_path / "mlruns").as_uri()).data.metrics == {"auc": 0.5}


def read_scalars(logdir: Path) -> dict[str, list[tuple[int, float]]]:
    """The scalars of the one event file in ``logdir``, read record by record as TensorBoard does
    (TFRecord framing: length, masked CRC-32C of it, payload, masked CRC-32C of it; both checked).
    TensorBoard itself (with grpcio and its data server) is not installed for this one reader."""
    from tensorboardX.crc32c import crc32c
    from tensorboardX.proto.event_pb2 import Event

    def masked(data: bytes) -> int:
        crc = crc32c(data)
        return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF

    (path,) = logdir.glob("events.out.tfevents.*")
    raw, offset, scalars = path.read_bytes(), 0, {}
    while offset < len(raw):
        header = raw[offset:offset + 8]
        (length,) = struct.unpack("<Q", header)
        payload = raw[offset + 12:offset + 12 + length]
        (header_crc,) = struct.unpack("<I", raw[offset + 8:offset + 12])
        (payload_crc,) = struct.unpack("<I", raw[offset + 12 + length:offset + 16 + length])
        assert header_crc == masked(header) and payload_crc == masked(payload)
        offset += 16 + length
        event = Event.FromString(payload)
        for value in event.summary.value:
            if value.HasField("simple_value"):
                scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
    return scalars


def test_tensorboard_scalars_read_back_per_step(tmp_path):
    logdir = tmp_path / "tb" / "run1"
    with tracking(tensorboard=logdir, run_name="x") as track:
        track.log_params(PARAMS)
        track.log_history(HISTORY)
        track.log_metrics({"auc": 0.93})
    scalars = read_scalars(logdir)
    expected = {**expected_series(), "auc": [(0, 0.93)]}
    assert set(scalars) == set(expected)
    for name, series in expected.items():  # event files keep float32
        assert [s for s, _ in scalars[name]] == [s for s, _ in series], name
        assert [v for _, v in scalars[name]] == pytest.approx([v for _, v in series], rel=1e-6), name


def test_both_trackers_at_once_get_the_same_scalars(tmp_path):
    uri, logdir = (tmp_path / "mlruns").as_uri(), tmp_path / "tb"
    with tracking(mlflow=uri, tensorboard=logdir, run_name="x") as track:
        track.log_history(HISTORY)
    client = MlflowClient(tracking_uri=uri)
    run_id = only_run(uri).info.run_id
    scalars = read_scalars(logdir)
    assert set(scalars) == set(expected_series())
    for name, series in scalars.items():
        logged = sorted((m.step, m.value) for m in client.get_metric_history(run_id, name))
        assert [s for s, _ in logged] == [s for s, _ in series], name
        assert [v for _, v in logged] == pytest.approx([v for _, v in series], rel=1e-6), name


def test_nothing_asked_is_a_no_op_that_writes_and_imports_nothing(tmp_path):
    code = (
        "import os, sys\n"
        "from dcvae.tracking import tracking\n"
        "with tracking(run_name='x') as track:\n"
        "    track.log_params({'a': 1})\n"
        "    track.log_history({'epochs': [{'epoch': 1, 'train': {'loss': 1.0}}]})\n"
        "    track.log_metrics({'auc': 0.5}); track.log_model_dir('nowhere'); track.set_tags({'t': 'v'})\n"
        "assert not track.active and track.run_id is None\n"
        "heavy = {'mlflow', 'tensorboardX', 'torch'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
        "assert os.listdir('.') == [], os.listdir('.')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(SRC)}  # this checkout's package, wherever cwd is
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                            timeout=60, env=env)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(("asked", "extra"), [("mlflow", "mlflow"), ("tensorboard", "tensorboard")])
def test_a_missing_extra_names_its_pip_install(tmp_path, monkeypatch, asked, extra):
    monkeypatch.setitem(sys.modules, "mlflow" if asked == "mlflow" else "tensorboardX", None)
    where = (tmp_path / "mlruns").as_uri() if asked == "mlflow" else tmp_path / "tb"
    with pytest.raises(TrackingError, match=rf"pip install 'dcvae\[{extra}\]'"), \
            tracking(**{asked: where}, run_name="x"):
        pytest.fail("the block must not run")
    assert list(tmp_path.iterdir()) == []


def test_a_run_that_cannot_be_created_leaves_no_event_file(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(MlflowClient, "create_run", refuse)
    uri, logdir = (tmp_path / "mlruns").as_uri(), tmp_path / "tb"
    with pytest.raises(TrackingError, match="cannot create a run: Permission denied"), \
            tracking(mlflow=uri, tensorboard=logdir, run_name="x"):
        pytest.fail("the block must not run")
    assert list(logdir.iterdir()) == []
