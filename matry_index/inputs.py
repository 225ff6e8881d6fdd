"""Reading the files users hand the CLI and :func:`~matry_index.qdrant_setup.setup_collection`.

Each reader turns every way a file can be wrong — missing, unreadable, not ``.npy``, a pickle,
a line that is not JSON — into one :class:`MatryIndexError` that names the file (and line),
so the CLI can print it as one line and exit 2. ``.npy`` files are never unpickled.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .errors import InvalidInput


def load_matrix(path: str | Path, what: str, mmap: bool = False) -> np.ndarray:
    """A ``.npy`` array (never a pickle), or a one-line error naming the file."""
    try:
        arr = np.load(path, allow_pickle=False, mmap_mode="r" if mmap else None)
    except (OSError, ValueError, EOFError) as exc:
        raise InvalidInput(f"cannot read {what} {path}: {exc} (expected a .npy file made by numpy.save)") from None
    if not isinstance(arr, np.ndarray):
        arr.close()
        raise InvalidInput(f"{what} {path} is an .npz archive; save one array with numpy.save")
    return arr


def read_lines(path: str | Path, what: str) -> list[str]:
    try:
        return Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read {what} {path}: {exc}") from None


def parse_json_object(text: str, where: str) -> dict:
    """One JSON object from ``text``; the error says where it came from."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise InvalidInput(f"{where} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise InvalidInput(f"{where} must be a JSON object, e.g. {{\"lang\": \"en\"}}; got {text.strip()!r}")
    return value


def read_jsonl(path: str | Path, what: str = "payload file") -> list[dict]:
    """One JSON object per non-blank line; the error names the line that is wrong."""
    return [parse_json_object(line, f"{what} {path} line {number}")
            for number, line in enumerate(read_lines(path, what), 1) if line.strip()]
