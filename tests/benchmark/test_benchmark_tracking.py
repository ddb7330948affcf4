"""`dcvae benchmark --mlflow --tensorboard` (issue 17): one tracked run for the grid and one under it
for each run it finished, each with its record's metrics (and saved model)."""

import json

import pytest
from cli.test_cli import _ok, _run

pytest.importorskip("mlflow")
pytest.importorskip("tensorboardX")

from cli.test_cli_tracking import _runs  # noqa: E402
from tracking.test_tracking import read_scalars  # noqa: E402

GRID = """
name = "two"
save_models = "first-seed"
[defaults]
epochs = 1
latent_dim = 2
[[grid]]
datasets = ["digits"]
classes = [0]
seeds = [0, 1]
models = ["vae"]
"""


def test_benchmark_logs_one_run_per_grid_run_under_the_grid(tmp_path):
    uri = (tmp_path / "mlruns").as_uri()
    grid_file = tmp_path / "two.toml"
    grid_file.write_text(GRID)
    _ok(_run("benchmark", grid_file, "--out", tmp_path / "out", "--quiet", "--mlflow", uri,
             "--tensorboard", tmp_path / "tb"))
    records = [json.loads(line) for line in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    client, runs = _runs(uri)
    grid = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(grid) == 1 and grid[0].data.metrics["ran"] == len(records) == 2
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {grid[0].info.run_id}
    by_key = {r.data.tags["dcvae.key"]: r for r in children}
    assert set(by_key) == {r["key"] for r in records}
    for record in records:
        assert by_key[record["key"]].data.metrics["auc"] == pytest.approx(record["auc"])
        saved = bool(record.get("model_dir"))
        assert saved == (record["seed"] == 0)  # first-seed: one run with its model, one without
        assert bool(client.list_artifacts(by_key[record["key"]].info.run_id, "model")) == saved
        board = read_scalars(tmp_path / "tb" / record["key"])
        assert board["auc"] == [(0, pytest.approx(record["auc"], rel=1e-6))]
