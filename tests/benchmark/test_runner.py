"""The benchmark runner (dcvae.benchmark.runner): executors agree, a killed grid resumes, reuse,
and the CLI fails before training on bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from sklearn.metrics import roc_auc_score

from dcvae.benchmark import ResultStore, run_benchmark
from dcvae.cli import main
from dcvae.io.model_dir import data_files


def _by_key(directory: Path) -> dict[str, dict]:
    return {r["key"]: r for r in ResultStore(directory).records()}


@pytest.mark.slow
def test_a_grid_runs_records_everything_and_skips_on_rerun(tiny: Path, tmp_path: Path):
    out = tmp_path / "out"
    counts = run_benchmark(tiny, out, progress=False)
    assert counts == {"total": 12, "skipped": 0, "reused": 0, "ran": 12}
    records = _by_key(out)
    assert len(records) == 12
    for r in records.values():
        assert r["status"] == "ok"
        assert set(r["metrics"]) == {"recon", "elbo", "kl", "typical-elbo"}
        assert r["auc"] == r["metrics"]["recon"]["auc"]
        assert 0.0 <= r["auc"] <= 1.0 and 0.0 <= r["metrics"]["recon"]["validation_auc"] <= 1.0
        assert len(r["metrics"]["recon"]["roc_tpr"]) == 51
        assert r["epochs_run"] == 1 and r["train_seconds"] > 0
        assert r["condition_mode"] == ("marginal" if r["model"] == "dcvae" else "unconditional")
        assert r["n_anomalies"] > 0 and r["n_train"] > 0 and r["hardware"]["cpu_cores"] >= 1
        assert (r["model_dir"] is not None) == (r["seed"] == 0)
        if r["model_dir"]:
            assert data_files(out / r["model_dir"])[0].is_file()
        with np.load(out / r["scores_file"], allow_pickle=False) as raw:  # recomputes the metrics
            labels = raw["test_labels"]
            assert labels.sum() == r["n_anomalies"] and len(labels) == r["n_test"]
            for score in ("recon", "elbo", "kl"):
                assert roc_auc_score(labels, raw[f"test_{score}"]) == pytest.approx(
                    r["metrics"][score]["auc"], abs=1e-6)
            # typicality: fitted on the normal validation carve's scores, nothing else
            val = raw["validation_elbo"].astype(np.float64)
            typical = np.abs(raw["test_elbo"] - val.mean()) / val.std()
            assert roc_auc_score(labels, typical) == pytest.approx(
                r["metrics"]["typical-elbo"]["auc"], abs=1e-5)
    assert (out / "config.toml").read_text() == tiny.read_text()
    again = run_benchmark(tiny, out, progress=False)
    assert again == {"total": 12, "skipped": 12, "reused": 0, "ran": 0}
    assert len((out / "results.jsonl").read_text().splitlines()) == 12


@pytest.mark.slow
def test_executors_agree(tiny: Path, tmp_path: Path):
    """The same grid in this process, in a process pool and on Ray gives the same records.

    Ray is a test dependency: CI runs this, never skips it."""
    small = tmp_path / "small.toml"
    small.write_text(tiny.read_text().replace('models = ["vae", "dcvae", "factorvae"]',
                                              'models = ["vae", "dcvae"]')
                     .replace("classes = [0, 1]", "classes = [1]"))
    here, pool, ray_out = tmp_path / "here", tmp_path / "pool", tmp_path / "ray"
    run_benchmark(small, here, progress=False, threads=1)
    run_benchmark(small, pool, progress=False, workers=2, threads=1)
    run_benchmark(small, ray_out, progress=False, executor="ray", workers=2, threads=1)
    a, b, c = _by_key(here), _by_key(pool), _by_key(ray_out)
    assert set(a) == set(b) == set(c) and len(a) == 4
    for key in a:
        for score in ("recon", "elbo", "kl"):
            assert a[key]["metrics"][score]["auc"] == b[key]["metrics"][score]["auc"]
            assert a[key]["metrics"][score]["auc"] == c[key]["metrics"][score]["auc"]


@pytest.mark.slow
def test_a_killed_benchmark_leaves_whole_records_and_resumes(tiny: Path, tmp_path: Path):
    """SIGKILL mid-grid: every line is a whole record; the rerun does only what is missing."""
    config = tmp_path / "slow.toml"
    config.write_text(tiny.read_text().replace("epochs = 1", "epochs = 12")
                      .replace('models = ["vae", "dcvae", "factorvae"]', 'models = ["dcvae"]')
                      .replace("seeds = [0, 1]", "seeds = [0, 1, 2]"))
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "dcvae.cli", "benchmark", str(config), "--out",
                             str(out), "--quiet", "--threads", "1"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    results = out / "results.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and (not results.exists() or len(results.read_text().splitlines()) < 2):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = _by_key(out)
    assert 2 <= len(done_before) < 6, "the kill should land mid-grid"
    assert all(line.endswith("}") for line in results.read_text().splitlines())
    counts = run_benchmark(config, out, progress=False, threads=1)
    assert counts["skipped"] == len(done_before) and counts["ran"] == 6 - len(done_before)
    after = _by_key(out)
    assert len(after) == 6
    clean = tmp_path / "clean"
    run_benchmark(config, clean, progress=False, threads=1)
    assert {k: r["auc"] for k, r in after.items()} == {k: r["auc"] for k, r in _by_key(clean).items()}


def _children(pid: int) -> set[int]:
    """The pids whose parent is ``pid`` (Linux: /proc)."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_killing_the_driver_ends_its_pool_workers(tiny: Path, tmp_path: Path):
    """(issue 15, item 17) SIGKILL to `dcvae benchmark --workers 2`: its workers end too."""
    config = tmp_path / "slow.toml"
    config.write_text(tiny.read_text().replace("epochs = 1", "epochs = 200"))
    proc = subprocess.Popen([sys.executable, "-m", "dcvae.cli", "benchmark", str(config), "--out",
                             str(tmp_path / "out"), "--quiet", "--threads", "1", "--workers", "2"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    workers: set[int] = set()
    while time.time() < deadline and len(workers) < 2:
        workers = {pid for pid in _children(proc.pid) if "spawn_main" in Path(f"/proc/{pid}/cmdline")
                   .read_bytes().decode(errors="replace")} if _alive(proc.pid) else set()
        time.sleep(0.2)
    assert len(workers) == 2, "the pool workers did not start"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 30
    while time.time() < deadline and any(_alive(pid) for pid in workers):
        time.sleep(0.2)
    left = [pid for pid in workers if _alive(pid)]
    for pid in left:  # do not leave them behind even when the test fails
        os.kill(pid, signal.SIGKILL)
    assert left == []


@pytest.mark.slow
def test_two_benchmark_processes_on_one_store_finish_the_grid(tiny: Path, tmp_path: Path):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "dcvae.cli", "benchmark", str(tiny), "--out", str(out), "--quiet",
           "--threads", "1"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err.decode()
    records = _by_key(out)
    assert len(records) == 12
    lines = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert {r["key"] for r in lines} == set(records)


def test_a_diverging_run_is_recorded_as_such(tmp_path: Path):
    config = tmp_path / "hot.toml"
    config.write_text('[defaults]\nepochs = 2\nlr = 1e30\npatience = 0\n[[grid]]\ndatasets = ["digits"]\n'
                      'models = ["vae"]\nseeds = [0]\nclasses = [0]\n')
    run_benchmark(config, tmp_path / "out", progress=False)
    (record,) = ResultStore(tmp_path / "out").records()
    assert record["status"] == "diverged" and "diverged" in record["error"]


# ------------------------------------------------------------------------------------------ CLI
def test_cli_bad_config_fails_before_training(tmp_path: Path):
    config = tmp_path / "bad.toml"
    config.write_text('[[grid]]\ndatasets = ["digits"]\nmodels = ["vae", "nonsense"]\nseeds = [0]\n')
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["benchmark", str(config), "--out", str(out)])
    assert result.exit_code != 0
    assert "Error:" in result.output and "nonsense" in result.output
    assert not (out / "results.jsonl").exists()


def test_cli_unwritable_output_fails_before_training(tiny: Path, tmp_path: Path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    result = CliRunner().invoke(main, ["benchmark", str(tiny), "--out", str(blocker / "out")])
    assert result.exit_code != 0 and "not writable" in result.output


def test_cli_missing_dataset_fails_before_training(tmp_path: Path, monkeypatch):
    import dcvae.data.download as download
    import dcvae.data.search as search

    def offline(*args, **kwargs):
        raise OSError("offline")

    empty = tmp_path / "empty"
    monkeypatch.setattr(download, "open_url", offline)
    monkeypatch.setattr(search, "cache_dir", lambda: empty / "cache")
    monkeypatch.setattr(search, "SYSTEM_DATA_DIR", empty / "system")
    monkeypatch.setenv("DCVAE_DATA", str(empty))
    config = tmp_path / "c.toml"
    config.write_text('[[grid]]\ndatasets = ["emnist-letters"]\nmodels = ["vae"]\nseeds = [0]\n')
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["benchmark", str(config), "--out", str(out)])
    assert result.exit_code != 0 and "Error:" in result.output
    assert "emnist" in result.output.lower()
    assert not (out / "results.jsonl").exists()


def test_cli_runs_and_reports_counts(tiny: Path, tmp_path: Path):
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["benchmark", str(tiny), "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "12 runs in the grid: 0 already done, 0 reused, 12 run now" in result.output
    result = CliRunner().invoke(main, ["benchmark", str(tiny), "--out", str(out), "--quiet"])
    assert "12 already done, 0 reused, 0 run now" in result.output


REUSE_SEARCH = """
name = "search"
scores = ["recon", "elbo"]
save_scores = true
save_models = "first-seed"
[defaults]
epochs = 1
latent_dim = 2
patience = 0
[[grid]]
datasets = ["digits"]
classes = [0]
seeds = [0]
models = ["vae"]
settings = { lr = 1e-3 }
[[grid]]
datasets = ["digits"]
classes = [0]
seeds = [0]
models = ["vae"]
settings = { lr = 3e-3 }
"""


def test_reuse_copies_the_same_runs_with_their_files_and_trains_the_rest(tmp_path: Path):
    search, final = tmp_path / "search.toml", tmp_path / "final.toml"
    search.write_text(REUSE_SEARCH)
    # the winner's setting, now over two classes: class 0 is the very same run as the search's
    final.write_text(REUSE_SEARCH.split("[[grid]]")[0].replace('"search"', '"final"')
                     + '[models.vae]\nlr = 3e-3\n[[grid]]\ndatasets = ["digits"]\nclasses = [0, 1]\n'
                       'seeds = [0]\nmodels = ["vae"]\n')
    run_benchmark(search, tmp_path / "s", progress=False)
    counts = run_benchmark(final, tmp_path / "f", progress=False, reuse=[tmp_path / "s"])
    assert counts == {"total": 2, "skipped": 0, "reused": 1, "ran": 1}
    source = {r["key"]: r for r in ResultStore(tmp_path / "s").records()}
    records = {r["class"]: r for r in ResultStore(tmp_path / "f").records()}
    copied, trained = records[0], records[1]
    assert copied["key"] in source and source[copied["key"]]["settings"]["lr"] == 3e-3
    assert copied["auc"] == source[copied["key"]]["auc"]
    assert copied["reused_from"] == (tmp_path / "s").as_posix() and "reused_from" not in trained
    # the files travel with the record, into this store
    for record in (copied, trained):
        assert np.load(tmp_path / "f" / record["scores_file"])["test_recon"].size == record["n_test"]
        assert (tmp_path / "f" / record["model_dir"]).is_dir()
    assert copied["model_dir"].startswith("models/")
    # a second pass finds everything done
    assert run_benchmark(final, tmp_path / "f", progress=False, reuse=[tmp_path / "s"])["skipped"] == 2


@pytest.mark.parametrize("where", ["absolute", "parent", "link"])
def test_reuse_never_follows_a_record_path_out_of_the_source_store(tmp_path: Path, where: str):
    """(issue 15, item 20) A record's paths are data: one pointing outside the source store (an
    absolute path, ``../``, a link) is not copied; the run trains again."""
    search = tmp_path / "search.toml"
    search.write_text(REUSE_SEARCH)
    source = tmp_path / "s"
    run_benchmark(search, source, progress=False)
    secret = tmp_path / "secret.npz"
    secret.write_bytes(b"not yours")
    target = {"absolute": secret.as_posix(), "parent": "../secret.npz", "link": "scores/link.npz"}[where]
    if where == "link":
        (source / "scores").mkdir(exist_ok=True)
        (source / "scores" / "link.npz").symlink_to(secret)
    lines = [json.loads(line) for line in (source / "results.jsonl").read_text().splitlines()]
    for record in lines:
        record["scores_file"] = target
    (source / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    counts = run_benchmark(search, tmp_path / "f", progress=False, reuse=[source])
    assert counts["reused"] == 0 and counts["ran"] == counts["total"]
    copied = [p for p in (tmp_path / "f").rglob("*") if p.is_file() and p.read_bytes() == b"not yours"]
    assert copied == []


def test_reuse_trains_again_when_the_source_lacks_a_file_this_grid_saves(tmp_path: Path):
    search = tmp_path / "search.toml"
    search.write_text(REUSE_SEARCH.replace("save_scores = true", "save_scores = false"))
    run_benchmark(search, tmp_path / "s", progress=False)
    with_scores = tmp_path / "final.toml"
    with_scores.write_text(REUSE_SEARCH)
    counts = run_benchmark(with_scores, tmp_path / "f", progress=False, reuse=[tmp_path / "s"])
    assert counts["reused"] == 0 and counts["ran"] == 2
    with pytest.raises(FileNotFoundError, match="results.jsonl"):
        run_benchmark(with_scores, tmp_path / "g", progress=False, reuse=[tmp_path / "nowhere"])



FACTORS_GRID = """
name = "factors"
save_models = "all"
[defaults]
epochs = 1
latent_dim = 4
hidden_dims = [64, 32]
batch_size = 100
[[grid]]
datasets = ["dsprites"]
protocol = "factors"
seeds = [0]
models = ["vae", "cvae"]
settings = { train_size = 600, eval_size = 300 }
"""


@pytest.mark.slow  # ~9 s: a 2-run factors grid, measured again from its saved models
def test_a_factors_grid_records_the_metrics_resumably(tmp_path: Path):
    from dcvae.benchmark.runner import cached_dataset
    from dcvae.detector import AnomalyDetector
    from dcvae.disentanglement.measure import measure_disentanglement
    from dcvae.evaluation.run import evaluation_rows

    grid = tmp_path / "factors.toml"
    grid.write_text(FACTORS_GRID)
    out = tmp_path / "out"
    assert run_benchmark(grid, out, threads=1, progress=False)["ran"] == 2
    data = cached_dataset("dsprites", None)
    rows = evaluation_rows(len(data.test), 300)
    for r in _by_key(out).values():
        assert r["status"] == "ok" and r["protocol"] == "factors" and r["n_test"] == 300
        assert r["n_train"] + r["n_validation"] == 600 and r["steps"] == 6  # 540 images, batch 100
        values = [v for measured in r["disentanglement"].values() for v in measured.values()]
        assert values and all(0.0 <= v <= 1.0 for v in values)
        assert ("all" in r["disentanglement"]) == (r["model"] == "vae")
        assert "class-" not in r["model_dir"]
        # the saved model, measured again by the library function, gives the record
        detector = AnomalyDetector.load(out / r["model_dir"])
        assert measure_disentanglement(detector, data.test.x[rows], data.factors.test[rows],
                                       condition_factor=0, condition_names=data.class_names,
                                       seed=r["seed"]) == r["disentanglement"]
    assert run_benchmark(grid, out, threads=1, progress=False) == {"total": 2, "skipped": 2, "reused": 0,
                                                                   "ran": 0}
