"""``dcvae benchmark`` and ``dcvae report``: grids of runs and their report."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from dcvae.cli.inputs import threads_option
from dcvae.cli.main import main
from dcvae.cli.options import tracking_options
from dcvae.tracking import log_record, tracking


@main.command()
@click.argument("config", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="The results directory: results.jsonl, a copy of the config, saved models.")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="local: this process or a process pool; ray: one Ray task per run.")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Runs at a time (local pool size; Ray: CPUs of a local Ray instance = workers × threads).")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="PyTorch threads (and Ray CPUs) per run [default: CPU cores / workers].")
@click.option("--address", default=None,
              help="Ray: the address of an existing cluster (e.g. ray://head:10001 or auto).")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where dataset files are looked for first (workers need the same path).")
@click.option("--reuse", type=click.Path(file_okay=False, exists=True, path_type=Path), multiple=True,
              help="Another results directory whose records of the very same runs (same key) are "
                   "copied instead of trained again, e.g. a tuning grid's winners. Repeatable.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@tracking_options
def benchmark(config: Path, out: Path, executor: str, workers: int, threads: int | None,
              address: str | None, data_dir: Path | None, reuse: tuple[Path, ...],
              quiet: bool, mlflow_uri: str | None, tensorboard_dir: Path | None) -> None:
    """Run the grid of a benchmark CONFIG (TOML); finished runs are skipped, so re-run to resume."""
    from dcvae.benchmark import run_benchmark

    if address is not None and executor != "ray":
        raise click.UsageError("--address is for --executor ray")
    start = time.perf_counter()
    # one tracked run for the grid, and one under it for each run finished now (MLflow's nesting
    # tag; TensorBoard: a folder per run key)
    with tracking(mlflow=mlflow_uri, run_name=f"benchmark {config.stem}") as grid:
        grid.log_params({"config": config, "out": out, "executor": executor, "workers": workers,
                         "threads": threads})

        def log_run(record: dict[str, Any]) -> None:
            if not grid.active and tensorboard_dir is None:
                return
            board = None if tensorboard_dir is None else tensorboard_dir / record["key"]
            label = f"{record['model']} {record['dataset']} class {record['class']} seed {record['seed']}"
            with tracking(mlflow=mlflow_uri, tensorboard=board, run_name=label) as run:
                run.set_tags({"mlflow.parentRunId": grid.run_id})
                log_record(run, record)
                if record.get("model_dir"):
                    run.log_model_dir(out / record["model_dir"])

        counts = run_benchmark(config, out, data_dir=data_dir, executor=executor, workers=workers,
                               threads=threads, address=address, progress=not quiet, reuse=reuse,
                               on_record=log_run)
        grid.log_metrics({k: v for k, v in counts.items()})
    click.echo(f"{counts['total']} runs in the grid: {counts['skipped']} already done, "
               f"{counts['reused']} reused, {counts['ran']} run now in "
               f"{time.perf_counter() - start:.0f} s; results in {out / 'results.jsonl'}")


@main.command()
@threads_option
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--command", "benchmark_command", default=None, metavar="TEXT",
              help="The `dcvae benchmark ...` command that produced DIRECTORY, quoted in the report.")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where dataset files are looked for first (the figures need the test images).")
@click.option("--max-samples", type=click.IntRange(min=10), default=2000, show_default=True,
              help="Test images (a seeded subsample) behind each latent-space figure.")
@click.option("--headline", "headline", multiple=True, metavar="SCORE",
              help="Read SCORE as the headline of every run that recorded it, in place of its grid's "
                   "first score (e.g. a model's new default). Repeatable: a run takes the first it has.")
@click.option("--quiet", is_flag=True, help="No progress lines.")
def report(directory: Path, benchmark_command: str | None, data_dir: Path | None,
           max_samples: int, headline: tuple[str, ...], quiet: bool) -> None:
    """Write DIRECTORY/report.md and report.html (Table I side by side, figures) from benchmark results."""
    from dcvae.report import write_report

    start = time.perf_counter()

    def show(section: str, index: int, total: int) -> None:  # one line per section: terminals and logs alike
        click.echo(f"report [{index + 1}/{total}] {section} ({time.perf_counter() - start:.0f} s)", err=True)

    paths = write_report(directory, command=benchmark_command, max_figure_samples=max_samples,
                         data_dir=data_dir, progress=None if quiet else show, headline=headline)
    figures = len(list(paths["figures"].glob("*.png")))
    click.echo(f"wrote {paths['markdown']} and {paths['html']} ({figures} figures in "
               f"{paths['figures']}) in {time.perf_counter() - start:.0f} s")
