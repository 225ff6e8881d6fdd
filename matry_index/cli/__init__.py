"""``matry-index``: train adaptors, evaluate them, build and query indexes from the shell.

    matry-index quickstart [--data DIR]          # the whole pipeline on one BEIR set
    matry-index train --data DIR --out ADAPTOR   # fit an adaptor (add --supervised)
    matry-index evaluate --data DIR --adaptor A  # nDCG@10 / recall@100 per level vs baselines
    matry-index build --embeddings X.npy --ids X.ids --out INDEX [--adaptor A] [--payload P.jsonl]
    matry-index search --index INDEX --queries Q.npy [-k 10]
    matry-index qdrant-setup --url URL --adaptor A --embeddings X.npy --ids X.ids
    matry-index advise --embeddings X.npy [--queries Q.npy] [--adaptor A]   # dimensions needed
    matry-index bench --embeddings X.npy [--queries Q.npy] [--adaptor A | --fit] [--sample N]

Each group of commands lives in its own module (:mod:`.experiment`, :mod:`.indexes`,
:mod:`.measure`), which builds its parsers and runs them.
"""
from __future__ import annotations

import argparse
import shlex
import sys

from .. import __version__
from .._extras import MissingExtraError
from ..errors import MISSING_EXTRA_EXIT, MatryIndexError, exit_code
from . import experiment, indexes, measure
from .args import Parser


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="matry-index", description=__doc__.split("\n\nEach group")[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for group in (experiment, indexes, measure):
        group.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command. Every planned failure is one line on stderr and an exit code by its
    kind (:data:`matry_index.errors.EXIT_CODES`): 2 bad input (and usage errors), 3 a corrupt
    save, 4 a server out of reach, 5 the filesystem (a full disk included), 6 a store held by
    another process, 7 an extra not installed; 1 is a bug."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.command_line = shlex.join(["matry-index", *argv])  # what a report says reproduces the run
    try:
        return args.func(args)
    except MissingExtraError as exc:
        print(f"matry-index: error: {exc}", file=sys.stderr)
        return MISSING_EXTRA_EXIT
    except (MatryIndexError, OSError) as exc:
        print(f"matry-index: error: {exc}", file=sys.stderr)
        return exit_code(exc)


if __name__ == "__main__":
    sys.exit(main())
