"""The same data scores the same through the CLI as through the API: one input rule, one
condition-encoding rule, one detector behind both doors."""

import csv
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from dcvae.cli import main
from dcvae.detector import AnomalyDetector

OPTIONS = ["--model", "dcvae", "--epochs", "2", "--batch-size", "16", "--latent-dim", "2",
           "--param", "hidden_dims=[16]", "--quiet"]
API = {"epochs": 2, "batch_size": 16, "latent_dim": 2, "hidden_dims": (16,), "progress": False}


def _cli(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result


def _scores(path: Path) -> tuple[np.ndarray, list[str]]:
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    return np.array([float(r["score"]) for r in rows]), [r["label"] for r in rows]


def test_a_csv_with_string_conditions_scores_the_same_through_cli_and_api(tmp_path):
    rng = np.random.default_rng(0)
    # names that order differently as text and as numbers, beside words: one rule must decide
    sites = np.array(["10", "9", "2"] * 20)
    x = rng.normal(size=(60, 4)) + np.where(sites == "9", 3.0, 0.0)[:, None]
    table = tmp_path / "table.csv"
    with open(table, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["a", "b", "site", "c", "d"])
        for row, site in zip(x, sites, strict=True):
            writer.writerow([repr(float(row[0])), repr(float(row[1])), site, repr(float(row[2])),
                             repr(float(row[3]))])
    _cli("fit", "--array", table, "--condition-column", "site", *OPTIONS, "--out", tmp_path / "m")
    _cli("score", tmp_path / "m", "--array", table, "--condition-column", "site", "--out",
         tmp_path / "marginal.csv")
    _cli("score", tmp_path / "m", "--array", table, "--condition-column", "site", "--given", "--out",
         tmp_path / "given.csv")
    cli_marginal, labels = _scores(tmp_path / "marginal.csv")
    cli_given, _ = _scores(tmp_path / "given.csv")

    features = x.astype(np.float32)  # what the CSV holds, read as the API user would
    api = AnomalyDetector("dcvae", **API).fit(features, c=sites)
    assert api.model_.config.condition_names == ("2", "9", "10")  # numeric names order as numbers
    assert AnomalyDetector.load(tmp_path / "m").model_.config.condition_names == ("2", "9", "10")
    assert labels == sites.tolist()
    np.testing.assert_array_equal(cli_marginal, api.decision_function(features))
    np.testing.assert_array_equal(cli_given, api.decision_function(features, sites))


def test_a_float_npy_of_images_scores_the_same_through_cli_and_api(tmp_path):
    images = np.random.default_rng(1).random((48, 8, 8))  # floats in [0, 1], not multiples of 1/255
    path = tmp_path / "images.npy"
    np.save(path, images)
    _cli("fit", "--array", path, *OPTIONS, "--out", tmp_path / "m")
    _cli("score", tmp_path / "m", "--array", path, "--out", tmp_path / "s.csv")
    cli, _ = _scores(tmp_path / "s.csv")
    api = AnomalyDetector("dcvae", **API).fit(images)
    np.testing.assert_array_equal(cli, api.decision_function(images))
    # the float images were not rounded to 8 bits on the way in (dcvae 0.1's CLI did)
    rounded = np.rint(images * 255) / 255
    assert not np.array_equal(api.decision_function(rounded), cli)
