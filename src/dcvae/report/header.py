"""The report's header: what the results are, which commit and command made them, on which machines."""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

from dcvae.benchmark.runner import CONFIG_COPY
from dcvae.benchmark.store import RESULTS_FILE
from dcvae.evaluation.provenance import source_commit
from dcvae.report.context import (
    _Context,
)
from dcvae.report.document import Block, Bullets, Heading, Paragraph

# ============================================================================ 1. header

def header_section(ctx: _Context, command: str | None) -> list[Block]:
    description = (ctx.config_raw or {}).get("description") or ""
    benchmark_command = command or _command_from_config(ctx.config_text)
    report_command = f"dcvae report {ctx.directory}" + (f" --data-dir {ctx.data_dir}" if ctx.data_dir else "")
    if ctx.max_samples != 2000:
        report_command += f" --max-samples {ctx.max_samples}"
    report_command += "".join(f" --headline {score}" for score in ctx.preferred_headline)
    versions = sorted({str(r.get("library_version", "?")) for r in ctx.records})
    finished = len(ctx.ok) + len(ctx.factor_runs)
    items = [
        f"Results: `{ctx.directory / RESULTS_FILE}`, {len(ctx.records)} records "
        f"({finished} finished, {len(ctx.records) - finished} diverged).",
        f"Report made from commit `{source_commit() or 'unknown'}` with `{report_command}`.",
        f"Benchmark command: `{benchmark_command}`." if benchmark_command else
        f"Benchmark command: not recorded (the grid is `{ctx.directory / CONFIG_COPY}`: "
        f"`dcvae benchmark CONFIG --out {ctx.directory}`).",
        f"dcvae version of the runs: {', '.join(versions)}.",
        *(f"Hardware: {line}" for line in _hardware_lines(ctx.records)),
    ]
    if ctx.config_problem:
        items.append(f"Grid config: {ctx.config_problem}.")
    blocks: list[Block] = [Heading(1, f"Benchmark report: {ctx.config_name}")]
    if description:
        blocks.append(Paragraph(description))
    blocks.append(Bullets(tuple(items)))
    return blocks


def _command_from_config(text: str) -> str | None:
    """A ``dcvae benchmark ...`` command in the config's comments (the grid files name their
    command), with its shell continuation lines (a trailing backslash) joined."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        found = re.search(r"(dcvae benchmark \S.*)$", line.lstrip("# ").strip())
        if line.lstrip().startswith("#") and found:
            command = found.group(1)
            for more in lines[i + 1:]:
                if not command.endswith("\\") or not more.lstrip().startswith("#"):
                    break
                command = command[:-1].rstrip() + " " + more.lstrip("# ").strip()
            return command.rstrip("\\").rstrip()
    return None


def _hardware_lines(records: list[dict[str, Any]]) -> list[str]:
    machines: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        hw = r.get("hardware") or {}
        name = (f"{hw.get('cpu', '?')}, {hw.get('cpu_cores', '?')} cores"
                + (f", GPU {hw['gpu']}" if hw.get("gpu") else "") + f", torch {hw.get('torch', '?')}")
        machines[name].append(hw)
    lines = []
    for name, hws in machines.items():
        threads = sorted({int(h.get("torch_threads", 0)) for h in hws})
        hosts = sorted({str(h.get("host", "?")) for h in hws})
        lines.append(f"{name}; {'/'.join(map(str, threads))} torch thread(s) per run; "
                     f"host {', '.join(hosts)}; {len(hws)} runs")
    return lines
