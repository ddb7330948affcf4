"""Settings and runs: what every run used, the epochs it ran, and whether the grid is complete."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from dcvae.benchmark.grid import parse_config
from dcvae.benchmark.runner import CONFIG_COPY
from dcvae.config import ConfigError
from dcvae.report.context import (
    _Context,
    _dataset_rank,
    _first_line,
    _group,
    _label_order,
    class_count,
    dataset_name,
    score_auc,
    setting,
)
from dcvae.report.document import Block, Bullets, Heading, Paragraph, Table


def runs_section(ctx: _Context) -> list[Block]:
    """Settings, epochs actually run, and whether every run of the grid finished."""
    blocks: list[Block] = [Heading(2, "Settings and runs")]
    common, per_label = _settings_summary(ctx)
    blocks.append(Paragraph("Settings of every run: " + (", ".join(f"`{k}={v}`" for k, v in common.items())
                                                         or "none in common") + "."))
    if per_label:
        blocks.append(Table(("Model", "own settings"),
                            tuple((label, ", ".join(f"`{k}={v}`" for k, v in s.items()))
                                  for label, s in per_label.items())))
    epoch_rows = []
    for (d, protocol), group in sorted(_group(ctx.ok, "dataset", "protocol").items(),
                                       key=lambda kv: (_dataset_rank(kv[0][0]), kv[0][1])):
        for label in _label_order(ctx, group):
            runs = [r for r in group if ctx.labels[r["key"]] == label]
            ran = [int(r.get("epochs_run", 0)) for r in runs]
            best = [int(r.get("best_epoch", 0)) for r in runs if r.get("best_epoch") is not None]
            epoch_rows.append((dataset_name(d), protocol, label,
                               _span({setting(r, "epochs") for r in runs}),
                               _span(ran), _span(best), _span({r.get("n_train") for r in runs})))
    if epoch_rows:
        blocks.append(Table(("Dataset", "Protocol", "Model", "epochs set", "epochs run", "best epoch",
                             "training images"), tuple(epoch_rows),
                            "Epochs run < epochs set: early stopping on the validation loss (`patience`)."))
    blocks.append(Bullets(tuple(_completion_lines(ctx))))
    return blocks


def _span(values: Iterable[Any]) -> str:
    numbers = sorted(v for v in values if isinstance(v, (int, float)))
    if not numbers:
        return "—"
    return f"{numbers[0]}" if numbers[0] == numbers[-1] else f"{numbers[0]}–{numbers[-1]}"


def _settings_summary(ctx: _Context) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """(settings every record shares, each row label's remaining settings)."""
    all_settings = [r.get("settings", {}) for r in ctx.records]
    keys = set().union(*all_settings)
    common = {k: all_settings[0][k] for k in sorted(keys)
              if all(k in s and s[k] == all_settings[0].get(k) for s in all_settings)}
    per_label: dict[str, dict[str, Any]] = {}
    for label in _label_order(ctx, ctx.records):
        runs = [r for r in ctx.records if ctx.labels[r["key"]] == label]
        own: dict[str, Any] = {}
        for k in sorted(keys - set(common)):
            values = {json.dumps(r.get("settings", {}).get(k)) for r in runs}
            if values != {"null"}:  # a run that did not set it ran at the default
                own[k] = " / ".join(sorted(v for v in values if v != "null")) + (
                    " / default" if "null" in values else "")
        if own:
            per_label[label] = own
    return common, per_label


def _completion_lines(ctx: _Context) -> list[str]:
    lines = []
    expected = _expected_keys(ctx)
    done = {r["key"] for r in ctx.records}
    if isinstance(expected, str):
        lines.append(f"Grid size unknown: {expected}.")
    else:
        missing = [label for key, label in expected.items() if key not in done]
        lines.append(f"The grid has {len(expected)} runs; {len(set(expected) & done)} have a record"
                     + (f", {len(missing)} have none yet (not run or still running): "
                        + "; ".join(missing[:20]) + (" …" if len(missing) > 20 else "")
                        if missing else ": all runs finished."))
        extra = len(done - set(expected))
        if extra:
            lines.append(f"{extra} records belong to runs no longer in the grid (an earlier config); "
                         "they are included in the tables.")
        if ctx.superseded:
            lines.append(f"{len(ctx.superseded)} records of the store belong to runs no longer in the "
                         "grid (made under an earlier config); they are left out of every table: "
                         + "; ".join(_run_label(r) for r in ctx.superseded[:10])
                         + (" …" if len(ctx.superseded) > 10 else ""))
    diverged = [r for r in ctx.records if r.get("status") != "ok"]
    if diverged:
        lines.append(f"{len(diverged)} run(s) diverged (no metrics; left out of every mean): "
                     + "; ".join(f"{_run_label(r)}: {_first_line(str(r.get('error', '?')))[:160]}"
                                 for r in diverged[:20]))
    else:
        lines.append("No run diverged.")
    no_auc = [r for r in ctx.ok if score_auc(r) is None]
    if no_auc:
        lines.append(f"{len(no_auc)} finished run(s) had non-finite headline scores (no AUC; left out): "
                     + "; ".join(_run_label(r) for r in no_auc[:20]))
    return lines


def _expected_keys(ctx: _Context) -> dict[str, str] | str:
    """The grid's run keys (from the config copy) → a readable label, or why they are unknown."""
    if ctx.config_raw is None:
        return ctx.config_problem

    def count(name: str) -> int:
        n = class_count(name)
        if n is None:
            raise ValueError(f"the class count of {name} is unknown here")
        return n

    try:
        config = parse_config(ctx.config_raw, class_count=count, text=ctx.config_text,
                              where=CONFIG_COPY)
    except (ConfigError, ValueError, TypeError) as err:
        return f"{CONFIG_COPY} could not be read with this version ({_first_line(err)})"
    return {spec.key: spec.label for spec in config.runs}


def _run_label(r: dict[str, Any]) -> str:
    return (f"{r.get('model')} {r.get('dataset')} {r.get('protocol')} class {r.get('class')} "
            f"seed {r.get('seed')}")
