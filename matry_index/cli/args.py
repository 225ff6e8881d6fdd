"""What every command's parser shares: one-line usage errors, defaults in ``--help``, and the
argument types that turn bad input into a usage error instead of a traceback."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from ..adaptor.config import DEFAULT_LEVELS as TRAIN_LEVELS
from ..errors import InvalidInput
from ..inputs import parse_json_object

DEFAULT_DATA = Path("../shared/data/scifact")
DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Descriptions kept as written, and each option's default shown in ``--help`` (unless
    it is None or False: "not set" says nothing)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default in (None, False):
            return action.help or ""
        return super()._get_help_string(action)


class Parser(argparse.ArgumentParser):
    """argparse with every usage error as one line on stderr and exit code 2, and defaults
    shown in every command's help (subcommands inherit the class)."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"{self.prog}: error: {message} (see --help)", file=sys.stderr)
        raise SystemExit(2)


def levels(text: str) -> tuple[int, ...]:
    """``--levels 64,128,256`` → (64, 128, 256); an argparse type, so bad input is a usage error."""
    try:
        found = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"levels must be comma-separated integers, e.g. 64,128,256; "
                                         f"got {text!r}") from None
    if not found or any(m <= 0 for m in found):
        raise argparse.ArgumentTypeError(f"levels must be positive integers; got {text!r}")
    return found


def bounded(convert, accept, expected: str):
    """An argparse type: ``convert`` the text, then require ``accept(value)``."""
    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or not accept(value):
            raise argparse.ArgumentTypeError(f"expected {expected}; got {text!r}")
        return value
    return parse


positive_int = bounded(int, lambda v: v > 0, "a positive integer")
recall = bounded(float, lambda v: 0 < v <= 1, "a recall between 0 and 1")


def key_value(text: str) -> tuple[str, Any]:
    """``--option nlist=4096`` → ("nlist", 4096): the value is JSON when it parses as JSON
    (numbers, true/false/null, lists, objects), else the text itself."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE; got {text!r}")
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    return key.strip(), value


def options(pairs: list[tuple[str, Any]] | None, flag: str) -> dict[str, Any]:
    """Repeated ``KEY=VALUE`` arguments as a dict (a key given twice is refused)."""
    out: dict[str, Any] = {}
    for key, value in pairs or []:
        if key in out:
            raise InvalidInput(f"{flag} {key} is given twice")
        out[key] = value
    return out


def read_filter(text: str | None) -> dict | None:
    return parse_json_object(text, "--filter") if text else None


def storage_args(p: argparse.ArgumentParser) -> None:
    """What an index stores: the full vectors or, ``--compact``, only the adaptor's prefix up to
    the longest level; ``--codes``, how the vectors that rank are held."""
    from ..codes import ROW_CODES
    p.add_argument("--compact", action="store_true",
                   help="a compact index: store only the adaptor's prefix up to the longest of --levels "
                        "(default 64,128) and no full vector; that prefix ranks the final top k")
    p.add_argument("--codes", choices=ROW_CODES, default=None,
                   help="how the vectors that rank are held (default float32): float16 halves them, int8 "
                        "quarters them (FAISS: 8-bit codes in RAM; Qdrant: 8-bit codes in RAM, originals on disk)")


def storage_options(args: argparse.Namespace) -> dict[str, Any]:
    """The index options of :func:`storage_args`' flags (only those given)."""
    out: dict[str, Any] = {"full": False} if args.compact else {}
    if args.codes is not None:
        out["codes"] = args.codes
    return out


def data_args(p: argparse.ArgumentParser) -> None:
    """A BEIR folder and its cached embeddings, the prefix levels and the seed of the fits."""
    p.add_argument("--data", default=os.environ.get("MATRY_INDEX_DATA", str(DEFAULT_DATA)),
                   help="BEIR folder (corpus.jsonl, queries.jsonl, qrels/)")
    p.add_argument("--embeddings", default=None,
                   help="folder with corpus/queries .npy + .ids (default <data>/embeddings/<model>)")
    p.add_argument("--model", default=DEFAULT_MODEL, help="sentence-transformers model used when no embeddings "
                                                          "are cached")
    p.add_argument("--levels", type=levels, default=TRAIN_LEVELS, help="prefix sizes, comma-separated")
    p.add_argument("--seed", type=int, default=0, help="random seed of the fits")
