"""How the FAISS backend encodes the vectors it rescores with: float32, float16 or 8-bit codes.

A funnel's last stage ranks the candidates by their stored vectors, so these bytes are most of
an index's size. A full index keeps them as float32 (the exact ranking of the adapted vectors);
a compact index (``MatryoshkaIndex(..., full=False)``) keeps only the adaptor's prefix and may
keep it coarser still:

* ``"float16"`` — half the bytes; scores move by ~1e-4, which reorders only near-ties;
* ``"int8"`` — a quarter: FAISS's 8-bit scalar quantiser with a range per dimension
  (``ScalarQuantizer.QT_8bit``). A per-dimension range matters here: an adaptor moves most of
  the variance into the first coordinates, so one shared range would waste the codes of the
  later ones. Training needs a sample of the data, so the rows stay float32 until the index
  holds ``train_from`` records (:data:`TRAIN_FROM` by default), are encoded then, and every later row is encoded with that
  range (a value beyond it is clipped).

Decoding is the quantiser's own formula (``vmin + (code + 0.5) / 255 · vdiff``) applied with
numpy to any slice of columns, so a middle stage decodes only the prefix it scores.
"""
from __future__ import annotations

from typing import Any

import faiss
import numpy as np

from ...codes import check_row_codes
from ...errors import Corrupt

#: records an index holds before its 8-bit ranges are trained (the same size from which the
#: default coarse index becomes an IVF one)
TRAIN_FROM = 1000
#: how far the trained 8-bit range reaches past the sample's own minimum and maximum (a
#: fraction of that range, each side): room for later rows without much loss of resolution
RANGE_MARGIN = 0.1


class RowCodec:
    """Encoding and decoding of stored rows for one ``codes`` choice (float32: the identity)."""

    def __init__(self, codes: str, dim: int, train_from: int = TRAIN_FROM):
        self.codes, self.dim, self.train_from = check_row_codes(codes), int(dim), int(train_from)
        self.quantizer: faiss.ScalarQuantizer | None = None  # int8, once trained
        self.low: np.ndarray | None = None     # its range per dimension: low + (code + 0.5) * step
        self.step: np.ndarray | None = None

    @property
    def dtype(self) -> type:
        return {"float32": np.float32, "float16": np.float16, "int8": np.uint8}[self.codes]

    @property
    def bytes_per_dim(self) -> int:
        return np.dtype(self.dtype).itemsize

    @property
    def trained(self) -> bool:
        return self.codes != "int8" or self.low is not None

    def ready_for(self, n: int) -> bool:
        """Whether rows of an index that will hold ``n`` records should be stored encoded."""
        return self.trained or n >= self.train_from

    def train(self, sample: np.ndarray) -> None:
        """Fit the 8-bit ranges to ``sample`` (float32 rows); a no-op for float codes."""
        if self.codes != "int8":
            return
        quantizer = _quantizer(self.dim)
        quantizer.train(np.ascontiguousarray(sample, np.float32))
        self._use(quantizer)

    def _use(self, quantizer: faiss.ScalarQuantizer) -> None:
        trained = faiss.vector_to_array(quantizer.trained)
        self.quantizer = quantizer
        self.low, self.step = trained[:self.dim].copy(), trained[self.dim:] / 255.0

    def encode(self, x: np.ndarray) -> np.ndarray:
        """Rows as stored (float32 rows in)."""
        if self.codes == "float32":
            return np.ascontiguousarray(x, np.float32)
        if self.codes == "float16":
            return x.astype(np.float16)
        return self.quantizer.compute_codes(np.ascontiguousarray(x, np.float32))

    def decode(self, stored: np.ndarray, columns: slice = slice(None)) -> np.ndarray:
        """float32 rows of ``stored`` rows (or of their ``columns``, a slice from 0)."""
        if stored.dtype == np.float32:
            return stored
        if stored.dtype == np.float16:
            return stored.astype(np.float32)
        return self.low[columns] + (stored.astype(np.float32) + 0.5) * self.step[columns]

    # --- persistence -----------------------------------------------------------------------
    def state(self) -> np.ndarray | None:
        """What a save keeps of a trained 8-bit codec: its ranges (minimum and width per
        dimension, FAISS's ``trained`` array), (2, dim) float32."""
        return None if self.quantizer is None else faiss.vector_to_array(self.quantizer.trained).reshape(2, self.dim)

    def restore(self, state: np.ndarray, where: str) -> None:
        if self.codes != "int8" or state.shape != (2, self.dim) or state.dtype != np.float32 \
                or not np.isfinite(state).all() or (state[1] <= 0).any():
            raise Corrupt(f"{where}: the saved 8-bit code ranges are invalid for {self.codes} codes of "
                          f"{self.dim}-d rows (shape {state.shape}, {state.dtype})")
        quantizer = _quantizer(self.dim)
        faiss.copy_array_to_vector(np.ascontiguousarray(state.ravel()), quantizer.trained)
        self._use(quantizer)


def _quantizer(dim: int) -> faiss.ScalarQuantizer:
    quantizer = faiss.ScalarQuantizer(dim, faiss.ScalarQuantizer.QT_8bit)
    quantizer.rangestat = faiss.ScalarQuantizer.RS_minmax
    quantizer.rangestat_arg = RANGE_MARGIN
    return quantizer


class DecodedRows:
    """Read-only float32 view of coded rows for the search kernels: ``rows[i]``,
    ``rows[a:b]``, ``rows[idx]`` and ``rows[idx, :m]`` decode just what they select."""

    def __init__(self, stored: np.ndarray, codec: RowCodec):
        self.stored, self.codec = stored, codec
        self.shape = stored.shape

    def __len__(self) -> int:
        return len(self.stored)

    def __getitem__(self, key: Any) -> np.ndarray:
        if isinstance(key, tuple):
            rows, columns = key
            if not isinstance(columns, slice) or columns.start not in (None, 0) or columns.step not in (None, 1):
                raise IndexError("coded rows decode column slices from 0 only")
            return self.codec.decode(self.stored[rows, columns], columns)
        return self.codec.decode(self.stored[key])
