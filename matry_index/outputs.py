"""Where commands write their results: a folder (or a file) of their own, never someone else's.

``matry-index quickstart``, ``bench`` and ``advise`` write reports, tables, plots and saves into
a folder the user names. Such a folder is written like an index save (:mod:`matry_index._fs`:
into a temporary sibling, swapped in whole) and carries a small manifest, ``matry-output.json``,
listing what the command wrote; a later run may replace a folder with that manifest and nothing
else in it, and refuses any other non-empty folder — a user's ``bench.md`` next to their own
notes is never overwritten. A single output file (``advise --json``) is replaced only when it is
one that matry_index wrote.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ._fs import atomic_directory, atomic_write_text, files_below, links_below
from .errors import InvalidInput

MARKER = "matry-output.json"
KIND = "matry-index-output"


def is_output_folder(directory: Path) -> bool:
    """Whether ``directory`` holds a command's output and nothing else (so a new run may replace it)."""
    try:
        marker = json.loads((directory / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(marker, dict) or marker.get("kind") != KIND or links_below(directory):
        return False
    return set(files_below(directory)) <= set(marker.get("files") or []) | {MARKER}


@contextmanager
def output_folder(target: str | Path, command: str) -> Iterator[Path]:
    """A temporary folder to write ``command``'s results into; on success it replaces
    ``target`` (refused, untouched, if that holds anything but an earlier output)."""
    with atomic_directory(target, is_output_folder, f"{command} output") as tmp:
        yield tmp
        marker = {"kind": KIND, "command": command, "files": files_below(tmp)}
        (tmp / MARKER).write_text(json.dumps(marker, indent=1), encoding="utf-8")


def write_json_output(path: str | Path, data: dict[str, Any], kind: str) -> Path:
    """Write ``data`` (tagged with ``kind``) to ``path`` atomically, replacing only a file that
    an earlier run wrote with the same tag."""
    path = Path(path)
    if path.is_symlink() or path.is_dir():
        raise InvalidInput(f"refusing to write {path}: it is a directory or a link; give a file name")
    if path.exists():
        try:
            ours = json.loads(path.read_text(encoding="utf-8")).get("kind") == kind
        except (OSError, ValueError, AttributeError):
            ours = False
        if not ours:
            raise InvalidInput(f"refusing to overwrite {path}: it is not a file this command wrote "
                               "(nothing was changed); give a new file name")
    atomic_write_text(path, json.dumps({"kind": kind, **data}, indent=2, default=str))
    return path
