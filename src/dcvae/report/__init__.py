"""The benchmark report (``dcvae report DIR``): the paper's Table I side by side with ours, and its figures.

``write_report(DIR)`` reads what ``dcvae benchmark CONFIG --out DIR`` wrote and writes

- ``DIR/report.md``: tables in Markdown, figures linked from ``DIR/figures``;
- ``DIR/report.html``: the same document, self-contained (every figure a base64 PNG data URI);
- ``DIR/figures/*.png``: per-class AUC, mean ROC curves, and, from the saved detectors, the
  paper's Figures 1–2 (reconstructions with E and A), 3 (latent space) and 4–5 (2-D manifold);
  for the runs of the ``factors`` protocol, a disentanglement table and samples and traversals.

Every number comes from the records; every statement about where our results fall short of the
paper's is generated from them, not written by hand. Figures that need saved models or dataset
files are skipped with a line saying why, never with a crash (a fresh clone has results, no models).
When some saved model behind the model figures is missing, the figures the last report drew are
kept as they are and their captions say so; only figures this report neither drew nor kept are
removed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

# looked up here by write_report, so that patching ``dcvae.report.load_dataset`` (as the tests
# do) still reaches the figures
from dcvae.data import load_dataset  # noqa: E402  (after the sections: it is patched, not used by them)
from dcvae.report.context import _Context, row_labels
from dcvae.report.curves import per_class_section, roc_section
from dcvae.report.disentanglement import disentanglement_section
from dcvae.report.document import Block, render_html, render_markdown
from dcvae.report.figure_runs import FigureRun, pick_figure_runs, pick_reconstruction_runs
from dcvae.report.header import header_section
from dcvae.report.honesty import honesty_section
from dcvae.report.latent import latent_section, manifold_mosaics, manifold_section, relevant_dims
from dcvae.report.paired import paired_section
from dcvae.report.paper import PAPER_TABLE_I, PaperAnchor
from dcvae.report.reconstructions import reconstruction_section
from dcvae.report.runs import _expected_keys, runs_section
from dcvae.report.tables import one_class_section, score_choice_section, table_one_section

# ============================================================================ the entry point

def write_report(directory: str | Path, *, command: str | None = None, max_figure_samples: int = 2000,
                 data_dir: str | Path | None = None,
                 progress: Callable[[str, int, int], None] | None = None,
                 headline: tuple[str, ...] = ()) -> dict[str, Path]:
    """Write ``report.md``, ``report.html`` and ``figures/*.png`` into a benchmark results directory.

    command: the ``dcvae benchmark`` command that produced the directory, shown in the header
        (otherwise taken from a comment of the config copy, if one names it).
    max_figure_samples: test samples (a seeded subsample) behind the latent-space figure and the
        choice of the manifold's two dimensions.
    data_dir: where dataset files are looked for first (the figures need the test images).
    progress: called before each section with its name, its index and the number of sections.
    headline: scores to read as each run's headline where the run recorded one (the first of them
        it recorded), in place of its grid's first score, e.g. a model's new default score.

    Returns the paths under the keys ``markdown``, ``html`` and ``figures``.
    Raises FileNotFoundError (no directory or no results.jsonl) or ValueError (no records).
    """
    if max_figure_samples < 10:
        raise ValueError(f"max_figure_samples must be at least 10, got {max_figure_samples}")
    ctx = _Context.open(Path(directory), data_dir=data_dir, max_samples=max_figure_samples,
                        load=load_dataset, headline=tuple(headline))
    _drop_superseded(ctx)
    detection = ctx.detection  # a store of factors runs alone has no detection to report
    sections: list[tuple[str, Callable[[], list[Block]], bool]] = [  # name, builder, detection only
        ("header", lambda: header_section(ctx, command), False),
        ("Table I", lambda: table_one_section(ctx), True),
        ("paired comparisons", lambda: paired_section(ctx), True),
        ("score choice", lambda: score_choice_section(ctx), True),
        ("one-class", lambda: one_class_section(ctx), True),
        ("runs", lambda: runs_section(ctx), False),
        ("disentanglement", lambda: disentanglement_section(ctx), False),
        ("per class", lambda: per_class_section(ctx), True),
        ("ROC curves", lambda: roc_section(ctx), True),
        ("reconstructions", lambda: reconstruction_section(ctx), True),
        ("latent spaces", lambda: latent_section(ctx), True),
        ("manifolds", lambda: manifold_section(ctx), True),
        ("honesty", lambda: honesty_section(ctx), True),
    ]
    blocks: list[Block] = []
    chosen = [(name, build) for name, build, needs_detection in sections if detection or not needs_detection]
    for i, (name, build) in enumerate(chosen):
        if progress is not None:
            progress(name, i, len(chosen))
        blocks += build()
    ctx.finish()
    paths = {"markdown": ctx.directory / "report.md", "html": ctx.directory / "report.html",
             "figures": ctx.figures}
    # plain writes: the report is derived data, regenerated at will
    paths["markdown"].write_text(render_markdown(blocks, ctx.directory), encoding="utf-8")
    paths["html"].write_text(render_html(blocks, f"dcvae benchmark report: {ctx.config_name}"),
                             encoding="utf-8")
    return paths


def _drop_superseded(ctx: _Context) -> None:
    """Records of runs the grid no longer holds (the config changed since) stay in the store but
    leave the tables: a table describes one grid. Kept when the grid cannot be read here."""
    expected = _expected_keys(ctx)
    if isinstance(expected, str):
        return
    current = [r for r in ctx.records if r["key"] in expected]
    if current and len(current) < len(ctx.records):
        ctx.superseded = [r for r in ctx.records if r["key"] not in expected]
        ctx.records = current
        ctx.labels = row_labels(current)


__all__ = ["PAPER_TABLE_I", "FigureRun", "PaperAnchor", "manifold_mosaics", "pick_figure_runs",
           "pick_reconstruction_runs", "relevant_dims", "render_html", "render_markdown", "row_labels",
           "write_report"]
