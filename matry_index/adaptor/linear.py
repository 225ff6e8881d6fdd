"""The adaptor's matrix products at inference time, run by FAISS's BLAS rather than numpy's.

numpy and FAISS each ship an OpenBLAS. FAISS's runs on the OpenMP threads FAISS searches with;
numpy's keeps a pthread pool of its own. Right after a multi-threaded FAISS search those OpenMP
threads still spin, waiting for their next task, and numpy's threads then fight them for the
same cores: adapting a batch of 300 queries ((300 × 384) · (384 × 384)) took 11 ms instead of
0.5 ms on two cores, and the index's batch throughput halved. An affine map done by FAISS
(``faiss.LinearTransform``, whose product is FAISS's own ``sgemm``) keeps adapting queries and
searching them on one pool of threads: a SciFact query batch went from 12,400 to 24,800 queries
per second (``docs/index.md``). Single queries cost the same either way.
"""
from __future__ import annotations

import faiss
import numpy as np


#: rows per product. Measured: a bulk add of 200,000 vectors adapted in one product left the
#: process ~100 MB larger for good (FAISS's BLAS keeps the work memory its largest product
#: took); in blocks of this many rows it stays as large as with numpy
BLOCK_ROWS = 4096


class Affine:
    """``x @ weight + bias`` for C-contiguous float32 rows ``x``; ``weight`` is (d_in, d_out)."""

    def __init__(self, weight: np.ndarray, bias: np.ndarray | None = None):
        self.weight, self.bias = weight, bias
        d_in, d_out = weight.shape
        self.d_out = int(d_out)
        self._map = faiss.LinearTransform(int(d_in), self.d_out, bias is not None)
        faiss.copy_array_to_vector(np.ascontiguousarray(weight.T, np.float32).ravel(), self._map.A)
        if bias is not None:
            faiss.copy_array_to_vector(np.ascontiguousarray(bias, np.float32), self._map.b)
        self._map.is_trained = True

    def made_from(self, weight: np.ndarray, bias: np.ndarray | None) -> bool:
        """Whether this map was built from these very arrays (an adaptor's arrays may be replaced)."""
        return self.weight is weight and self.bias is bias

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, np.float32)
        out = np.empty((len(x), self.d_out), np.float32)
        for s in range(0, len(x), BLOCK_ROWS):
            rows = min(BLOCK_ROWS, len(x) - s)
            self._map.apply_noalloc(rows, faiss.swig_ptr(x[s:]), faiss.swig_ptr(out[s:]))
        return out
