"""`--mlflow` and `--tensorboard` on fit, evaluate and benchmark (issue 17): each run reads back from
a real local MLflow store (and TensorBoard event files) with its parameters, every epoch's loss
terms, its metrics and its model directory; a store that cannot be reached fails before training,
leaving nothing behind."""

import json

import pytest
from cli.test_cli import EVALUATE, QUICK_FIT, _ok, _run, _user_error

pytest.importorskip("mlflow")
pytest.importorskip("tensorboardX")

from mlflow.tracking import MlflowClient  # noqa: E402
from tracking.test_tracking import read_scalars  # noqa: E402

from dcvae.data import load_dataset  # noqa: E402


def _runs(uri):
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("dcvae")
    return client, client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])


def _history(client, run, name):
    return [(m.step, m.value) for m in sorted(client.get_metric_history(run.info.run_id, name),
                                               key=lambda m: m.step)]


@pytest.fixture(scope="module")
def digits_array(tmp_path_factory):
    import numpy as np

    path = tmp_path_factory.mktemp("digits") / "x.npy"
    np.save(path, load_dataset("digits").train.x[:200])
    return path


def test_fit_logs_params_every_epoch_metrics_and_the_model(tmp_path, digits_array):
    uri = (tmp_path / "mlruns").as_uri()
    out = tmp_path / "model"
    fit = ["fit", "--array", digits_array, "--model", "vae", *QUICK_FIT, "--epochs", "3", "--out", out]
    _ok(_run(*fit, "--mlflow", uri, "--tensorboard", tmp_path / "tb"))
    client, runs = _runs(uri)
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED" and run.info.run_name == "fit vae"
    assert run.data.params["model"] == "vae" and run.data.params["epochs"] == "3"
    assert run.data.params["data.array"] == str(digits_array)
    saved = json.loads((out / "config.json").read_text())
    for name in ("train_loss", "train_recon", "train_kl", "validation_loss"):
        group, term = name.split("_")
        expected = [(e["epoch"], pytest.approx(e[group][term])) for e in saved["history"]["epochs"]]
        assert _history(client, run, name) == expected, name
    assert run.data.metrics["threshold"] == pytest.approx(saved["detector"]["thresholds"]["marginal"])
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "model")}
    assert "model/config.json" in artifacts and len(artifacts) >= 2
    scalars = read_scalars(tmp_path / "tb")
    assert [step for step, _ in scalars["train_loss"]] == [1, 2, 3]
    logged = _history(client, run, "train_loss")
    assert scalars["train_loss"] == [(s, pytest.approx(v, rel=1e-6)) for s, v in logged]


def test_evaluate_logs_the_run_record(tmp_path):
    uri = (tmp_path / "mlruns").as_uri()
    result = _ok(_run(*EVALUATE, "--mlflow", uri))
    record = json.loads(result.output.strip().splitlines()[-1])
    client, runs = _runs(uri)
    assert len(runs) == 1
    run = runs[0]
    assert run.data.params["dataset"] == "digits" and run.data.params["class"] == "1"
    assert run.data.tags["dcvae.status"] == "ok" and run.data.tags["dcvae.key"] == record["key"]
    assert run.data.metrics["auc"] == pytest.approx(record["auc"])
    assert run.data.metrics["metrics.recon.auc"] == pytest.approx(record["metrics"]["recon"]["auc"])
    assert [s for s, _ in _history(client, run, "train_loss")] == [1, 2]  # --epochs 2


def test_an_unreachable_store_fails_before_training_and_leaves_nothing(tmp_path, digits_array):
    out = tmp_path / "model"
    _user_error(_run("fit", "--array", digits_array, *QUICK_FIT, "--out", out, "--mlflow",
                     "http://127.0.0.1:9/"), "cannot be reached")
    assert not out.exists()
    _user_error(_run(*EVALUATE, "--mlflow", "http://127.0.0.1:9/"), "http://127.0.0.1:9/")
    blocker = tmp_path / "file"
    blocker.write_text("")
    _user_error(_run("fit", "--array", digits_array, *QUICK_FIT, "--out", out, "--mlflow",
                     blocker / "mlruns"), "")
    assert not out.exists()


def test_a_bare_mlflow_logs_to_mlruns_in_the_current_directory(tmp_path, digits_array, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _ok(_run("fit", "--array", digits_array, *QUICK_FIT, "--out", "m", "--mlflow", "--tensorboard", "tb"))
    _, runs = _runs((tmp_path / "mlruns").as_uri())
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))
