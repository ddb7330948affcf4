"""The report's document: blocks (headings, paragraphs, bullets, tables, images) and their
rendering to Markdown and to self-contained HTML."""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

# ============================================================================ the document
# The report is a list of blocks, rendered twice: to Markdown and to self-contained HTML.

@dataclass(frozen=True)
class Heading:
    level: int
    text: str


@dataclass(frozen=True)
class Paragraph:
    text: str  # `code` spans are kept in Markdown and become <code> in HTML


@dataclass(frozen=True)
class Bullets:
    items: tuple[str, ...]


@dataclass(frozen=True)
class Table:
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    caption: str = ""


@dataclass(frozen=True)
class Image:
    path: Path  # a PNG under DIR/figures
    caption: str


Block = Heading | Paragraph | Bullets | Table | Image


def render_markdown(blocks: Iterable[Block], directory: Path) -> str:
    out: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            out.append(f"{'#' * block.level} {block.text}")
        elif isinstance(block, Paragraph):
            out.append(block.text)
        elif isinstance(block, Bullets):
            out.append("\n".join(f"- {item}" for item in block.items))
        elif isinstance(block, Table):
            cells = [block.header, tuple("---" for _ in block.header), *block.rows]
            lines = ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in cells]
            out.append(("\n".join(lines)) + (f"\n\n*{block.caption}*" if block.caption else ""))
        else:
            out.append(f"![{block.caption}]({block.path.relative_to(directory).as_posix()})\n\n"
                       f"*{block.caption}*")
    return "\n\n".join(out) + "\n"


_STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.45}table{border-collapse:collapse;margin:.5em 0;font-size:.9em}
th,td{border:1px solid #bbb;padding:.25em .5em;text-align:left}th{background:#eee}
code{background:#f3f3f3;padding:0 .2em}figure{margin:1em 0}img{max-width:100%}
figcaption,.caption{font-style:italic;font-size:.9em;color:#444}"""


def render_html(blocks: Iterable[Block], title: str) -> str:
    body: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            body.append(f"<h{block.level}>{_inline(block.text)}</h{block.level}>")
        elif isinstance(block, Paragraph):
            body.append(f"<p>{_inline(block.text)}</p>")
        elif isinstance(block, Bullets):
            body.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in block.items) + "</ul>")
        elif isinstance(block, Table):
            head = "".join(f"<th>{_inline(c)}</th>" for c in block.header)
            rows = "".join("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in row) + "</tr>"
                           for row in block.rows)
            caption = f'<p class="caption">{_inline(block.caption)}</p>' if block.caption else ""
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>{caption}")
        else:
            data = base64.b64encode(block.path.read_bytes()).decode("ascii")
            body.append(f'<figure><img alt="{html.escape(block.caption)}" '
                        f'src="data:image/png;base64,{data}"><figcaption>{_inline(block.caption)}'
                        "</figcaption></figure>")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")


def _inline(text: str) -> str:
    escaped = html.escape(text, quote=False)
    escaped = re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", escaped)
