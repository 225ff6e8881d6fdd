"""The baselines an adaptor has to beat: plain prefix truncation and a PCA rotation.

PCA is fitted on the corpus and applied as a pure rotation (no centring of the output), so
full-dimension cosines are unchanged and only the order of the coordinates — which prefix
holds most of the variance — differs from the original embedding.
"""
from __future__ import annotations

import numpy as np

from ..errors import InvalidInput
from .._validation import as_matrix, normalize_rows


def truncate(x: np.ndarray, m: int, normalize: bool = True) -> np.ndarray:
    """First ``m`` coordinates of each row, re-normalised so inner product = cosine."""
    prefix = np.ascontiguousarray(x[:, :m])
    return normalize_rows(prefix) if normalize else prefix


class PCARotation:
    """Orthogonal rotation onto the corpus's principal axes, largest variance first."""

    def __init__(self, components: np.ndarray):
        self.components = np.asarray(components, dtype=np.float32)  # (d, d), columns = axes

    @classmethod
    def fit(cls, corpus: np.ndarray) -> "PCARotation":
        """scikit-learn's PCA with every component kept; its eigen-solver on the covariance
        matrix is exact and fast for the many-rows, few-columns shape of a corpus."""
        from sklearn.decomposition import PCA
        x = as_matrix(corpus, name="corpus").astype(np.float64)
        if len(x) < x.shape[1]:
            raise InvalidInput(f"a full PCA rotation of {x.shape[1]}-d vectors needs at least {x.shape[1]} of "
                               f"them; got {len(x)}")
        pca = PCA(n_components=x.shape[1], svd_solver="covariance_eigh").fit(x)
        return cls(pca.components_.T)

    def transform(self, x: np.ndarray) -> np.ndarray:
        return as_matrix(x, dim=self.components.shape[0]) @ self.components
