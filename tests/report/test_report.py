"""dcvae report: Table I from the records, a self-contained HTML file, the figures, graceful skips.

A real (tiny) benchmark is run once per module on the bundled 8×8 digits: a 2-D latent grid with
saved models (the manifold over the only two dimensions) and a 4-D one (UMAP, the two most relevant
dimensions).
"""

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from dcvae.benchmark import ResultStore, load_config, run_benchmark
from dcvae.cli import main
from dcvae.data import DataFileError
from dcvae.detector import AnomalyDetector
from dcvae.report import (
    manifold_mosaics,
    pick_figure_runs,
    pick_reconstruction_runs,
    relevant_dims,
    row_labels,
    write_report,
)

GRID_2D = """
name = "tiny-2d"
description = "Digits, 2-D latent, for the report tests."
scores = ["recon", "elbo", "kl"]
save_models = "first-seed"

[defaults]
epochs = 1
batch_size = 64
lr = 1e-3
latent_dim = 2
hidden_dims = [32, 16]
patience = 0

[[grid]]
datasets = ["digits"]
protocol = "leave-one-out"
classes = [0, 1]
seeds = [0, 1]
models = ["vae", "cvae", "dcvae"]

[[grid]]
datasets = ["digits"]
protocol = "one-class"
classes = [3]
seeds = [0]
models = ["vae", "cvae"]
"""

GRID_4D = """
name = "tiny-4d"
scores = ["recon"]
save_models = "first-seed"

[defaults]
epochs = 2
batch_size = 64
lr = 1e-3
latent_dim = 4
hidden_dims = [32, 16]
patience = 0

[[grid]]
datasets = ["digits"]
classes = [2]
seeds = [0]
models = ["dcvae"]
"""
BENCHMARK_COMMAND = "dcvae benchmark grid.toml --out results"


def _benchmark(root: Path, grid: str) -> Path:
    root.mkdir(parents=True)
    config = root / "grid.toml"
    config.write_text(grid)
    out = root / "results"
    run_benchmark(config, out, threads=1, progress=False)
    return out


@pytest.fixture(scope="module")
def results_2d(tmp_path_factory):
    out = _benchmark(tmp_path_factory.mktemp("report") / "2d", GRID_2D)
    paths = write_report(out, command=BENCHMARK_COMMAND)
    return out, paths


@pytest.fixture(scope="module")
def results_4d(tmp_path_factory):
    out = _benchmark(tmp_path_factory.mktemp("report") / "4d", GRID_4D)
    return out, write_report(out, max_figure_samples=300)


def _table_after(markdown: str, heading: str) -> list[dict[str, str]]:
    """The rows of the first Markdown table after a heading, as dicts keyed by the header."""
    lines = markdown[markdown.index(heading):].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| "))
    table = []
    for line in lines[start:]:
        if not line.startswith("| "):
            break
        table.append([cell.strip() for cell in line.strip("|").split(" | ")])
    header, rows = table[0], table[2:]
    return [dict(zip(header, row, strict=True)) for row in rows]


def _copy(results: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "results"
    shutil.copytree(results, copy)
    return copy


# ----------------------------------------------------------------------------- Table I and text

def test_table_one_means_are_the_records_means_next_to_the_paper(results_2d):
    out, paths = results_2d
    markdown = paths["markdown"].read_text()
    records = ResultStore(out).records()
    rows = {row["Model"]: row for row in _table_after(markdown, "## Table I")}
    means = {}
    for model, name in (("vae", "VAE"), ("cvae", "CVAE"), ("dcvae", "dCVAE")):
        aucs = [r["auc"] for r in records if r["model"] == model and r["protocol"] == "leave-one-out"]
        assert len(aucs) == 4  # 2 classes × 2 seeds
        means[name] = np.mean(aucs)
        assert rows[name]["digits ours"].strip("*") == f"{100 * np.mean(aucs):.2f} ± {100 * np.std(aucs):.2f}"
        assert rows[name]["digits paper"] == "—"  # the paper has no digits
    # the best mean of the column is in bold, and only it
    bold = [name for name in means if rows[name]["digits ours"].startswith("**")]
    assert bold == [max(means, key=means.get)]
    # only the datasets and models the grid ran get columns and rows: no rows of "—" (issue 15, item 11)
    assert "MNIST ours" not in rows["VAE"] and set(rows) == {"VAE", "CVAE", "dCVAE"}
    detail = _table_after(markdown, "| Dataset | Model | AUC ours")
    assert {row["runs"] for row in detail} == {"2 of 10 cls × 2 seeds (partial)"}


def test_a_headline_read_in_place_of_the_grids_first_score(results_2d, tmp_path):
    """--headline elbo: Table I shows each run's elbo AUC, as if the grid had listed elbo first;
    the records on disk are untouched; a score no run recorded is one clear error."""
    copy = _copy(results_2d[0], tmp_path)
    before = (copy / "results.jsonl").read_bytes()
    markdown = write_report(copy, headline=("elbo",))["markdown"].read_text()
    records = ResultStore(copy).records()
    assert (copy / "results.jsonl").read_bytes() == before
    rows = {row["Model"]: row for row in _table_after(markdown, "## Table I")}
    for model, name in (("vae", "VAE"), ("cvae", "CVAE"), ("dcvae", "dCVAE")):
        elbo = [r["metrics"]["elbo"]["auc"] for r in records
                if r["model"] == model and r["protocol"] == "leave-one-out"]
        recon = [r["auc"] for r in records if r["model"] == model and r["protocol"] == "leave-one-out"]
        assert elbo != recon  # the headline did change
        assert rows[name]["digits ours"].strip("*") == f"{100 * np.mean(elbo):.2f} ± {100 * np.std(elbo):.2f}"
    assert "Headline score: `elbo`" in markdown and "--headline elbo" in markdown
    assert "digits: no ROC figure. Not drawn: dCVAE, VAE, CVAE, whose runs stored no curve" in markdown
    with pytest.raises(ValueError, match=r"--headline \['latent-knn'\]: no record"):
        write_report(copy, headline=("latent-knn",))


def test_records_of_runs_no_longer_in_the_grid_leave_the_tables(results_2d, tmp_path):
    """After the config changes (here: seed 1 dropped), the store keeps the old records, but the
    tables describe the grid as it is now and say what they left out."""
    copy = _copy(results_2d[0], tmp_path)
    config = copy / "config.toml"
    config.write_text(config.read_text().replace("seeds = [0, 1]", "seeds = [0]"))
    markdown = write_report(copy)["markdown"].read_text()
    assert "4 records of the store belong to runs no longer in the grid" not in markdown
    assert "6 records of the store belong to runs no longer in the grid" in markdown  # 3 models × 2 classes
    rows = {row["Model"]: row for row in _table_after(markdown, "## Table I")}
    records = ResultStore(copy).records()
    aucs = [r["auc"] for r in records
            if r["model"] == "vae" and r["protocol"] == "leave-one-out" and r["seed"] == 0]
    assert rows["VAE"]["digits ours"].strip("*") == f"{100 * np.mean(aucs):.2f} ± {100 * np.std(aucs):.2f}"


def test_every_score_and_the_one_class_protocol_are_tabulated(results_2d):
    out, paths = results_2d
    markdown = paths["markdown"].read_text()
    records = ResultStore(out).records()
    rows = {row["Model"]: row for row in _table_after(markdown, "### Every score (leave-one-out)")}
    elbo = [r["metrics"]["elbo"]["auc"] for r in records
            if r["model"] == "dcvae" and r["protocol"] == "leave-one-out"]
    assert rows["dCVAE"]["elbo"] == f"{100 * np.mean(elbo):.2f}"
    assert set(rows["dCVAE"]) >= {"recon (headline)", "elbo", "kl"}
    assert "CVAE ≡ VAE" in markdown
    one_class = {row["Model"] for row in _table_after(markdown, "### Every score (one-class)")}
    assert one_class == {"VAE", "CVAE"}


def test_header_settings_and_honesty_come_from_the_records(results_2d):
    _, paths = results_2d
    markdown = paths["markdown"].read_text()
    assert "# Benchmark report: tiny-2d" in markdown
    assert "Digits, 2-D latent, for the report tests." in markdown
    assert f"`{BENCHMARK_COMMAND}`" in markdown
    assert re.search(r"commit `([0-9a-f]{4,}(\+local-changes)?|unknown)`", markdown)  # as records write it
    assert "The grid has 14 runs; 14 have a record: all runs finished." in markdown
    assert "No run diverged." in markdown
    assert "`epochs=1`" in markdown and "`lr=0.001`" in markdown
    assert "below the paper's minimum of 50" in markdown
    assert "1,257 train / 540 test" in markdown  # the digits carve note, from the records
    assert "No leave-one-out run is on a dataset of the paper's Table I" in markdown


def test_per_class_table_has_one_row_per_held_out_class(results_2d):
    out, paths = results_2d
    markdown = paths["markdown"].read_text()
    records = ResultStore(out).records()
    rows = _table_after(markdown, "### digits, leave-one-out")
    assert [row["Class"] for row in rows] == ["0", "1"]
    aucs = [r["auc"] for r in records if r["model"] == "vae" and r["class"] == 1
            and r["protocol"] == "leave-one-out"]
    assert rows[1]["VAE"] == f"{100 * np.mean(aucs):.2f}"


# ----------------------------------------------------------------------------- files

def test_html_is_self_contained_with_every_figure_embedded(results_2d):
    out, paths = results_2d
    page = paths["html"].read_text()
    figures = sorted(p.name for p in (out / "figures").glob("*.png"))
    assert page.count("<img ") == len(figures) == page.count('src="data:image/png;base64,')
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:|//)""", page)
    assert "<script" not in page and "<link" not in page
    assert "<table>" in page and "Table I, side by side" in page


def test_figures_are_small_pngs(results_2d):
    out, _ = results_2d
    names = {p.name for p in (out / "figures").glob("*.png")}
    assert names == {"per-class-digits-leave-one-out.png", "per-class-digits-one-class.png",
                     "roc-digits.png", "reconstruction-digits.png", "latent-digits.png",
                     "manifold-digits-vae.png", "manifold-digits-cvae.png", "manifold-digits-dcvae.png"}
    for name in names:
        data = (out / "figures" / name).read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n")
        assert len(data) < 150_000


def test_model_figures_name_their_runs_and_scores(results_2d):
    _, paths = results_2d
    markdown = paths["markdown"].read_text()
    assert "no saved EMNIST ByClass or KMNIST leave-one-out model" in markdown  # the fallback said
    assert "held-out class '0'" in markdown
    assert "E = negative ELBO" in markdown
    assert "each model's anomaly map of the two images" in markdown  # rows 3-4 of Figures 1-2
    assert "(the only two dimensions)" in markdown
    assert "One grid per condition: #0 '1', #1 '2', #2 '3' (the first 3 of 9)" in markdown
    assert "2-D latent" in markdown


@pytest.mark.slow
def test_a_4d_latent_uses_umap_and_the_two_most_relevant_dimensions(results_4d):
    out, paths = results_4d
    markdown = paths["markdown"].read_text()
    assert "the two of 4 dimensions with the largest mean KL to the prior on 300 test images" in markdown
    assert "posterior means of 300 test images" in markdown
    assert (out / "figures" / "latent-digits.png").is_file()
    assert (out / "figures" / "manifold-digits-dcvae.png").is_file()


MODEL_FIGURES = {"reconstruction-digits.png", "latent-digits.png", "manifold-digits-vae.png",
                 "manifold-digits-cvae.png", "manifold-digits-dcvae.png"}
CURVE_FIGURES = {"per-class-digits-leave-one-out.png", "per-class-digits-one-class.png", "roc-digits.png"}


def test_without_saved_models_the_last_reports_model_figures_are_kept(results_2d, tmp_path):
    """A fresh clone has the records, the figures and report.md, but no models: the report keeps
    the figures it cannot redraw, bit for bit, with their captions, and says so."""
    copy = _copy(results_2d[0], tmp_path)
    before = {name: (copy / "figures" / name).read_bytes() for name in MODEL_FIGURES}
    old_markdown = (copy / "report.md").read_text()
    shutil.rmtree(copy / "models")
    paths = write_report(copy)
    markdown = paths["markdown"].read_text()
    assert {p.name for p in (copy / "figures").glob("*.png")} == MODEL_FIGURES | CURVE_FIGURES
    assert all((copy / "figures" / name).read_bytes() == data for name, data in before.items())
    # each caption twice (the image's alt text and the caption line), every saved model missing
    kept = re.findall(r"\(Kept from an earlier report: (\d+) of the (\d+) saved models", markdown)
    assert len(kept) == 2 * len(MODEL_FIGURES) and all(a == b != "0" for a, b in kept)
    assert "held-out class '0'" in old_markdown and "held-out class '0'" in markdown  # captions kept
    assert paths["html"].read_text().count("<img ") == 8
    # written again, still without models: each caption says it once, not once per report
    assert write_report(copy)["markdown"].read_text() == markdown


def test_without_saved_models_or_earlier_figures_the_model_figures_are_skipped(results_2d, tmp_path):
    copy = _copy(results_2d[0], tmp_path)
    shutil.rmtree(copy / "models")
    shutil.rmtree(copy / "figures")
    paths = write_report(copy)
    assert paths["markdown"].read_text().count("none is under") == 3  # Figures 1–2, 3 and 4–5
    assert {p.name for p in (copy / "figures").glob("*.png")} == CURVE_FIGURES
    assert paths["html"].read_text().count("<img ") == 3


def test_a_figure_the_report_no_longer_draws_is_removed(results_2d, tmp_path):
    copy = _copy(results_2d[0], tmp_path)
    stale = copy / "figures" / "manifold-digits-rfvae.png"  # a model the grid no longer holds
    shutil.copyfile(copy / "figures" / "manifold-digits-vae.png", stale)
    write_report(copy)
    assert not stale.exists()
    assert {p.name for p in (copy / "figures").glob("*.png")} == MODEL_FIGURES | CURVE_FIGURES


def test_diverged_runs_are_listed_and_left_out_of_the_means(results_2d, tmp_path):
    copy = _copy(results_2d[0], tmp_path)
    shutil.rmtree(copy / "models")  # not needed here; the report is faster without
    config = copy / "config.toml"  # a grid with one more seed, whose dCVAE run diverged
    config.write_text(config.read_text().replace("seeds = [0, 1]", "seeds = [0, 1, 9]"))
    (spec,) = [r for r in load_config(config, class_count=lambda name: 10).runs
               if (r.model, r.protocol, r.target_class, r.seed) == ("dcvae", "leave-one-out", 0, 9)]
    ResultStore(copy).append({"key": spec.key, **spec.identity(), "class_name": "0", "status": "diverged",
                              "error": "the loss became NaN at epoch 1, step 3", "train_seconds": 0.1})
    before = _table_after(results_2d[1]["markdown"].read_text(), "## Table I")
    markdown = write_report(copy)["markdown"].read_text()
    assert "1 run(s) diverged" in markdown and "the loss became NaN at epoch 1, step 3" in markdown
    after = _table_after(markdown, "## Table I")
    assert after[0]["digits ours"] == before[0]["digits ours"]


def test_a_directory_without_results_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        write_report(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="results.jsonl"):
        write_report(tmp_path)
    (tmp_path / "results.jsonl").write_text("")
    with pytest.raises(ValueError, match="no complete result records"):
        write_report(tmp_path)


def test_cli_report(results_2d, tmp_path):
    copy = _copy(results_2d[0], tmp_path)
    (copy / "report.md").unlink()
    result = CliRunner().invoke(main, ["report", str(copy), "--command", BENCHMARK_COMMAND])
    assert result.exit_code == 0, result.output
    assert "report.md" in result.output and "8 figures" in result.output
    assert BENCHMARK_COMMAND in (copy / "report.md").read_text()
    lines = [line for line in result.stderr.splitlines() if line.startswith("report [")]
    total = len(lines)  # one progress line per section, in order, each saying how far it is
    assert total >= 10 and lines[0].startswith(f"report [1/{total}] header")
    assert lines[-1].startswith(f"report [{total}/{total}] honesty")
    quiet = CliRunner().invoke(main, ["report", str(copy), "--quiet"])
    assert quiet.exit_code == 0 and "report [" not in quiet.stderr
    empty = CliRunner().invoke(main, ["report", str(tmp_path / "nowhere")])
    assert empty.exit_code == 1
    assert empty.output.startswith("Error: ") and "nowhere" in empty.output


# ----------------------------------------------------------------------------- the models' views

def _model_dir(out: Path, model: str) -> Path:
    """The saved model of the leave-one-out run of ``model`` on class 0, seed 0, as its record names it."""
    (record,) = [r for r in ResultStore(out).records()
                 if (r["model"], r["protocol"], r["class"], r["seed"]) == (model, "leave-one-out", 0, 0)]
    return out / record["model_dir"]


def test_manifold_mosaics_one_grid_per_condition_shown(results_2d):
    out, _ = results_2d
    model = AnomalyDetector.load(_model_dir(out, "dcvae")).model_
    panels = manifold_mosaics(model, (0, 1), steps=5)
    assert [title for title, _ in panels] == ["c = '1'", "c = '2'", "c = '3'"]
    assert all(mosaic.shape == (40, 40) and 0 <= mosaic.min() <= mosaic.max() <= 1
               for _, mosaic in panels)


def test_relevant_dims_are_the_two_with_the_largest_mean_kl():
    kl = np.array([[0.1, 3.0, 0.2, 2.0], [0.3, 1.0, 0.0, 2.4]])  # column means 0.2, 2, 0.1, 2.2
    assert relevant_dims(kl) == (3, 1)
    assert relevant_dims(np.zeros((5, 2))) == (0, 1)


# ----------------------------------------------------------------------------- picking runs

def _saved(model, dataset, k, name, seed=0, protocol="leave-one-out", **extra):
    return {"key": f"{model}-{dataset}-{k}-{seed}-{protocol}", "model": model, "dataset": dataset,
            "protocol": protocol, "class": k, "class_name": name, "seed": seed, "status": "ok",
            "model_dir": f"models/{dataset}/{protocol}/{model}/class-{k}/seed-{seed}",
            "finished_at": "2026-01-01T00:00:00+00:00", **extra}


def test_figures_1_2_prefer_emnist_o_then_kmnist():
    records = [
        _saved("vae", "emnist-byclass", 5, "5"),
        _saved("dcvae", "emnist-byclass", 24, "O", seed=1),
        _saved("dcvae", "emnist-byclass", 24, "O", seed=0),
        _saved("vae", "emnist-byclass", 24, "O"),
        _saved("vae", "kmnist", 1, "ki"),
        _saved("vae", "kmnist", 3, "tsu"),
        _saved("dcvae", "kmnist", 3, "tsu"),
        _saved("vae", "mnist", 0, "0"),
        {**_saved("cvae", "kmnist", 1, "ki"), "status": "diverged"},
        {**_saved("factorvae", "kmnist", 1, "ki"), "model_dir": None},
    ]
    emnist, kmnist = pick_reconstruction_runs(records)
    assert (emnist.dataset, emnist.class_name, emnist.normal_class_name) == ("emnist-byclass", "O", "0")
    assert [(r["model"], r["seed"]) for r in emnist.records] == [("dcvae", 0), ("vae", 0)]
    assert emnist.note == ""
    assert (kmnist.dataset, kmnist.target_class, kmnist.normal_class_name) == ("kmnist", 3, None)
    assert [r["model"] for r in kmnist.records] == ["dcvae", "vae"]  # the class with most models


def test_figures_1_2_without_o_or_kmnist():
    other_class = pick_reconstruction_runs([_saved("vae", "emnist-byclass", 5, "5")])
    assert other_class[0].class_name == "5" and '"O"' in other_class[0].note
    fallback = pick_reconstruction_runs([_saved("vae", "fmnist", 2, "Pullover"),
                                         _saved("vae", "mnist", 7, "7"),
                                         _saved("vae", "kmnist", 1, "ki", protocol="one-class")])
    assert [(run.dataset, run.target_class) for run in fallback] == [("mnist", 7)]
    assert "MNIST instead" in fallback[0].note
    assert pick_reconstruction_runs([{**_saved("vae", "mnist", 0, "0"), "model_dir": None}]) == []


def test_figure_runs_one_per_dataset_leave_one_out_first():
    runs = pick_figure_runs([_saved("vae", "mnist", 4, "4", protocol="one-class"),
                             _saved("cvae", "mnist", 4, "4", protocol="one-class"),
                             _saved("vae", "mnist", 6, "6"),
                             _saved("vae", "kmnist", 2, "su"), _saved("vae", "kmnist", 0, "o")])
    assert list(runs) == ["mnist", "kmnist"]
    assert (runs["mnist"].protocol, runs["mnist"].target_class) == ("leave-one-out", 6)
    assert runs["kmnist"].target_class == 0  # a tie in models: the lowest class


def test_a_model_directory_named_twice_is_the_last_one_saved():
    older = {**_saved("vae", "mnist", 0, "0", settings={"lr": 1e-3}), "key": "a",
             "finished_at": "2026-01-01T00:00:00+00:00"}
    newer = {**_saved("vae", "mnist", 0, "0", settings={"lr": 3e-3}), "key": "b",
             "finished_at": "2026-01-02T00:00:00+00:00"}
    (run,) = pick_reconstruction_runs([newer, older])
    assert [r["key"] for r in run.records] == ["b"]


def test_row_labels_tell_settings_variants_apart():
    records = [{"key": "a", "model": "vae", "dataset": "mnist", "settings": {"lr": 0.001, "epochs": 2}},
               {"key": "b", "model": "vae", "dataset": "mnist", "settings": {"lr": 0.003, "epochs": 2}},
               {"key": "c", "model": "dcvae", "dataset": "mnist", "settings": {"lr": 0.001, "epochs": 2}},
               # a dataset's own settings (the paper's EMNIST learning rate) do not split a row
               {"key": "d", "model": "dcvae", "dataset": "emnist-byclass",
                "settings": {"lr": 1e-6, "epochs": 2}}]
    assert row_labels(records) == {"a": "VAE [lr=0.001]", "b": "VAE [lr=0.003]", "c": "dCVAE", "d": "dCVAE"}


def test_without_the_dataset_files_the_model_figures_are_skipped_with_a_note(results_2d, tmp_path,
                                                                              monkeypatch):
    import dcvae.report as report

    def missing(name, *args, **kwargs):
        raise DataFileError(f"{name}.gz", "not here")

    monkeypatch.setattr(report, "load_dataset", missing)
    copy = _copy(results_2d[0], tmp_path)
    markdown = write_report(copy)["markdown"].read_text()
    assert markdown.count("digits skipped: the digits files are not available here") == 3
    assert not (copy / "figures" / "latent-digits.png").exists()


def test_missing_or_corrupt_saved_models_are_named_and_left_out(results_2d, tmp_path):
    copy = _copy(results_2d[0], tmp_path)
    shutil.rmtree(copy / "figures")  # no earlier figures to keep: the report draws what it can
    for protocol in ("leave-one-out", "one-class"):
        shutil.rmtree(copy / "models/digits" / protocol / "cvae")
    corrupt = _model_dir(copy, "dcvae").relative_to(copy).as_posix()
    (copy / corrupt / "config.json").write_text("{not json")
    markdown = write_report(copy)["markdown"].read_text()
    assert "Note: 3 of the 8 saved models the records name are missing" in markdown
    assert f"dCVAE: the saved model `{corrupt}` did not load" in markdown
    names = {p.name for p in (copy / "figures").glob("manifold-*.png")}
    assert names == {"manifold-digits-vae.png"}


def test_the_paired_comparison_counts_the_runs_both_rows_have(results_2d):
    out, paths = results_2d
    markdown = paths["markdown"].read_text()
    records = [r for r in ResultStore(out).records() if r["protocol"] == "leave-one-out"]
    rows = {row["Other row"]: row["digits"] for row in _table_after(markdown, "### Paired comparison")}
    assert set(rows) == {"VAE", "CVAE"}
    auc = {(r["model"], r["class"], r["seed"]): r["auc"] for r in records}
    for other, name in (("vae", "VAE"), ("cvae", "CVAE")):
        diffs = np.array([auc[("dcvae", k, s)] - auc[(other, k, s)] for k in (0, 1) for s in (0, 1)])
        wins, losses = int(np.sum(diffs >= 1e-3)), int(np.sum(diffs <= -1e-3))
        # 4 pairs: too few for the signed-rank test
        assert rows[name] == f"{100 * diffs.mean():+.2f}, {wins}/{4 - wins - losses}/{losses}, p —"


def test_every_dcvae_row_below_a_baseline_is_named(results_2d):
    out, paths = results_2d
    markdown = paths["markdown"].read_text()
    section = markdown[markdown.index("### Where a dCVAE row falls below a baseline"):]
    loo = [r for r in ResultStore(out).records() if r["protocol"] == "leave-one-out" and r["status"] == "ok"]
    means = {m: 100 * np.mean([r["auc"] for r in loo if r["model"] == m]) for m in {r["model"] for r in loo}}
    names = {"dcvae": "dCVAE", "vae": "VAE", "cvae": "CVAE"}
    for model, mean in means.items():
        line = f"digits: dCVAE {means['dcvae']:.2f} < {names[model]} {mean:.2f}"
        assert (line in section) == (model != "dcvae" and round(mean, 2) > round(means["dcvae"], 2))


def test_a_single_run_shows_no_spread():
    """(issue 15, item 11) One run is "50.00 (1 run)", not "50.00 ± 0.00"."""
    from dcvae.report.context import _mean_std

    assert _mean_std([0.5]) == "50.00 (1 run)"
    assert _mean_std([0.4, 0.6]) == "50.00 ± 10.00"
    assert _mean_std([]) == "—"


def test_the_benchmark_command_keeps_its_continuation_lines():
    """(issue 15, item 1) The header named `... --out DIR \\` and stopped at the backslash."""
    from dcvae.report.header import _command_from_config

    text = "# run:\n#   dcvae benchmark g.toml --out r \\\n#       --workers 2 --threads 1\nname = 'g'\n"
    assert _command_from_config(text) == "dcvae benchmark g.toml --out r --workers 2 --threads 1"
    one_line = "#   dcvae benchmark g.toml --out r\nx = 1\n"
    assert _command_from_config(one_line) == "dcvae benchmark g.toml --out r"


def test_a_setting_some_runs_left_at_its_default_says_default_not_null():
    from types import SimpleNamespace

    from dcvae.report.runs import _settings_summary
    records = [{"key": "a", "model": "vae", "settings": {"epochs": 1, "train_size": 1500}},
               {"key": "b", "model": "vae", "settings": {"epochs": 1}},
               {"key": "c", "model": "knn", "settings": {"epochs": 1}}]
    ctx = SimpleNamespace(records=records, labels={"a": "VAE", "b": "VAE", "c": "kNN"})
    common, per_label = _settings_summary(ctx)
    assert common == {"epochs": 1}
    assert per_label == {"VAE": {"train_size": "1500 / default"}}


# ----------------------------------------------------------------------------- disentanglement

GRID_FACTORS = """
name = "tiny-factors"
save_models = "first-seed"

[defaults]
epochs = 1
batch_size = 100
latent_dim = 4
hidden_dims = [64, 32]

[[grid]]
datasets = ["dsprites"]
protocol = "factors"
seeds = [0, 1]
models = ["vae", "cvae"]
settings = { train_size = 600, eval_size = 300 }
"""


@pytest.fixture(scope="module")
def results_factors(tmp_path_factory):
    out = _benchmark(tmp_path_factory.mktemp("report") / "factors", GRID_FACTORS)
    return out, write_report(out)


def test_the_disentanglement_tables_are_means_and_stds_over_seeds(results_factors):
    out, paths = results_factors
    markdown = paths["markdown"].read_text()
    records = ResultStore(out).records()
    for part, heading in (("remaining", "### dSprites (condition factor: shape)"),
                          ("per_class", "*dSprites, remaining factors")):
        table = {row["Model"]: row for row in _table_after(markdown, heading)}
        assert set(table) == {"VAE", "CVAE"}
        for model, label in (("vae", "VAE"), ("cvae", "CVAE")):
            mig = [r["disentanglement"][part]["mig"] for r in records if r["model"] == model]
            assert len(mig) == 2 and table[label]["seeds"] == "2"
            assert table[label]["MIG"] == f"{np.mean(mig):.3f} ± {np.std(mig):.3f}"  # by hand, ddof 0
    # all five factors: the unconditional model only
    every_factor = _table_after(markdown, "*dSprites, the remaining factors within")
    assert [row["Model"] for row in every_factor] == ["VAE"]
    budget = {row["Model"]: row for row in _table_after(markdown, "*dSprites, all factors")}
    assert budget["VAE"]["steps"] == "6" and budget["VAE"]["test images measured"] == "300"
    # a store of factors runs alone reports no detection
    assert "Table I" not in markdown and "How to read these numbers" not in markdown
    assert "4 records (4 finished, 0 diverged)" in markdown


def test_the_first_seeds_samples_and_traversals_are_drawn_and_linked(results_factors):
    out, paths = results_factors
    markdown = paths["markdown"].read_text()
    names = {"vae-samples", "vae-traversal", "cvae-samples", "cvae-traversal-square",
             "cvae-traversal-ellipse", "cvae-traversal-heart"}
    for name in names:
        path = out / "figures" / f"disentanglement-dsprites-{name}.png"
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"](figures/{path.name})" in markdown
    assert "VAE, seed 0: 64 samples" in markdown and "seed 1" not in markdown
    assert markdown.count("data:image/png;base64") == 0
    assert paths["html"].read_text().count("data:image/png;base64") == len(names)


def test_without_saved_models_the_disentanglement_figures_are_kept(results_factors, tmp_path):
    out = _copy(results_factors[0], tmp_path)
    shutil.rmtree(out / "models")
    markdown = write_report(out)["markdown"].read_text()
    assert "figures/disentanglement-dsprites-cvae-traversal-heart.png" in markdown
    assert ("(Kept from an earlier report: the saved models of VAE, CVAE are not under `models/` "
            "here") in markdown
    assert "| VAE | 2 |" in markdown  # the tables come from the records alone


def test_a_store_without_factors_runs_has_no_disentanglement_section(results_2d):
    markdown = results_2d[1]["markdown"].read_text()
    assert "Disentanglement" not in markdown and "disentanglement-" not in markdown
    assert "## Table I, side by side (leave-one-out)" in markdown


def test_a_record_names_the_backbone_it_ran_and_an_old_one_the_mlp():
    """The report reads a run's resolved architecture; a record from before ``architecture``
    existed ran the MLP unless its grid named a backbone: what the default was then for every model."""
    from dcvae.report.context import setting

    assert setting({"architecture": {"backbone": "conv"}, "settings": {}}, "backbone") == "conv"
    assert setting({"settings": {"backbone": "conv"}}, "backbone") == "conv"
    assert setting({"settings": {}}, "backbone") == "mlp"
    assert setting({"settings": {"epochs": 7}}, "epochs") == 7
