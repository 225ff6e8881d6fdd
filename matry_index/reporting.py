"""One self-contained report per run: ``report.md`` and ``report.html`` with the plots inlined.

``quickstart``, ``bench`` and ``advise`` each build a :class:`Report` — what was run (model,
data, seed, package versions, machine), every table, the index summary, timings, caveats and
the commands that reproduce it — and write it next to their other outputs. The HTML page is one
file (images as data URIs), so it can be mailed or opened from anywhere; it is generated from
the same blocks as the Markdown, not converted from it. Tables are given as the Markdown pipe
tables the rest of the package prints.
"""
from __future__ import annotations

import base64
import html
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._fs import atomic_write_text

Block = tuple[str, Any]


def run_info(command: str, **extra: Any) -> dict[str, str]:
    """What a report says about the run: the command line, whatever the command adds (model,
    data, seed), the versions of the packages that shape the numbers, and the machine."""
    from importlib import metadata
    versions = {}
    for package in ("matry_index", "numpy", "faiss-cpu", "torch", "qdrant-client", "sentence-transformers"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    info = {"command": command, **{key: str(value) for key, value in extra.items() if value is not None}}
    info.update({"python": platform.python_version(), "machine": f"{platform.platform()}, {os.cpu_count()} cores",
                 "versions": ", ".join(f"{k} {v}" for k, v in versions.items())})
    return info


def _pipe_rows(table: str) -> tuple[list[str], list[list[str]], str | None]:
    """(header, rows, title) of one of our Markdown pipe tables (an optional **title** line first)."""
    title, header, rows = None, [], []
    for line in table.strip().splitlines():
        line = line.strip()
        if line.startswith("**") and line.endswith("**"):
            title = line.strip("*")
        elif line.startswith("|") and set(line) <= set("|-: "):
            continue  # the separator row
        elif line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if header:
                rows.append(cells)
            else:
                header = cells
    return header, rows, title


@dataclass
class Report:
    """A titled sequence of blocks: headings, paragraphs, bullet lists, tables, images, code."""

    title: str
    blocks: list[Block] = field(default_factory=list)

    def heading(self, text: str) -> "Report":
        self.blocks.append(("heading", text))
        return self

    def paragraph(self, text: str) -> "Report":
        self.blocks.append(("paragraph", text))
        return self

    def bullets(self, items: list[str]) -> "Report":
        if items:
            self.blocks.append(("bullets", list(items)))
        return self

    def table(self, markdown_table: str) -> "Report":
        self.blocks.append(("table", markdown_table))
        return self

    def image(self, path: str | Path, caption: str) -> "Report":
        self.blocks.append(("image", (Path(path), caption)))
        return self

    def code(self, text: str) -> "Report":
        self.blocks.append(("code", text))
        return self

    def timings(self, seconds: dict[str, float]) -> "Report":
        """A table of how long each stage of the run took."""
        rows = "\n".join(f"| {stage} | {sec:.0f} |" for stage, sec in seconds.items())
        return self.table(f"| stage | seconds |\n|---|---|\n{rows}")

    def facts(self, info: dict[str, str]) -> "Report":
        """A two-column table of what was run."""
        rows = "\n".join(f"| {key} | {value} |" for key, value in info.items())
        return self.table(f"| | |\n|---|---|\n{rows}")

    # --- rendering --------------------------------------------------------------------------
    def markdown(self) -> str:
        out = [f"# {self.title}", ""]
        for kind, value in self.blocks:
            if kind == "heading":
                out += [f"## {value}", ""]
            elif kind == "paragraph":
                out += [value, ""]
            elif kind == "bullets":
                out += [f"- {item}" for item in value] + [""]
            elif kind == "table":
                out += [value.strip(), ""]
            elif kind == "image":
                path, caption = value
                out += [f"![{caption}]({path.name})", "", f"*{caption}*", ""]
            elif kind == "code":
                out += ["```", value.rstrip(), "```", ""]
        return "\n".join(out)

    def html(self) -> str:
        body = [f"<h1>{html.escape(self.title)}</h1>"]
        for kind, value in self.blocks:
            if kind == "heading":
                body.append(f"<h2>{html.escape(value)}</h2>")
            elif kind == "paragraph":
                body.append(f"<p>{html.escape(value)}</p>")
            elif kind == "bullets":
                body.append("<ul>" + "".join(f"<li>{html.escape(i)}</li>" for i in value) + "</ul>")
            elif kind == "table":
                body.append(_html_table(value))
            elif kind == "image":
                body.append(_html_image(*value))
            elif kind == "code":
                body.append(f"<pre>{html.escape(value.rstrip())}</pre>")
        return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                f"<title>{html.escape(self.title)}</title><style>{_STYLE}</style></head>"
                f"<body>{''.join(body)}</body></html>\n")

    def write(self, folder: str | Path, name: str = "report") -> tuple[Path, Path]:
        """``<name>.md`` and ``<name>.html`` in ``folder`` (each written atomically)."""
        folder = Path(folder)
        md, page = folder / f"{name}.md", folder / f"{name}.html"
        atomic_write_text(md, self.markdown())
        atomic_write_text(page, self.html())
        return md, page


_STYLE = ("body{font-family:system-ui,sans-serif;max-width:70rem;margin:2rem auto;padding:0 1rem;line-height:1.45}"
          "table{border-collapse:collapse;margin:.5rem 0 1rem}td,th{border:1px solid #ccc;padding:.25rem .6rem;"
          "text-align:right}td:first-child,th:first-child{text-align:left}th{background:#f3f3f3}"
          "caption{font-weight:bold;text-align:left;padding:.3rem 0}img{max-width:100%}"
          "pre{background:#f6f6f6;padding:.6rem;overflow-x:auto}figcaption{font-style:italic}")


def _html_table(markdown_table: str) -> str:
    header, rows, title = _pipe_rows(markdown_table)
    head = "".join(f"<th>{html.escape(_plain(c))}</th>" for c in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_plain(c))}</td>" for c in row) + "</tr>" for row in rows)
    caption = f"<caption>{html.escape(title)}</caption>" if title else ""
    return f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _plain(cell: str) -> str:
    """A table cell without its Markdown emphasis and code marks."""
    return cell.replace("**", "").replace("`", "")


def _html_image(path: Path, caption: str) -> str:
    try:
        data = base64.b64encode(path.read_bytes()).decode("ascii")
    except OSError:
        return f"<p>(plot {html.escape(path.name)} was not written)</p>"
    return (f"<figure><img alt=\"{html.escape(caption)}\" src=\"data:image/png;base64,{data}\">"
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")
