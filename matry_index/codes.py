"""One vocabulary for how vectors are encoded and how a coarse stage searches them.

An :class:`Encoding` says how each stored coordinate is written (and so how many bits a scan
reads per dimension, possibly a fraction: a product quantiser spends 4 bits on two
coordinates). A :class:`CoarseCode` is a search structure — an exhaustive scan (``flat``), a
graph (``hnsw``) or inverted lists (``ivf``) — over one encoding. Every place that names a
code reads it from here: the FAISS and Qdrant layouts, the tuner's cost model, the CLI's
choices, ``advise``, ``bench`` and the code measurements of
:mod:`matry_index.evaluation.funnel_need`. A new code is one entry in :data:`COARSE_CODES`
plus the engine's builder for it.
"""
from __future__ import annotations

from dataclasses import dataclass

from .errors import InvalidInput


@dataclass(frozen=True)
class Encoding:
    """How each coordinate of a stored vector is written."""

    name: str
    bits_per_dim: float
    summary: str

    @property
    def scan_factor(self) -> float:
        """Bytes a scan reads per coordinate, relative to float32 (what a scan costs)."""
        return self.bits_per_dim / 32


ENCODINGS: dict[str, Encoding] = {e.name: e for e in (
    Encoding("float32", 32, "the float values"),
    Encoding("float16", 16, "half-precision floats"),
    Encoding("int8", 8, "8-bit scalar codes"),
    Encoding("int4", 4, "4-bit scalar codes"),
    Encoding("pq4", 2, "a product quantiser's 4-bit codes, one per pair of coordinates, scanned with "
                       "in-register lookup tables (FAISS fast-scan)"),
    Encoding("binary", 1, "sign bits"),
)}

STRUCTURES = ("flat", "hnsw", "ivf")
ENGINES = ("faiss", "qdrant")
#: the encodings the vectors that rank the final top k may be held in (``codes=`` of an index):
#: FAISS keeps them so in RAM; Qdrant stores float16 originals, or keeps 8-bit codes in RAM
ROW_CODES = ("float32", "float16", "int8")


def check_row_codes(codes: object) -> str:
    if codes not in ROW_CODES:
        raise InvalidInput(f"codes must be one of {ROW_CODES}; got {codes!r}")
    return str(codes)


@dataclass(frozen=True)
class CoarseCode:
    """A coarse stage: a search ``structure`` over vectors written in ``encoding``."""

    structure: str
    encoding: Encoding
    engines: tuple[str, ...]
    summary: str

    @property
    def name(self) -> str:
        """``ivf-int8``, ``hnsw-binary``; a structure over float vectors is just its name."""
        return self.structure if self.encoding.name == "float32" else f"{self.structure}-{self.encoding.name}"

    def bytes_per_vector(self, dim: int) -> float:
        """Bytes the code of one ``dim``-d vector takes (the structure's links and ids aside)."""
        return dim * self.encoding.bits_per_dim / 8


def _code(structure: str, encoding: str, engines: tuple[str, ...], summary: str) -> CoarseCode:
    return CoarseCode(structure, ENCODINGS[encoding], engines, summary)


COARSE_CODES: dict[str, CoarseCode] = {c.name: c for c in (
    _code("flat", "float32", ("faiss",), "every prefix scored exactly (small indexes)"),
    _code("hnsw", "float32", ("faiss", "qdrant"), "a graph walk over float prefixes"),
    _code("ivf", "float32", ("faiss",), "inverted lists of float prefixes"),
    _code("ivf", "int8", ("faiss",), "inverted lists of 8-bit codes on one shared range: a quarter of the "
                                     "bytes to scan"),
    _code("ivf", "pq4", ("faiss",), "inverted lists of 4-bit product-quantiser codes, SIMD-scanned: an "
                                    "eighth of the int8 bytes, a coarser ranking (more candidates)"),
    _code("hnsw", "int8", ("qdrant",), "a graph walk over 8-bit codes kept in RAM"),
    _code("hnsw", "binary", ("qdrant",), "a graph walk over 1-bit codes kept in RAM"),
)}


def coarse_code(name: str, engine: str | None = None) -> CoarseCode:
    """The code named ``name`` (refused, with the choices, if unknown or not on ``engine``)."""
    code = COARSE_CODES.get(name)
    choices = codes_for(engine) if engine else tuple(COARSE_CODES)
    if code is None or (engine is not None and engine not in code.engines):
        raise InvalidInput(f"unknown coarse code {name!r}{f' for {engine}' if engine else ''}; use one of {choices}")
    return code


def codes_for(engine: str) -> tuple[str, ...]:
    """The names of the coarse codes ``engine`` builds, in the order of :data:`COARSE_CODES`."""
    return tuple(name for name, code in COARSE_CODES.items() if engine in code.engines)


__all__ = ["Encoding", "ENCODINGS", "CoarseCode", "COARSE_CODES", "STRUCTURES", "ROW_CODES", "check_row_codes",
           "coarse_code", "codes_for"]
