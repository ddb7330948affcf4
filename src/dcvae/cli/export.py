"""``dcvae export``: a saved detector's scoring function as a file a light runtime scores with."""

from __future__ import annotations

from pathlib import Path

import click

from dcvae.cli.inputs import threads_option
from dcvae.cli.main import main
from dcvae.detector import AnomalyDetector
from dcvae.export.exporter import export_onnx
from dcvae.export.runtime import OnnxDetector


@main.command()
@click.argument("model_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["onnx"]), default="onnx", show_default=True,
              help="The file format (ONNX: scored by onnxruntime and NumPy alone).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The file to write (replaced atomically).")
@threads_option
def export(model_dir: Path, fmt: str, out: Path) -> None:
    """Export a saved VAE detector's anomaly score (both modes, and its thresholds) to a file that
    `dcvae score --onnx FILE` or dcvae.export.runtime.OnnxDetector score with."""
    if out.resolve().is_relative_to(model_dir.resolve()):
        raise click.UsageError(f"--out {out} lies inside the model directory {model_dir}; write the "
                               "export elsewhere")
    detector = AnomalyDetector.load(model_dir)
    export_onnx(detector, out)
    exported = OnnxDetector(out)  # the file opens and passes the runtime's own checks
    click.echo(f"exported {exported.model_name} (score {exported.score_name}, input "
               f"{'x'.join(map(str, exported.input_shape))}, {max(len(exported.condition_names), 1)} "
               f"condition(s)) to {out}")
