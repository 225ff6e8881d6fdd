"""How many candidates a coarse stage must pass on so that the final stage can find the top-k.

A funnel searches a short prefix (or a compact code) for C candidates and rescores them at full
dimension. Its recall@k is the share of the full-dimension top-k that falls among those C. With
exact coarse search this is a property of the representation alone, so it can be measured once,
without building an index: the coarse *rank* of each of a query's full-dimension top-k documents
says at which C it is found, and every C can be read off the sorted ranks.

Codes are compared the way an index would compare them: float prefixes by cosine, int8 codes by
the inner product of their integer values (Qdrant's scalar quantisation quantises the query
too), 4-bit codes by the inner product of the float query with the decoded codes (FAISS's
``SQ4`` keeps the query in float), sign bits by Hamming distance (ties, frequent with short
binary codes, count half: the expected rank when an index breaks them arbitrarily) or, as
``binary-asym``, by the inner product of the float query with the documents' signs (an
asymmetric binary scan: the same stored bits, a query that loses nothing).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .._validation import normalize_rows
from ..codes import ENCODINGS
from ..errors import InvalidInput
from .retrieval import exact_search

#: the encodings measured here (:data:`matry_index.codes.ENCODINGS`: ``float`` is float32) and
#: ``binary-asym``, the sign bits scanned with the float query: the same stored bits
ENCODING_OF = {"float": "float32", "int8": "int8", "int4": "int4", "binary": "binary", "binary-asym": "binary"}
CODES = tuple(ENCODING_OF)
CODE_BITS = {code: ENCODINGS[encoding].bits_per_dim for code, encoding in ENCODING_OF.items()}


def full_dimension_top_k(queries: np.ndarray, docs: np.ndarray, k: int = 10) -> np.ndarray:
    """Row indices of each query's top-``k`` docs by full-dimension cosine (the funnel's target)."""
    return exact_search(normalize_rows(queries), normalize_rows(docs), k)


@dataclass(frozen=True)
class FittedCode:
    """A coarse-stage code fitted on the documents: ``kind`` is one of :data:`CODES`.

    int8 is symmetric per coordinate, the 99.9th percentile of |x| mapped to 127 (rarer larger
    values clip), as scalar quantisers with a quantile bound do; int4 splits the same bound
    into 16 equal steps per coordinate. Sign bits are taken after subtracting the documents'
    mean: on a rotation that is not centred (PCA's leading axis) the raw signs would be nearly
    constant.
    """

    kind: str
    scale: np.ndarray | None = None
    center: np.ndarray | None = None

    @classmethod
    def fit(cls, docs: np.ndarray, kind: str) -> "FittedCode":
        if kind not in CODES:
            raise InvalidInput(f"code must be one of {', '.join(CODES)}, got {kind!r}")
        x = normalize_rows(docs)
        if kind in ("int8", "int4"):
            bound = np.maximum(np.quantile(np.abs(x), 0.999, axis=0), 1e-12)
            levels = 127.0 if kind == "int8" else 8.0
            return cls(kind, scale=(levels / bound).astype(np.float32))
        if kind.startswith("binary"):
            return cls(kind, center=x.mean(axis=0).astype(np.float32))
        return cls(kind)

    def encode(self, x: np.ndarray) -> np.ndarray:
        """Documents as the search reads them: normalised float32 rows, int8 rows, the decoded
        values of 4-bit codes (float32; 16 levels per coordinate), packed sign bits, or (for
        ``binary-asym``) the signs as ±1 floats."""
        x = normalize_rows(x)
        if self.kind == "int8":
            return np.clip(np.rint(x * self.scale), -127, 127).astype(np.int8)
        if self.kind == "int4":
            cells = np.clip(np.floor(x * self.scale), -8, 7)
            return ((cells + 0.5) / self.scale).astype(np.float32)
        if self.kind == "binary":
            return np.packbits(x > self.center, axis=1)
        if self.kind == "binary-asym":
            return np.where(x > self.center, 1.0, -1.0).astype(np.float32)
        return x

    def encode_queries(self, x: np.ndarray) -> np.ndarray:
        """Queries as the search compares them with :meth:`encode`'s documents: the same code
        where the engine quantises queries too, the float query where it does not."""
        if self.kind == "int4":
            return normalize_rows(x)
        if self.kind == "binary-asym":
            return normalize_rows(x) - self.center
        return self.encode(x)


def code_bytes(dim: int, code: str) -> int:
    """Bytes per vector of a ``dim``-coordinate code."""
    return int(dim * CODE_BITS[code] + 7) // 8


def _similarity(code: str) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """Higher-is-closer scores of a query block against every document code."""
    if code == "binary":
        popcount = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1).sum(1).astype(np.int32)

        def negative_hamming(q: np.ndarray, d: np.ndarray) -> np.ndarray:
            return -popcount[np.bitwise_xor(q[:, None, :], d[None, :, :])].sum(-1)
        return negative_hamming
    return lambda q, d: q.astype(np.float32) @ d.astype(np.float32).T


def coarse_ranks(query_codes: np.ndarray, doc_codes: np.ndarray, targets: np.ndarray, code: str,
                 block: int | None = None) -> np.ndarray:
    """(queries, k) coarse rank (0 = first) of each target document: how many documents score
    above it, plus half of those that tie with it."""
    if len(query_codes) != len(targets):
        raise InvalidInput(f"{len(query_codes)} queries but {len(targets)} target rows")
    score = _similarity(code)
    block = block or (16 if code == "binary" else 256)
    ranks = np.empty(targets.shape, np.float64)
    for s in range(0, len(query_codes), block):
        sims = score(query_codes[s:s + block], doc_codes)
        own = np.take_along_axis(sims, targets[s:s + block], axis=1)
        above = (sims[:, None, :] > own[:, :, None]).sum(-1)
        ties = (sims[:, None, :] == own[:, :, None]).sum(-1) - 1
        ranks[s:s + block] = above + ties / 2.0
    return ranks


def candidates_needed(ranks: np.ndarray, recall: float) -> int:
    """Smallest C whose coarse top-C holds ``recall`` of all (query, target) pairs."""
    if not 0 < recall <= 1:
        raise InvalidInput(f"recall must be in (0, 1], got {recall}")
    flat = np.sort(ranks.ravel())
    index = max(int(np.ceil(recall * flat.size - 1e-9)) - 1, 0)
    return int(np.floor(flat[index])) + 1


def recall_at(ranks: np.ndarray, candidates: int) -> float:
    """Recall of the full-dimension top-k among the coarse top-``candidates``."""
    return float((ranks < candidates).mean())


def funnel_need(queries: np.ndarray, docs: np.ndarray, levels: Sequence[int],
                transform: Callable[[np.ndarray], np.ndarray] | None = None, code: str = "float",
                recalls: Sequence[float] = (0.99, 0.995), k: int = 10,
                candidates: Sequence[int] = (100,), targets: np.ndarray | None = None) -> dict[int, dict]:
    """Per coarse level: candidates needed for each recall of the full-dimension top-``k``
    (original vectors), and recall at fixed candidate counts, with ``code`` bytes per vector.

    ``transform`` (a rotation's or an adaptor's) maps the original vectors before the prefix is
    cut; ``targets`` may pass precomputed :func:`full_dimension_top_k` rows.
    """
    targets = full_dimension_top_k(queries, docs, k) if targets is None else targets
    q_all = transform(queries) if transform else queries
    d_all = transform(docs) if transform else docs
    out: dict[int, dict] = {}
    for m in levels:
        coder = FittedCode.fit(d_all[:, :m], code)
        ranks = coarse_ranks(coder.encode_queries(q_all[:, :m]), coder.encode(d_all[:, :m]), targets, code)
        out[int(m)] = {"bytes": code_bytes(m, code),
                       "needed": {float(r): candidates_needed(ranks, r) for r in recalls},
                       "recall_at": {int(c): recall_at(ranks, c) for c in candidates}}
    return out
