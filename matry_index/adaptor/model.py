"""The adaptor at inference time: ``a(e) = R e + f(R e)`` with numpy arrays.

``R`` is an optional orthogonal rotation (PCA-initialised, possibly fine-tuned) and ``f`` a
two-layer MLP whose last layer starts at zero, so an untrained adaptor is exactly the rotation
(or the identity without one). Inference is a few matrix products (done by FAISS's BLAS:
:mod:`.linear` says why), so query-time code never needs torch.

On disk an adaptor is a directory with ``adaptor.json`` (dimension, levels, training settings
and a content hash) and ``weights.npz``. The hash covers the weights and the shape-defining
config, so an index can refuse queries encoded with a different adaptor.
"""
from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from .._fs import atomic_directory, recover_directory
from .._validation import as_matrix, check_levels, normalize_rows
from ..errors import AdaptorMismatchError, Corrupt, InvalidInput
from .linear import Affine

FORMAT_VERSION = 1
CONFIG_FILE = "adaptor.json"
WEIGHTS_FILE = "weights.npz"


def is_saved_adaptor(directory: Path) -> bool:
    """Whether ``directory`` holds exactly an adaptor saved by :meth:`MatryoshkaAdaptor.save`
    (and nothing else), so a new save may replace it."""
    names = {p.name for p in directory.iterdir()}
    if names != {CONFIG_FILE, WEIGHTS_FILE} or not (directory / CONFIG_FILE).is_file():
        return False
    try:
        return json.loads((directory / CONFIG_FILE).read_text()).get("kind") == "matryoshka-adaptor"
    except (OSError, ValueError, AttributeError):
        return False


def gelu(x: np.ndarray) -> np.ndarray:
    """tanh-approximated GELU, the same formula the torch trainer uses.

    ``x * x * x`` rather than ``x ** 3``: numpy's generic power is ~20 µs on one query's
    hidden layer, more than the rest of the adaptor together.
    """
    return 0.5 * x * (1.0 + np.tanh(0.7978845608028654 * (x + 0.044715 * (x * x * x))))


class MatryoshkaAdaptor:
    """A trained (or identity) adaptor for ``dim``-d embeddings with prefix ``levels``.

    Parameters are plain arrays: ``rotation`` (d, d) or None, ``w1`` (d, h), ``b1`` (h,),
    ``w2`` (h, d), ``b2`` (d,). Use :meth:`identity` for an untrained one and
    :func:`matry_index.adaptor.fit_unsupervised` / ``fit_supervised`` to train.
    """

    def __init__(self, dim: int, levels: tuple[int, ...], *, rotation: np.ndarray | None = None,
                 w1: np.ndarray | None = None, b1: np.ndarray | None = None,
                 w2: np.ndarray | None = None, b2: np.ndarray | None = None,
                 settings: dict[str, Any] | None = None):
        self.dim = int(dim)
        self.levels = check_levels(levels, self.dim)
        self.rotation = None if rotation is None else np.asarray(rotation, np.float32)
        if self.rotation is not None and self.rotation.shape != (self.dim, self.dim):
            raise InvalidInput(f"rotation must be ({dim}, {dim}); got {self.rotation.shape}")
        mlp = (w1, b1, w2, b2)
        if any(p is None for p in mlp) and not all(p is None for p in mlp):
            raise InvalidInput("w1, b1, w2, b2 must be given together")
        self.w1, self.b1, self.w2, self.b2 = (None if p is None else np.asarray(p, np.float32) for p in mlp)
        if self.w1 is not None:
            hidden = self.w1.shape[1]
            expected = {"w1": (self.dim, hidden), "b1": (hidden,), "w2": (hidden, self.dim), "b2": (self.dim,)}
            for name, shape in expected.items():
                if getattr(self, name).shape != shape:
                    raise InvalidInput(f"{name} must have shape {shape}; got {getattr(self, name).shape}")
        for name, arr in self._arrays().items():
            if not np.isfinite(arr).all():
                raise InvalidInput(f"adaptor {name} holds NaN or inf weights: it would turn every "
                                      "vector into NaN; refit or restore the adaptor")
        self.settings = dict(settings or {})
        self._hash: str | None = None
        self._affines: dict[str, Affine] = {}  # the products of apply(), made on first use

    @classmethod
    def identity(cls, dim: int, levels: tuple[int, ...] | None = None) -> "MatryoshkaAdaptor":
        """An adaptor that changes nothing: for untrained indexes and as a baseline."""
        return cls(dim, tuple(levels) if levels else (dim,))

    @property
    def hidden(self) -> int:
        return 0 if self.w1 is None else int(self.w1.shape[1])

    @property
    def preserves_full_cosines(self) -> bool:
        """True for a rotation without an MLP (the funnel-aware recipe): full-dimension cosines
        are the original model's exactly, so an index's last stage ranks as the original does."""
        return self.w1 is None

    @property
    def is_identity(self) -> bool:
        return self.rotation is None and self.w1 is None

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Adapted embeddings (not normalised): ``R x + f(R x)``."""
        return self.apply(as_matrix(x, dim=self.dim, name="embeddings"))

    def apply(self, x: np.ndarray) -> np.ndarray:
        """:meth:`transform` of rows already checked (a C-contiguous float32 (n, dim) matrix of
        finite values): the index's query path, which has checked them once already."""
        z = x
        if self.rotation is not None:
            z = self._affine("rotation", self.rotation, None)(z)
        if self.w1 is not None:
            z = z + self._affine("w2", self.w2, self.b2)(gelu(self._affine("w1", self.w1, self.b1)(z)))
        return z if z.flags.c_contiguous and z.dtype == np.float32 else np.ascontiguousarray(z, np.float32)

    def _affine(self, name: str, weight: np.ndarray, bias: np.ndarray | None) -> Affine:
        """The FAISS-run product ``x @ weight + bias``, made again if the arrays were replaced."""
        made = self._affines.get(name)
        if made is None or not made.made_from(weight, bias):
            made = self._affines[name] = Affine(weight, bias)
        return made

    def transform_prefix(self, x: np.ndarray, m: int) -> np.ndarray:
        """First ``m`` adapted coordinates, re-normalised (cosine = inner product)."""
        if not 0 < m <= self.dim:
            raise InvalidInput(f"prefix {m} is outside 1..{self.dim}")
        return normalize_rows(np.ascontiguousarray(self.transform(x)[:, :m]))

    # --- identity and persistence -------------------------------------------------------
    def _arrays(self) -> dict[str, np.ndarray]:
        names = ("rotation", "w1", "b1", "w2", "b2")
        return {n: getattr(self, n) for n in names if getattr(self, n) is not None}

    @property
    def content_hash(self) -> str:
        """sha256 of dimension, levels and weights: equal hashes mean equal outputs."""
        if self._hash is None:
            h = hashlib.sha256(json.dumps({"dim": self.dim, "levels": self.levels}).encode())
            for name, arr in sorted(self._arrays().items()):
                h.update(name.encode())
                h.update(np.ascontiguousarray(arr, dtype=np.float32).tobytes())
            self._hash = h.hexdigest()
        return self._hash

    def config(self) -> dict[str, Any]:
        return {"format_version": FORMAT_VERSION, "kind": "matryoshka-adaptor", "dim": self.dim,
                "levels": list(self.levels), "hidden": self.hidden,
                "rotation": self.rotation is not None, "hash": self.content_hash,
                "settings": self.settings}

    def save(self, directory: str | Path) -> Path:
        """Write the adaptor to ``directory`` atomically (a temp dir renamed into place)."""
        directory = Path(directory)
        with atomic_directory(directory, is_saved_adaptor, "adaptor") as tmp:
            np.savez(tmp / WEIGHTS_FILE, **self._arrays())
            (tmp / CONFIG_FILE).write_text(json.dumps(self.config(), indent=2, default=str))
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> "MatryoshkaAdaptor":
        """Load an adaptor saved by :meth:`save`; anything else is refused with a clear error."""
        directory = Path(directory)
        recover_directory(directory, is_saved_adaptor)
        cfg_path, weights_path = directory / CONFIG_FILE, directory / WEIGHTS_FILE
        if not cfg_path.is_file() or not weights_path.is_file():
            raise InvalidInput(f"{directory} is not a saved adaptor (no {CONFIG_FILE} / {WEIGHTS_FILE})")
        if any(p.is_symlink() for p in (cfg_path, weights_path)):
            raise Corrupt(f"{directory}: a saved adaptor holds plain files, not symbolic links")
        try:
            cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
            with np.load(weights_path, allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
        except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
            raise Corrupt(f"{directory} holds a corrupt adaptor: {exc}") from None
        if not isinstance(cfg, dict) or cfg.get("kind") != "matryoshka-adaptor" \
                or cfg.get("format_version") != FORMAT_VERSION:
            version = cfg.get("format_version") if isinstance(cfg, dict) else None
            raise Corrupt(f"{directory} is not a matry_index adaptor (format {version!r})")
        unknown = set(arrays) - {"rotation", "w1", "b1", "w2", "b2"}
        if unknown:
            raise Corrupt(f"{directory} holds unknown adaptor arrays {sorted(unknown)}")
        try:
            adaptor = cls(cfg["dim"], tuple(cfg["levels"]), settings=cfg.get("settings"), **arrays)
        except (KeyError, TypeError, ValueError) as exc:  # InvalidInput is a ValueError
            raise Corrupt(f"{directory} holds a corrupt adaptor: {exc}") from None
        if adaptor.content_hash != cfg.get("hash"):
            raise Corrupt(f"{directory}: weights do not match the recorded hash (corrupt or edited)")
        return adaptor

    def check_compatible(self, other: "MatryoshkaAdaptor") -> None:
        """Raise :class:`AdaptorMismatchError` unless ``other`` is the same adaptor."""
        if other.content_hash != self.content_hash:
            raise AdaptorMismatchError(
                f"adaptor mismatch: index was built with {self.content_hash[:12]} (dim {self.dim}), "
                f"got {other.content_hash[:12]} (dim {other.dim})")

    def __repr__(self) -> str:
        kind = "identity" if self.is_identity else f"hidden={self.hidden}, rotation={self.rotation is not None}"
        return f"MatryoshkaAdaptor(dim={self.dim}, levels={self.levels}, {kind}, hash={self.content_hash[:12]})"
