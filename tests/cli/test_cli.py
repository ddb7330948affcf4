"""The dcvae command: evaluate, fit, score and list end to end; user errors are one line, no traceback."""

import csv
import errno
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import click
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import dcvae
from dcvae.cli import main
from dcvae.cli.main import COMMANDS
from dcvae.data import DATASETS, load_image_folder
from dcvae.detector import AnomalyDetector
from dcvae.evaluation.protocols import PROTOCOLS
from dcvae.evaluation.run import RunSpec
from dcvae.io.model_dir import data_files
from dcvae.models import MODELS
from dcvae.scoring import SCORES

EVALUATE = ["evaluate", "--dataset", "digits", "--protocol", "leave-one-out", "--class", "1",
            "--model", "dcvae", "--epochs", "2", "--batch-size", "64", "--latent-dim", "4",
            "--seed", "0", "--train-size", "300", "--json", "--quiet"]
QUICK_FIT = ["--epochs", "1", "--batch-size", "16", "--latent-dim", "2", "--quiet",
             "--param", "hidden_dims=[32,16]"]


def _run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _ok(result):
    assert result.exit_code == 0, result.output
    return result


def _user_error(result, message, exit_code=1):
    """The command failed the way a user should see it: one 'Error:' line, no traceback."""
    assert result.exit_code == exit_code, result.output
    assert isinstance(result.exception, SystemExit)  # not an escaped exception
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    assert message in errors[0], errors[0]


def _image_folder(root, size=(8, 8), per_class=15, seed=0):
    """root/<class>/<i>.png, 8-bit grayscale; the two classes differ in brightness."""
    rng = np.random.default_rng(seed)
    for k, name in enumerate(("cats", "dogs")):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 128, size=size) + 100 * k
            Image.fromarray(pixels.astype(np.uint8), mode="L").save(root / name / f"{i:02d}.png")
    return root


def _read_csv(path):
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    return rows[0], rows[1:]


@pytest.fixture(scope="module")
def image_model(tmp_path_factory):
    """A dCVAE fitted through the CLI on a folder of two conditions."""
    root = tmp_path_factory.mktemp("cli")
    images = _image_folder(root / "images")
    _ok(_run("fit", "--images", images, "--model", "dcvae", "--out", root / "model", *QUICK_FIT))
    return images, root / "model"


def test_evaluate_prints_one_json_object_with_the_metrics():
    result = _ok(_run(*EVALUATE))
    record = json.loads(result.stdout)
    assert {"key", "model", "dataset", "protocol", "class", "auc", "average_precision", "f1",
            "train_seconds", "epochs_run", "seed", "settings", "scores", "metrics"} <= set(record)
    assert (record["model"], record["dataset"], record["protocol"]) == ("dcvae", "digits", "leave-one-out")
    assert (record["class"], record["seed"], record["epochs_run"]) == (1, 0, 2)
    # the run's identity is what the user set, as a grid file would write it: the same key
    assert record["settings"] == {"epochs": 2, "batch_size": 64, "latent_dim": 4, "train_size": 300}
    assert record["scores"] == ["recon"]
    spec = RunSpec("dcvae", "digits", "leave-one-out", 1, 0, record["settings"], ("recon",))
    assert record["key"] == spec.key
    assert 0.0 <= record["auc"] <= 1.0 and 0.0 <= record["average_precision"] <= 1.0
    assert record["n_train"] + record["n_validation"] == 300
    assert "note: digits" in result.stderr  # notes go to stderr, the JSON alone to stdout
    again = json.loads(_ok(_run(*EVALUATE)).stdout)
    assert again["auc"] == record["auc"]
    assert again["average_precision"] == record["average_precision"]


def test_fit_on_an_image_folder_then_score_it(image_model, tmp_path):
    images, model = image_model
    config = json.loads((model / "config.json").read_text())
    assert config["model"] == "dcvae"
    assert config["config"]["condition_names"] == ["cats", "dogs"]
    assert config["config"]["input_shape"] == [1, 8, 8]
    out = tmp_path / "scores.csv"
    result = _ok(_run("score", model, "--images", images, "--out", out))
    assert "marginal mode" in result.output
    header, rows = _read_csv(out)
    assert header == ["index", "file", "label", "score", "anomaly", "error"]
    assert len(rows) == 30
    assert [r[1] for r in rows] == [f"{k}/{i:02d}.png" for k in ("cats", "dogs") for i in range(15)]
    assert [r[2] for r in rows] == ["cats"] * 15 + ["dogs"] * 15
    scores = np.array([float(r[3]) for r in rows])
    # the CSV holds what the Python API computes from the same folder
    data, _ = load_image_folder(images)
    detector = AnomalyDetector.load(model)
    assert np.array_equal(scores, detector.decision_function(data.x))
    assert [int(r[4]) for r in rows] == list((scores > detector.thresholds_["marginal"]).astype(int))

    given_out = tmp_path / "given.csv"
    result = _ok(_run("score", model, "--images", images, "--out", given_out, "--given"))
    assert "given mode" in result.output
    _, given_rows = _read_csv(given_out)
    given = np.array([float(r[3]) for r in given_rows])
    assert np.all(scores <= given + 1e-9)  # marginal = minimum over conditions, given is one of them
    assert not np.array_equal(scores, given)


def test_fit_on_array_files(tmp_path):
    rng = np.random.default_rng(0)
    features = rng.normal(3.0, 2.0, size=(60, 4)).astype(np.float32)
    np.save(tmp_path / "x.npy", features)
    _ok(_run("fit", "--array", tmp_path / "x.npy", "--model", "vae", "--out", tmp_path / "npy",
             *QUICK_FIT))
    config = json.loads((tmp_path / "npy" / "config.json").read_text())["config"]
    assert config["input_shape"] == [4] and config["likelihood"] == "gaussian"
    assert config["condition_names"] == []

    lines = ["f0,f1,f2,cond"] + [f"{a:.4f},{b:.4f},{c:.4f},{'xy'[i % 2]}"
                                  for i, (a, b, c) in enumerate(rng.random((40, 3)))]
    (tmp_path / "x.csv").write_text("\n".join(lines) + "\n")
    _ok(_run("fit", "--array", tmp_path / "x.csv", "--condition-column", "cond", "--model", "cvae",
             "--out", tmp_path / "csv", *QUICK_FIT))
    config = json.loads((tmp_path / "csv" / "config.json").read_text())["config"]
    assert config["input_shape"] == [3] and config["likelihood"] == "gaussian"  # a table, though in [0, 1]
    assert config["condition_names"] == ["x", "y"]
    out = tmp_path / "scores.csv"
    _ok(_run("score", tmp_path / "csv", "--array", tmp_path / "x.csv", "--condition-column", "cond",
             "--given", "--out", out))
    _, rows = _read_csv(out)
    assert [r[2] for r in rows] == ["x", "y"] * 20 and {r[1] for r in rows} == {""}


def test_list_names_every_model_dataset_protocol_and_score():
    words = {tuple(line.split()[:2]) for line in _ok(_run("list")).output.splitlines()}
    for kind, names in (("model", MODELS), ("dataset", DATASETS), ("protocol", PROTOCOLS),
                        ("score", SCORES)):
        for name in names:
            assert (kind, name) in words
    assert ("protocol", "factors") in words  # the grids' disentanglement protocol


def test_unknown_dataset_is_a_usage_error():
    _user_error(_run("evaluate", "--dataset", "mnits", "--class", "1"),
                "Invalid value for '--dataset'", exit_code=2)


def test_a_class_that_does_not_exist_is_named():
    _user_error(_run("evaluate", "--dataset", "digits", "--class", "42", "--quiet"),
                "class 42 does not exist in digits: classes are 0..9")


def test_scoring_with_a_corrupt_model_directory(image_model, tmp_path):
    images, model = image_model
    broken = tmp_path / "broken"
    shutil.copytree(model, broken)
    data_files(broken)[0].write_bytes(b"\x00" * 100)
    _user_error(_run("score", broken, "--images", images, "--out", tmp_path / "s.csv"),
                "is not a valid safetensors file")
    (broken / "config.json").write_text("{not json")
    _user_error(_run("score", broken, "--images", images, "--out", tmp_path / "s.csv"),
                "is not valid JSON")
    empty = tmp_path / "empty"
    empty.mkdir()
    _user_error(_run("score", empty, "--images", images, "--out", tmp_path / "s.csv"),
                "is not a saved dcvae model: config.json not found")
    assert not (tmp_path / "s.csv").exists()


def test_scoring_images_of_another_size(image_model, tmp_path):
    _, model = image_model
    small = _image_folder(tmp_path / "small", size=(6, 6))
    _user_error(_run("score", model, "--images", small, "--out", tmp_path / "s.csv"),
                "X has sample shape (1, 6, 6), but the model was trained on (1, 8, 8)")
    # resizing them to the trained size is the user's way out
    _ok(_run("score", model, "--images", small, "--size", "8x8", "--out", tmp_path / "s.csv"))


def test_fit_never_replaces_a_trained_model_without_overwrite(image_model, tmp_path):
    """(issue 15, item 5) A second fit into the same --out is refused, and the model is untouched."""
    images, model = image_model
    out = tmp_path / "model"
    shutil.copytree(model, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    _user_error(_run("fit", "--images", images, "--out", out, "--seed", "1", *QUICK_FIT),
                "holds a trained model; pass --overwrite to replace it", exit_code=2)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    _ok(_run("fit", "--images", images, "--out", out, "--seed", "1", "--overwrite", *QUICK_FIT))
    assert (out / "config.json").read_bytes() != before["config.json"]


@pytest.mark.parametrize("device, message", [
    ("gpu", "device must be one of ['auto', 'cpu', 'cuda', 'cuda:N', 'mps'], got 'gpu'"),
    ("banana", "got 'banana'"),
    ("meta", "got 'meta'"),
    pytest.param("cuda", "this machine has no CUDA device",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")),
])
def test_a_device_the_machine_lacks_is_one_error_before_any_work(image_model, tmp_path, device, message):
    """(issue 15, item 3) Checked when the options are read, by fit and by score."""
    images, model = image_model
    _user_error(_run("fit", "--images", images, "--out", tmp_path / "m", "--device", device, *QUICK_FIT),
                message, exit_code=2)
    assert not (tmp_path / "m").exists()
    _user_error(_run("score", model, "--images", images, "--out", tmp_path / "s.csv", "--device", device),
                message, exit_code=2)
    assert not (tmp_path / "s.csv").exists()


def test_score_on_the_auto_device_scores_as_on_the_cpu(image_model, tmp_path):
    images, model = image_model
    _ok(_run("score", model, "--images", images, "--out", tmp_path / "cpu.csv"))
    _ok(_run("score", model, "--images", images, "--out", tmp_path / "auto.csv", "--device", "auto"))
    cpu, auto = (np.array([float(r[3]) for r in _read_csv(tmp_path / f)[1]]) for f in ("cpu.csv", "auto.csv"))
    assert np.allclose(cpu, auto, rtol=1e-5, atol=1e-6)


def test_score_lists_the_folder_once(image_model, tmp_path, monkeypatch):
    """(issue 15, item 16) A file added while the folder is scored cannot shift the scores onto
    other files' names: the folder is listed once, and each row is its own file's score."""
    import dcvae.data.images as images_module

    images, model = image_model
    folder = tmp_path / "images"
    shutil.copytree(images, folder)
    listings = []
    real = images_module._folder_layout

    def listing(root):
        listings.append(root)
        if len(listings) == 2:  # a second listing would see a file written in between
            Image.fromarray(np.zeros((8, 8), np.uint8), mode="L").save(folder / "cats" / "00a.png")
        return real(root)

    monkeypatch.setattr(images_module, "_folder_layout", listing)
    _ok(_run("score", model, "--images", folder, "--out", tmp_path / "s.csv"))
    assert len(listings) == 1
    monkeypatch.undo()
    _, rows = _read_csv(tmp_path / "s.csv")
    detector = AnomalyDetector.load(model)
    for row in rows:
        one = np.asarray(Image.open(folder / row[1]))[None, None]
        assert float(row[3]) == pytest.approx(float(detector.decision_function(one)[0]), rel=1e-6)


def test_score_never_writes_over_its_inputs(image_model, tmp_path):
    """(issue 15, item 15) --out is refused where it would replace the model's files, the array
    file or an image being scored; nothing is touched."""
    images, model = image_model
    config = (model / "config.json").read_bytes()
    _user_error(_run("score", model, "--images", images, "--out", model / "config.json"),
                "lies inside the model directory", exit_code=2)
    assert (model / "config.json").read_bytes() == config
    folder = tmp_path / "images"
    shutil.copytree(images, folder)
    picture = (folder / "cats" / "00.png").read_bytes()
    _user_error(_run("score", model, "--images", folder, "--out", folder / "cats" / "00.png"),
                "is a file being scored", exit_code=2)
    assert (folder / "cats" / "00.png").read_bytes() == picture
    table = tmp_path / "x.npy"
    np.save(table, np.zeros((3, 1, 8, 8), np.uint8))
    before = table.read_bytes()
    _user_error(_run("score", model, "--array", table, "--out", table), "is a file being scored", exit_code=2)
    assert table.read_bytes() == before


def test_a_second_fit_into_the_same_out_is_refused_while_the_first_runs(image_model, tmp_path):
    """(issue 15, item 15) Two fits into one new --out: the second is refused, not both 'succeed'."""
    from filelock import FileLock

    images, _ = image_model
    out = tmp_path / "new"
    out.mkdir()
    with FileLock(str(out / ".dcvae-fit.lock")):  # a first fit holds OUT
        _user_error(_run("fit", "--images", images, "--out", out, *QUICK_FIT),
                    "another dcvae fit is writing to it", exit_code=2)
    assert not (out / "config.json").exists()
    _ok(_run("fit", "--images", images, "--out", out, *QUICK_FIT))  # once it is free
    assert (out / "config.json").exists()


def test_a_fit_killed_in_its_first_write_leaves_a_folder_the_next_fit_takes(image_model, tmp_path):
    """(issue 15, item 14) Only a killed write's temporary file in OUT: a fresh fit is not refused,
    and it removes the temporary file."""
    images, _ = image_model
    out = tmp_path / "killed"
    out.mkdir()
    (out / ".checkpoint.safetensors.k2j4.tmp").write_bytes(b"half a checkpoint")
    _user_error(_run("fit", "--images", images, "--out", out, "--resume", *QUICK_FIT), "no checkpoint",
                exit_code=2)
    _ok(_run("fit", "--images", images, "--out", out, *QUICK_FIT))
    assert (out / "config.json").exists() and not list(out.glob(".*.tmp"))


def test_fit_refuses_to_write_into_a_foreign_directory(image_model, tmp_path):
    images, _ = image_model
    out = tmp_path / "thesis"
    out.mkdir()
    (out / "chapter1.tex").write_text("precious")
    _user_error(_run("fit", "--images", images, "--out", out, *QUICK_FIT),
                "holds no dcvae model; refusing to write into it", exit_code=2)
    assert [p.name for p in out.iterdir()] == ["chapter1.tex"]
    assert (out / "chapter1.tex").read_text() == "precious"


@pytest.mark.slow
def test_the_installed_command_runs_and_fails_cleanly():
    script = shutil.which("dcvae", path=str(Path(sys.executable).parent))
    command = [script] if script else [sys.executable, "-m", "dcvae.cli"]
    version = subprocess.run([*command, "--version"], capture_output=True, text=True, timeout=120)
    assert version.returncode == 0, version.stderr
    assert dcvae.__version__ in version.stdout
    failed = subprocess.run([*command, "evaluate", "--dataset", "digits", "--class", "42", "--quiet"],
                            capture_output=True, text=True, timeout=120)
    assert failed.returncode == 1
    assert "Error: class 42 does not exist in digits" in failed.stderr
    assert "Traceback" not in failed.stderr + failed.stdout


@pytest.mark.slow
def test_demo_takes_a_score_and_refuses_an_unknown_one():
    result = _run("demo", "--epochs", "1", "--score", "elbo")
    assert result.exit_code == 0, result.output
    # the VAEs take --score; kNN, which has no ELBO, keeps its distance
    assert "dcvae-prior elbo, dcvae elbo, vae elbo, knn distance" in result.output
    rows = [line.split() for line in result.output.splitlines() if line.strip().startswith("mean")]
    assert len(rows) == 1 and len(rows[0]) == 5 and all(0.0 <= float(v) <= 1.0 for v in rows[0][1:])
    bad = _run("demo", "--epochs", "1", "--score", "mahalanobis")
    assert bad.exit_code != 0 and "mahalanobis" in bad.output


def test_score_reads_new_files_as_fit_read_its_own(tmp_path):
    """What fit was told (--size, the colour mode it found, --condition-column) is kept with the
    model: score without those options reads new data the same way."""
    big = _image_folder(tmp_path / "big", size=(12, 10))
    _ok(_run("fit", "--images", big, "--size", "8x8", "--model", "vae", "--out", tmp_path / "m", *QUICK_FIT))
    _ok(_run("score", tmp_path / "m", "--images", big, "--out", tmp_path / "a.csv"))
    _ok(_run("score", tmp_path / "m", "--images", big, "--size", "8x8", "--out", tmp_path / "b.csv"))
    assert _read_csv(tmp_path / "a.csv") == _read_csv(tmp_path / "b.csv")

    colour = tmp_path / "colour"
    colour.mkdir()
    rng = np.random.default_rng(1)
    for i in range(20):
        Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), mode="RGB").save(colour / f"{i}.png")
    _ok(_run("fit", "--images", colour, "--model", "vae", "--out", tmp_path / "rgb", *QUICK_FIT))
    gray = _image_folder(tmp_path / "gray")  # grayscale files, read in the colour mode of the model
    _, rows = _read_csv(_ok(_run("score", tmp_path / "rgb", "--images", gray, "--out", tmp_path / "c.csv"))
                        and tmp_path / "c.csv")
    assert len(rows) == 30

    lines = ["cond,f0,f1"] + [f"{'xy'[i % 2]},{a:.4f},{b:.4f}"
                              for i, (a, b) in enumerate(rng.random((40, 2)))]
    (tmp_path / "x.csv").write_text("\n".join(lines) + "\n")
    _ok(_run("fit", "--array", tmp_path / "x.csv", "--condition-column", "cond", "--model", "cvae",
             "--out", tmp_path / "csv", *QUICK_FIT))
    _ok(_run("score", tmp_path / "csv", "--array", tmp_path / "x.csv", "--given",
             "--out", tmp_path / "d.csv"))
    _, rows = _read_csv(tmp_path / "d.csv")
    assert [r[2] for r in rows] == ["x", "y"] * 20


@pytest.mark.parametrize("options,message", [
    (["--latent-dim", "1000000000"], "the model would have about"),
    (["--param", "hidden_dims=[100000000000]"], "the model would have about"),
    (["--param", "hidden_dims=[1e22]"], "hidden_dims"),
    (["--size", "100000x100000"], "more than half this machine's memory"),
])
def test_sizes_beyond_the_machine_are_refused_before_allocating(image_model, tmp_path, options, message):
    images, _ = image_model
    _user_error(_run("fit", "--images", images, "--model", "vae", "--out", tmp_path / "m", *QUICK_FIT,
                     *options), message)
    assert not (tmp_path / "m").exists()


def test_score_skips_an_unreadable_image_and_lists_it(image_model, tmp_path):
    images, model = image_model
    folder = tmp_path / "images"
    shutil.copytree(images, folder)
    (folder / "dogs" / "03.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    out = tmp_path / "s.csv"
    result = _ok(_run("score", model, "--images", folder, "--out", out))
    assert "skipped 1 unreadable image(s)" in result.stderr
    _, rows = _read_csv(out)
    assert len(rows) == 30 and [r[1] for r in rows[:29]] == [
        f"{k}/{i:02d}.png" for k in ("cats", "dogs") for i in range(15) if (k, i) != ("dogs", 3)]
    assert rows[-1][:5] == ["", "dogs/03.png", "", "", ""] and "not a readable image" in rows[-1][5]
    assert all(r[5] == "" and r[3] for r in rows[:29])
    out.unlink()
    _user_error(_run("score", model, "--images", folder, "--strict", "--out", out), "03.png")
    assert not out.exists()


def test_evaluate_shows_the_classical_baseline_and_a_collapse_as_one_line_each():
    result = _ok(_run("evaluate", "--dataset", "digits", "--class", "3", "--model", "beta-vae", "--beta",
                      "100", "--epochs", "3", "--latent-dim", "4", "--quiet"))
    assert re.search(r"classical baseline knn: ROC-AUC 0\.\d{4} on the same split", result.stdout)
    warning = [line for line in result.stderr.splitlines() if "posterior collapse" in line]
    assert len(warning) == 1 and warning[0].startswith("warning: ") and "Traceback" not in result.output
    assert "classical baseline" not in _ok(_run("evaluate", "--dataset", "digits", "--class", "3", "--model",
                                                "vae", "--epochs", "1", "--baseline", "none",
                                                "--quiet")).stdout


def test_fit_and_evaluate_count_the_training_samples_alike(tmp_path):
    split = ["--dataset", "digits", "--protocol", "leave-one-out", "--class", "3", "--train-size", "300"]
    fitted = _ok(_run("fit", *split, "--model", "vae", "--out", tmp_path / "m", *QUICK_FIT)).stdout
    evaluated = _ok(_run("evaluate", *split, "--model", "vae", "--baseline", "none", *QUICK_FIT)).stdout
    counts = [re.search(r"on (\d+) samples \((\d+) more held out", text).groups()
              for text in (fitted, evaluated)]
    assert counts[0] == counts[1] and sum(map(int, counts[0])) == 300
    assert " for 1 epochs in " in fitted
    classical = _ok(_run("fit", *split, "--model", "knn", "--out", tmp_path / "k")).stdout
    assert "held out for validation and the threshold) in " in classical  # no epochs to count


@pytest.mark.parametrize("options,message,status", [
    (["--param", "seed=5"], "seed has its own option: pass --seed", 2),
    (["--param", "anomaly_score=recon"], "pass --score", 2),
    (["--param", "model=vae"], "model has its own option", 2),
    (["--seed", "-1"], "-1 is not in the range", 2),
    (["--param", "validation_fraction=0.999"], "0.999 of 30 samples leaves 0 to train", 1),
])
def test_settings_given_twice_or_out_of_range_are_one_error(image_model, tmp_path, options, message, status):
    images, _ = image_model
    result = _run("fit", "--images", images, "--model", "vae", "--out", tmp_path / "m", *QUICK_FIT, *options)
    _user_error(result, message, exit_code=status)


def test_a_full_disk_is_one_error_and_keeps_the_model_already_there(image_model, tmp_path, monkeypatch):
    images, model = image_model
    out = tmp_path / "m"
    shutil.copytree(model, out)
    before = AnomalyDetector.load(out).thresholds_
    from dcvae.io import model_dir

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(out / "model-x.safetensors"))
    monkeypatch.setattr(model_dir, "atomic_file", full)
    _user_error(_run("fit", "--images", images, "--model", "dcvae", "--out", out, "--overwrite", *QUICK_FIT,
                     "--seed", "3"), "model-x.safetensors: No space left on device")
    monkeypatch.undo()
    assert AnomalyDetector.load(out).thresholds_ == before


def test_report_refuses_a_store_that_is_a_directory_and_leaves_out_records_without_fields(tmp_path):
    (tmp_path / "a" / "results.jsonl").mkdir(parents=True)
    _user_error(_run("report", tmp_path / "a"), "results.jsonl is not a file")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "results.jsonl").write_text(json.dumps({"key": "k1", "dataset": "digits"}) + "\n")
    result = _run("report", tmp_path / "b")
    _user_error(result, "holds no complete result records")
    assert "left out 1 record(s) without the fields ['model'" in result.stderr


def test_sample_writes_a_grid_of_samples_and_of_traversals(image_model, tmp_path):
    images, model = image_model
    _ok(_run("sample", model, "--n", "10", "--condition", "dogs", "--out", tmp_path / "s.png"))
    grid = np.asarray(Image.open(tmp_path / "s.png"))
    assert grid.shape == (3 * 9 - 1, 4 * 9 - 1)  # 10 samples of 8x8 in a 4-wide grid, 1-px gaps
    _ok(_run("sample", model, "--traverse", images / "cats" / "00.png", "--out", tmp_path / "t.png"))
    assert np.asarray(Image.open(tmp_path / "t.png")).shape == (2 * 9 - 1, 7 * 9 - 1)  # latent 2, 7 steps
    _user_error(_run("sample", model, "--condition", "birds", "--out", tmp_path / "x.png"),
                "the model's conditions are ['cats', 'dogs']", exit_code=2)
    assert not (tmp_path / "x.png").exists()


def test_score_maps_writes_one_overlay_per_image_and_a_contact_sheet(image_model, tmp_path):
    images, model = image_model
    result = _ok(_run("score", model, "--images", images, "--maps", tmp_path / "maps",
                      "--out", tmp_path / "s.csv"))
    assert "wrote 30 anomaly maps" in result.output
    written = sorted(p.relative_to(tmp_path / "maps").as_posix() for p in (tmp_path / "maps").rglob("*.png"))
    expected = [f"{k}/{i:02d}.png" for k in ("cats", "dogs") for i in range(15)] + ["contact-sheet.png"]
    assert written == sorted(expected)
    assert np.asarray(Image.open(tmp_path / "maps" / "cats" / "00.png")).shape == (8, 8, 3)
    # the 16 most anomalous images beside their maps: 32 tiles of 8x8, 8 a row, 1-px gaps
    assert np.asarray(Image.open(tmp_path / "maps" / "contact-sheet.png")).shape == (4 * 9 - 1, 8 * 9 - 1, 3)
    _user_error(_run("score", model, "--images", images, "--maps", images / "m", "--out", tmp_path / "t.csv"),
                "lies inside the image folder", exit_code=2)


@pytest.mark.parametrize("command", ["fit", "evaluate", "score", "sample", "demo", "report", "benchmark"])
def test_every_command_takes_threads(command):
    assert "--threads" in _ok(_run(command, "--help")).output


def test_threads_sets_pytorch_s_pool_for_the_command(image_model, tmp_path):
    images, model = image_model
    before = torch.get_num_threads()
    try:
        _ok(_run("score", model, "--images", images, "--threads", "1", "--out", tmp_path / "s.csv"))
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    _user_error(_run("score", model, "--images", images, "--threads", "0", "--out", tmp_path / "s.csv"),
                "0 is not in the range", exit_code=2)


def test_help_lists_every_command_without_loading_any():
    """`dcvae --help` answers without PyTorch or scikit-learn (issue 18: start-up)."""
    code = textwrap.dedent("""
        import sys
        sys.modules["torch"] = None  # any import of torch or scikit-learn now fails
        sys.modules["sklearn"] = None
        from dcvae.cli import main
        main(["--help"], standalone_mode=False)
        loaded = sorted(m for m in sys.modules if m.startswith("dcvae.cli."))
        assert loaded == ["dcvae.cli.main"], loaded
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    listed = re.findall(r"^  (\w+)  ", out.stdout.split("Commands:")[1], flags=re.MULTILINE)
    assert listed == sorted(COMMANDS) == ["benchmark", "demo", "evaluate", "export", "fit", "list",
                                          "report", "sample", "score"]


def test_the_help_lines_are_the_commands_own_and_every_command_is_listed():
    with click.Context(main) as ctx:
        for name, (module, summary) in COMMANDS.items():
            command = main.get_command(ctx, name)
            assert command is not None and command.callback is not None
            assert command.callback.__module__ == module
            first_paragraph = " ".join((command.help or "").split("\n\n")[0].split())
            assert first_paragraph == summary, name
        assert sorted(main.commands) == sorted(COMMANDS)  # none registered that --help leaves out
        assert main.get_command(ctx, "nonsense") is None
    _user_error(_run("nonsense"), "No such command", exit_code=2)


@pytest.mark.parametrize(("cores", "busy", "expected"), [(2, 0, 2), (2, 1, 1), (2, 5, 1), (16, 3, 13),
                                                         (2, None, None)])
def test_automatic_threads_leave_the_busy_cores_to_their_processes(monkeypatch, cores, busy, expected):
    from dcvae.cli import inputs

    monkeypatch.setattr(inputs, "usable_cores", lambda: cores)
    monkeypatch.setattr(inputs, "busy_elsewhere", lambda: busy)
    assert inputs.automatic_threads() == expected


def _busy_process():
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


@pytest.mark.skipif(not Path("/proc/loadavg").exists(), reason="the running-task count is Linux's")
def test_a_busy_process_is_counted():
    from dcvae.cli.inputs import busy_elsewhere

    competitor = _busy_process()
    try:
        time.sleep(0.3)  # let it reach the run queue
        assert busy_elsewhere() >= 1
    finally:
        competitor.kill()
        competitor.wait()


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/loadavg").exists(), reason="the running-task count is Linux's")
def test_a_command_beside_a_busy_process_takes_the_free_cores_unless_told():
    """Issue 18: two thread pools sized to every core slow each other down several-fold; without
    --threads a command takes the cores no other process is running on."""
    from dcvae.cli.inputs import usable_cores

    cores = usable_cores()
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    command = [sys.executable, "-m", "dcvae", "evaluate", "--dataset", "digits", "--class", "1",
               "--model", "knn", "--baseline", "none", "--quiet", "--json"]  # the record says the threads
    competitor = _busy_process()
    try:
        time.sleep(0.3)
        runs = {name: subprocess.run(command + extra, capture_output=True, text=True, env={**env, **more},
                                     check=False)
                for name, extra, more in (("auto", [], {}),
                                          ("environment", [], {"OMP_NUM_THREADS": str(cores)}))}
    finally:
        competitor.kill()
        competitor.wait()
    threads = {}
    for name, run in runs.items():
        assert run.returncode == 0, run.stderr
        threads[name] = json.loads(run.stdout.strip().splitlines()[-1])["hardware"]["torch_threads"]
    assert threads["auto"] <= max(1, cores - 1)
    assert threads["environment"] == cores  # (--threads itself: test_threads_sets_pytorch_s_pool...)
    assert ("busy with other processes" in runs["auto"].stderr) == (cores > 1)
    assert "busy with other processes" not in runs["environment"].stderr
