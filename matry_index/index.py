"""``MatryoshkaIndex``: an adaptor, a storage backend and a funnel plan behind one class.

Everything a RAG app needs: ``add`` / ``upsert`` / ``delete`` / ``get`` by the user's own ids
(strings or ints), ``search`` (one query or a batch, optional metadata filter), ``tune`` for
the funnel, and ``save`` / ``load``. Vectors go in and out as numpy; the adaptor is applied
to documents at insert time and to queries at search time, so callers always pass the raw
embeddings of their model.

On disk an index is a directory: ``index.json`` (format, dimension, levels, backend and its
options, the funnel plan, the adaptor's hash, the record count, a sha256 of every file and one
of the manifest itself), ``adaptor/`` and ``backend/``. It is written to a temporary sibling and
renamed into place, so a crash leaves either the old index or the new one (see
:mod:`matry_index._fs`); a half-written or edited one fails its checksums on load. A save
replaces only an earlier index save, never other files. What each backend guarantees is in
``docs/guarantees.md``.
"""
from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ._fs import atomic_directory, files_below, links_below, recover_directory
from ._validation import as_matrix, clip_levels, real_array, unit_rows, unit_vectors
from .kernels import unit_prefix
from .errors import AdaptorMismatchError, Corrupt, InvalidInput
from .adaptor.model import MatryoshkaAdaptor
from .backends.base import Backend, Hit, Record, run_search, search_async
from .filters import parse_filter
from .funnel import FunnelPlan
from .tuning import tune as tune_plan
from .ids import UserId, check_count, keys_for
from .metadata import clean_metadata
from .stats import IndexStats

FORMAT_VERSION = 1
MANIFEST = "index.json"
DEFAULT_LEVELS = (64, 128, 256)
#: the levels a compact index keeps when none are named: a 64-d coarse prefix and the 128-d
#: one that ranks (the size at which a supervised adaptor matched the full vectors' nDCG@10 on
#: SciFact and docstrings: benchmarks/results/quality.md)
COMPACT_LEVELS = (64, 128)


def index_levels(levels: tuple[int, ...], backend: str = "faiss") -> tuple[int, ...]:
    """The levels an index uses of an adaptor's (or of :data:`DEFAULT_LEVELS`): the one rule
    ``MatryoshkaIndex``, ``quickstart``, ``build`` and ``qdrant-setup`` share, which each
    backend states for itself (``level_policy``: FAISS keeps the levels from 64 up and its
    tuner skips the middle ones that do not pay; a Qdrant collection keeps one prefix, the
    shortest from 128 up). The full dimension is added by :func:`clip_levels`.
    """
    from . import backends
    return backends.level_policy(backend, tuple(levels))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _checksums(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` but the manifest. A save holds plain files only: a
    symbolic link would make a load read (and hash) files outside the folder, so one is refused."""
    links = links_below(root)
    if links:
        raise Corrupt(f"{root} holds a symbolic link ({links[0]}); a saved index holds plain files only, "
                      "and a load never follows a link out of its folder")
    return {name: _sha256(root / name) for name in files_below(root) if name != MANIFEST}


def _manifest_digest(manifest: dict) -> str:
    """sha256 of the manifest's own content (all but this field), so an edit of its levels,
    plan or options is caught like an edit of any other file."""
    body = {k: v for k, v in manifest.items() if k != "manifest_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def is_saved_index(directory: Path) -> bool:
    """Whether ``directory`` holds an index save and nothing else (so a new save may replace
    it): a matry_index manifest, no file that its checksum list does not name, and no symbolic
    link (links are never ours: replacing the folder would delete a link someone made)."""
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(manifest, dict) or manifest.get("kind") != "matry-index":
        return False
    if links_below(directory):
        return False
    listed = set(manifest.get("files") or {}) | {MANIFEST}
    return set(files_below(directory)) <= listed


#: entries below this may be rotated before they are normalised without overflowing float32
_SAFE_TO_ROTATE = 1e15


def _level_policy_of(backend: Backend):
    """A backend instance's level policy (the base class's for one that does not state it)."""
    from .backends.base import BackendBase
    return getattr(type(backend), "level_policy", BackendBase.level_policy)


def _positive_k(k: Any) -> int:
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)) or k <= 0:
        raise InvalidInput(f"k must be a positive integer; got {k!r}")
    return int(k)


def _check_store_count(backend: Backend, count: int, directory: Path) -> None:
    """Refuse a store whose records disagree with the save.

    A store restored from the save's own files must hold exactly the saved records. A store that
    keeps its own data (an Edge shard, a local-mode folder, a server collection) lives on after
    the save, so writes made since then are part of it; its identity was checked when it opened
    (a store created elsewhere carries another id). Such a store that is empty while the save
    held records, or that carries no id (made by an older version) and holds another count,
    is refused all the same.
    """
    found = len(backend)
    if not backend.keeps_own_data:
        if found != count:
            raise Corrupt(f"{directory}: the save lists {count} records but its files hold {found}")
        return
    if count and not found:
        raise InvalidInput(f"{directory}: the index held {count} records when saved, but its {backend.kind} "
                           f"store ({backend.where}) is empty now (moved, deleted or replaced?); nothing was changed")
    if backend.store_id is None and found != count:
        raise InvalidInput(f"{directory}: the index held {count} records when saved, but the {backend.kind} "
                           f"store at {backend.where} holds {found} and carries no id to show it is the same "
                           "store; nothing was changed")


def _make_backend(kind: str | Backend, dim: int, levels: tuple[int, ...], adaptor_hash: str | None,
                  options: dict) -> Backend:
    if not isinstance(kind, str):
        if tuple(kind.levels) != levels or kind.dim != dim:
            raise InvalidInput(f"backend stores levels {kind.levels} of {kind.dim}-d vectors; "
                                  f"the index needs {levels} of {dim}-d")
        return kind
    from . import backends
    return backends.create(kind, dim, levels, adaptor_hash=adaptor_hash, **options)


def _compact_levels(levels: Sequence[int] | None, dim: int) -> tuple[int, ...]:
    """The levels a compact index of ``dim``-d embeddings keeps: the longest is what it stores."""
    wanted = tuple(COMPACT_LEVELS if levels is None else levels)
    try:
        kept = tuple(sorted({int(m) for m in wanted}))
    except (TypeError, ValueError):
        raise InvalidInput(f"levels must be positive integers; got {wanted!r}") from None
    if not kept or kept[0] <= 0 or kept[-1] >= dim:
        raise InvalidInput(f"a compact index (full=False) stores prefixes shorter than the {dim}-d vectors; "
                           f"got levels {wanted!r}")
    return kept


class MatryoshkaIndex:
    """A coarse-to-fine vector index over adapted embeddings.

    ``dim``: the embedding model's dimension. ``adaptor``: a trained
    :class:`MatryoshkaAdaptor` (None = identity: plain prefix truncation). ``levels``: the
    prefix sizes to store; those ≥ ``dim`` are dropped and ``dim`` itself is always the last,
    so a 6-d index works with the defaults. ``backend``: "faiss" (default), "qdrant",
    "qdrant-edge", or a backend instance; ``backend_options`` go to its constructor (among
    them ``codes``: "float32", "float16" or "int8", how the vectors that rank are held).

    ``full=False`` makes a *compact* index: it stores the adaptor's prefixes up to the longest
    of ``levels`` (default :data:`COMPACT_LEVELS`), re-normalised, and no full vector; that
    prefix ranks the final top k. This is the adaptor paper's promise — fewer dimensions, the
    same quality — as storage: with a supervised adaptor a 128-d prefix in 8-bit codes
    (``codes="int8"``) matched the full 384-d vectors' nDCG@10 on SciFact and docstrings
    (benchmarks/results/compact.md). A compact index refuses what needs the vectors it does not
    keep (``search(exact=True)``, the full-dimension ranking); its exhaustive ranking of what it
    stores is ``plan=FunnelPlan.exhaustive(index.levels, len(index))``.
    """

    def __init__(self, dim: int, *, adaptor: MatryoshkaAdaptor | None = None,
                 levels: Sequence[int] | None = None, backend: str | Backend = "faiss",
                 plan: FunnelPlan | None = None, full: bool = True, **backend_options: Any):
        if adaptor is not None and adaptor.dim != dim:
            raise AdaptorMismatchError(f"adaptor is for {adaptor.dim}-d embeddings, index is {dim}-d")
        if not isinstance(full, (bool, np.bool_)):
            raise InvalidInput(f"full must be True or False; got {full!r}")
        self.dim = int(dim)
        self.adaptor = adaptor
        if full:
            offered = tuple(adaptor.levels if adaptor else DEFAULT_LEVELS)
            wanted = levels if levels is not None else (index_levels(offered, backend) if isinstance(backend, str)
                                                        else _level_policy_of(backend)(offered))
            self.levels = clip_levels(wanted, self.dim)
        else:
            self.levels = _compact_levels(levels, self.dim)
        self.backend = _make_backend(backend, self.stored_dim, self.levels, self.adaptor_hash, backend_options)
        self.plan = plan or FunnelPlan.default(self.levels)
        self._write_lock = threading.RLock()
        self._closed = False

    # --- helpers -----------------------------------------------------------------------
    @property
    def stored_dim(self) -> int:
        """Dimension of the vectors the index keeps: ``dim``, or a compact index's prefix."""
        return self.levels[-1]

    @property
    def full(self) -> bool:
        """Whether the index keeps the full vectors (False: a compact index)."""
        return self.stored_dim == self.dim

    @property
    def adaptor_hash(self) -> str | None:
        return None if self.adaptor is None else self.adaptor.content_hash

    def _require_open(self) -> None:
        if self._closed:
            raise InvalidInput("this index was closed; open it again with MatryoshkaIndex.load (or create a new one)")

    def _adapt(self, vectors: Any, name: str) -> np.ndarray:
        """The vectors the backend stores or searches with: :meth:`_adapt_full`, cut to the
        stored prefix and re-normalised in a compact index."""
        z = self._adapt_full(vectors, name)
        return z if self.full else unit_prefix(z, self.stored_dim)

    def _adapt_full(self, vectors: Any, name: str) -> np.ndarray:
        """Checked, unit-length input (what the adaptor was trained on), then the adaptor, then
        unit length again: the one place vectors are normalised. Every backend receives unit
        vectors (and compares prefixes by cosine itself).

        Normalising first makes the index scale-free (cosine search), keeps a huge but finite
        vector from overflowing, and feeds the adaptor the unit vectors it was fitted to.
        """
        if self.adaptor is not None and self.adaptor.preserves_full_cosines:
            x = as_matrix(vectors, dim=self.dim, name=name)
            if float(np.abs(x).max()) < _SAFE_TO_ROTATE:  # a rotation keeps norms: normalise once, after it
                return unit_rows(self.adaptor.apply(x), name)
        x = unit_vectors(vectors, name, self.dim)
        if self.adaptor is None:
            return x
        z = self.adaptor.apply(x)
        if not np.isfinite(z).all():
            raise InvalidInput(f"the adaptor turned some {name} into NaN or inf")
        return unit_rows(z, f"adapted {name}")

    def adapt(self, vectors: Any) -> np.ndarray:
        """Raw embeddings → the unit-length adapted vectors the index stores and compares (a
        compact index's: the stored prefix)."""
        return self._adapt(vectors, "vectors")

    def check_adaptor(self, adaptor_hash: str | None) -> None:
        """Refuse vectors produced for another adaptor (compare content hashes)."""
        if adaptor_hash != self.adaptor_hash:
            raise AdaptorMismatchError(
                f"adaptor mismatch: the index uses {str(self.adaptor_hash)[:12]}, got {str(adaptor_hash)[:12]}")

    def __len__(self) -> int:
        self._require_open()
        return len(self.backend)

    def __repr__(self) -> str:
        n = "closed" if self._closed else f"n={len(self)}"
        compact = "" if self.full else ", compact"
        return (f"MatryoshkaIndex(dim={self.dim}, levels={self.levels}{compact}, "
                f"backend={type(self.backend).__name__}, {n}, adaptor={str(self.adaptor_hash)[:12]})")

    # --- writes ------------------------------------------------------------------------
    def _prepare(self, ids: Sequence[UserId], vectors: Any, metadata: Sequence[dict] | None):
        self._require_open()
        x = self._adapt(vectors, "vectors")
        ids, keys = keys_for(ids)
        check_count(ids, len(x))
        if metadata is None:
            metadata = [{} for _ in ids]
        if isinstance(metadata, dict):
            raise InvalidInput("metadata must be a list of dicts, one per vector; got a single dict")
        metadata = list(metadata)
        check_count(metadata, len(x), "metadata entries")
        metadata = [clean_metadata(m, f"entry {i}") for i, m in enumerate(metadata)]
        return ids, keys, x, metadata

    def _check_existing(self, ids: list[UserId], keys: np.ndarray, replace: bool) -> None:
        """The one check of stored ids before a write (called under the write lock): an add
        refuses any stored id, and no write may reuse a key that a different id holds."""
        for uid, stored in zip(ids, self.backend.stored_ids(ids, keys)):
            if stored is None:
                continue
            if stored != uid:
                raise InvalidInput(f"id {uid!r} collides with stored id {stored!r} (same 63-bit key); "
                                      "use another id")
            if not replace:
                raise InvalidInput(f"id {uid!r} is already in the index (use upsert to replace records)")

    def add(self, ids: Sequence[UserId], vectors: Any, metadata: Sequence[dict] | None = None) -> None:
        """Add new records. Existing ids are refused (see :meth:`upsert`); all or nothing."""
        ids, keys, x, metadata = self._prepare(ids, vectors, metadata)
        with self._write_lock:  # the check and the write are one step for other threads
            self._check_existing(ids, keys, replace=False)
            self.backend.add(ids, keys, x, metadata)

    def upsert(self, ids: Sequence[UserId], vectors: Any, metadata: Sequence[dict] | None = None) -> None:
        """Add records, replacing any with the same id; all or nothing."""
        ids, keys, x, metadata = self._prepare(ids, vectors, metadata)
        with self._write_lock:
            self._check_existing(ids, keys, replace=True)
            self.backend.add(ids, keys, x, metadata)

    def delete(self, ids: Sequence[UserId], missing_ok: bool = False) -> None:
        """Delete records by id. Unknown ids raise (nothing is deleted) unless ``missing_ok``."""
        self._require_open()
        ids, keys = keys_for(ids)
        with self._write_lock:
            present = np.array([s == i for i, s in zip(ids, self.backend.stored_ids(ids, keys))], bool)
            if not missing_ok and not present.all():
                raise InvalidInput(f"unknown id {ids[int(np.argmin(present))]!r}; nothing was deleted")
            if present.any():
                self.backend.delete([i for i, p in zip(ids, present) if p], keys[present])

    def optimize(self) -> None:
        """Finish deferred index builds (FAISS ``deferred_build``); a no-op where none is pending."""
        self._require_open()
        with self._write_lock:
            self.backend.optimize()

    def get(self, ids: Sequence[UserId]) -> list[Record | None]:
        """Stored records (adapted vector + metadata) in the given order; None for unknown ids."""
        self._require_open()
        ids, keys = keys_for(ids)
        return self.backend.get(ids, keys)

    @property
    def codes(self) -> str:
        """How the vectors that rank the final top k are held: "float32", "float16" or "int8"."""
        return getattr(self.backend, "options", {}).get("codes", "float32")

    def stats(self) -> IndexStats:
        """Records and bytes per vector in RAM and on disk, by part, from what the backend holds
        (:mod:`matry_index.stats`); ``stats().describe()`` says it in a sentence."""
        self._require_open()
        ram, disk, how = self.backend.stats_parts() if hasattr(self.backend, "stats_parts") else \
            (getattr(self.backend, "memory_bytes", dict)(), {}, "")
        return IndexStats(len(self.backend), self.dim, self.stored_dim, self.codes, self.backend.kind,
                          dict(ram), dict(disk), how)

    def explain(self, plan: FunnelPlan | None = None, k: int = 10) -> str:
        """The plan (default: the index's own) in words, and what the index stores."""
        plan = plan or self.plan
        text = plan.explain(self.levels, k)
        if not self.full:
            text += (f". This is a compact index: it stores the {self.stored_dim}-d prefix of the "
                     f"{self.dim}-d vectors as {self.codes}, and its rankings are that prefix's")
        return text

    def scan(self, filter: dict | None = None) -> list[tuple[UserId, dict]]:
        """(id, metadata) of every record matching ``filter`` (all records without one).

        For bookkeeping — deleting by metadata, listing a document's chunks — not for ranking.
        """
        self._require_open()
        return self.backend.scan(parse_filter(filter))

    # --- search ------------------------------------------------------------------------
    def search(self, queries: Any, k: int = 10, filter: dict | None = None,
               plan: FunnelPlan | None = None, exact: bool = False,
               adaptor_hash: str | None = "unchecked") -> list[Hit] | list[list[Hit]]:
        """Top-``k`` records for one query (1-d input → list of hits) or a batch (2-d → list of lists).

        ``filter`` is a metadata filter (see :mod:`matry_index.filters`); ``plan`` overrides the
        index's funnel; ``exact`` (or a plan with ``exact=True``) searches the full dimension
        exhaustively (a compact index refuses ``exact``: it has no full vectors; a plan with
        ``exact=True`` scans what it stores). Pass ``adaptor_hash`` to have queries refused
        when they were meant for another adaptor.
        """
        q, single, k, chosen, node = self._search_request(queries, k, filter, plan, exact, adaptor_hash)
        hits = run_search(self.backend, q, k, chosen, node)
        return hits[0] if single else hits

    async def asearch(self, queries: Any, k: int = 10, filter: dict | None = None,
                      plan: FunnelPlan | None = None, exact: bool = False,
                      adaptor_hash: str | None = "unchecked") -> list[Hit] | list[list[Hit]]:
        """:meth:`search` for an event loop: awaits the Qdrant server's async client where the
        index has one, and runs an in-process engine's search in a worker thread otherwise,
        so the loop is never blocked (:func:`~matry_index.backends.base.search_async`)."""
        q, single, k, chosen, node = self._search_request(queries, k, filter, plan, exact, adaptor_hash)
        hits = await search_async(self.backend, q, k, chosen, node)
        return hits[0] if single else hits

    def _search_request(self, queries: Any, k: int, filter: dict | None, plan: FunnelPlan | None,
                        exact: bool, adaptor_hash: str | None):
        """What both search methods hand the backend: adapted queries as a batch, whether one
        query came in, ``k``, the plan (None: exact search) and the parsed filter."""
        self._require_open()
        if adaptor_hash != "unchecked":
            self.check_adaptor(adaptor_hash)
        if exact and not self.full:
            raise InvalidInput(
                f"this index is compact: it keeps the {self.stored_dim}-d prefix, not the {self.dim}-d vectors that "
                f"exact=True ranks by. Its exhaustive ranking of what it stores is "
                f"search(..., plan=FunnelPlan.exhaustive(index.levels, len(index))); for the full-dimension "
                f"ranking, build an index with full=True")
        k = _positive_k(k)
        arr = real_array(queries, "queries")
        single = arr.ndim == 1
        q = self._adapt(arr[None, :] if single else arr, "queries")
        node = parse_filter(filter)
        plan = plan or self.plan
        return q, single, int(k), None if exact or plan.exact else plan, node

    def tune(self, sample_queries: Any, target_recall: float = 0.99, k: int = 10,
             apply: bool = True, confidence: float = 0.95, timed: bool = True) -> FunnelPlan:
        """The funnel plan that promises ``target_recall`` recall@k (against exact search) on
        new queries, and is the fastest such plan on this machine (:mod:`matry_index.tuning`).

        A plan must clear the target by a margin from the sample's own spread, on each half of
        the sample, so that a fresh sample as large as this one reaches the target with
        probability ``confidence``; among the cheapest few that do, each is timed (``timed``) and
        the fastest kept. Use queries that resemble real traffic (held-out ones, or a query
        log), several hundred of them: too few to promise the target is warned about. With
        ``apply`` the plan becomes the index's default; ``plan.explain()`` states the promise.
        """
        self._require_open()
        k = _positive_k(k)
        q = self._adapt(sample_queries, "sample_queries")
        if len(self) == 0:
            raise InvalidInput("cannot tune an empty index")
        key_of: dict = {}

        def keys(hit_lists: list[list[Hit]]) -> np.ndarray:
            out = np.full((len(hit_lists), k), -1, np.int64)
            for i, hits in enumerate(hit_lists):
                for j, h in enumerate(hits[:k]):
                    out[i, j] = key_of.setdefault(h.id, len(key_of))
            return out
        truth = keys(self.backend.exact_search(q, k))

        def run(plan: FunnelPlan, rows: np.ndarray | None = None) -> np.ndarray:
            chosen = q if rows is None else np.ascontiguousarray(q[rows])
            return keys(run_search(self.backend, chosen, k, None if plan.exact else plan))
        plan = tune_plan(run, truth,
                         self.levels, k, len(self), target_recall, self.backend.coarse_cost(),
                         timer=self._timer(q, k) if timed else None, confidence=confidence)
        if apply:
            self.plan = plan
        return plan

    def _timer(self, queries: np.ndarray, k: int, sample: int = 48):
        """Seconds one query takes under a plan here: the median over ``sample`` of the tuning
        queries, searched one at a time as traffic is (each query's best of two runs)."""
        rows = queries[:: max(1, len(queries) // sample)][:sample]

        def seconds(plan: FunnelPlan) -> float:
            chosen = None if plan.exact else plan
            times = []
            for q in rows:
                best = float("inf")
                for _ in range(2):
                    start = time.perf_counter()
                    run_search(self.backend, q[None, :], k, chosen)
                    best = min(best, time.perf_counter() - start)
                times.append(best)
            return float(np.median(times))
        return seconds

    # --- persistence -------------------------------------------------------------------
    def _refuse_own_storage(self, directory: Path) -> None:
        """A save replaces ``directory`` whole: it must neither hold nor sit inside the files
        the engine keeps itself (an Edge shard, a local-mode folder)."""
        target = directory.resolve()
        for store in self.backend.storage_paths():
            store = store.resolve()
            if store == target or target in store.parents or store in target.parents:
                raise InvalidInput(f"cannot save the index to {directory}: the backend keeps its own "
                                      f"files at {store}, which a save there would replace or nest in; "
                                      "save the index to a directory of its own")

    def save(self, directory: str | Path) -> Path:
        """Write the index atomically to ``directory``.

        An earlier save of an index there is replaced; a directory holding anything else, a
        file, or the backend's own storage is refused and left untouched.
        """
        self._require_open()
        directory = Path(directory)
        self._refuse_own_storage(directory)
        with self._write_lock, atomic_directory(directory, is_saved_index, "index") as tmp:
            (tmp / "backend").mkdir()
            options = self.backend.save(tmp / "backend")
            if self.adaptor is not None:
                self.adaptor.save(tmp / "adaptor")
            manifest = {"format_version": FORMAT_VERSION, "kind": "matry-index", "dim": self.dim,
                        "levels": list(self.levels), "full": self.full, "backend": self.backend.kind,
                        "backend_options": options, "plan": self.plan.to_dict(), "count": len(self),
                        "adaptor_hash": self.adaptor_hash, "files": _checksums(tmp)}
            manifest = json.loads(json.dumps(manifest, default=str))
            manifest["manifest_sha256"] = _manifest_digest(manifest)
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
        return directory

    @staticmethod
    def _read_manifest(directory: Path) -> dict:
        manifest_path = directory / MANIFEST
        if not manifest_path.is_file():
            raise InvalidInput(f"{directory} is not a saved matry_index index (no {MANIFEST}): give the folder "
                               "that MatryoshkaIndex.save or `matry-index build --out` wrote (an interrupted "
                               "save leaves none); a Qdrant Edge shard or local-mode folder itself is opened "
                               "with MatryoshkaIndex(dim, backend=..., path=...)")
        if manifest_path.is_symlink():
            raise Corrupt(f"{manifest_path} is a symbolic link; a saved index holds plain files only")
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise Corrupt(f"{manifest_path} is corrupt: {exc}") from None
        if not isinstance(manifest, dict) or manifest.get("kind") != "matry-index" \
                or manifest.get("format_version") != FORMAT_VERSION:
            version = manifest.get("format_version") if isinstance(manifest, dict) else None
            raise Corrupt(f"{directory}: unsupported index format {version!r}")
        if manifest.get("manifest_sha256") != _manifest_digest(manifest):
            raise Corrupt(f"{manifest_path} is corrupt or was edited: its content does not match "
                          "its recorded checksum")
        actual = _checksums(directory)
        expected = manifest.get("files", {})
        if actual != expected:
            bad = sorted(set(actual.items()) ^ set(expected.items()))
            raise Corrupt(f"{directory} is corrupt or incomplete: {bad[0][0]} does not match "
                          "its recorded checksum (or is missing)")
        return manifest

    @classmethod
    def load(cls, directory: str | Path, adaptor: MatryoshkaAdaptor | None = None,
             **connection: Any) -> "MatryoshkaIndex":
        """Open a saved index. Passing ``adaptor`` checks it is the one the index was built with.

        ``connection`` overrides what the save recorded about engines that keep their own
        data: ``path=`` for a moved Edge shard or local-mode folder, ``url=`` / ``api_key=`` /
        ``client=`` for a Qdrant server, ``scratch_dir=`` for a memory-mapped FAISS index. A
        saved file never chooses where to connect, where to write or what to spend: which of
        its fields are used, and how, is listed in docs/guarantees.md. A store that is not the
        one the index was saved with, or whose records disagree with the save, is refused.
        """
        directory = Path(directory)
        recover_directory(directory, is_saved_index)
        manifest = cls._read_manifest(directory)
        stored = MatryoshkaAdaptor.load(directory / "adaptor") if (directory / "adaptor").exists() else None
        if (stored.content_hash if stored else None) != manifest.get("adaptor_hash"):
            raise Corrupt(f"{directory}: the stored adaptor does not match the manifest")
        if adaptor is not None and (stored is None or adaptor.content_hash != stored.content_hash):
            raise AdaptorMismatchError(
                f"adaptor mismatch: {directory} was built with {str(manifest.get('adaptor_hash'))[:12]}, "
                f"got {adaptor.content_hash[:12]}")
        try:
            dim, levels = int(manifest["dim"]), tuple(int(m) for m in manifest["levels"])
            plan, count = FunnelPlan.from_dict(manifest["plan"]), int(manifest["count"])
            kind, options = manifest["backend"], manifest["backend_options"]
            full = manifest.get("full", True)  # saves made before compact indexes were all full
            if not isinstance(full, bool):
                raise ValueError(f"full must be true or false, not {full!r}")
        except (KeyError, TypeError, ValueError, InvalidInput) as exc:
            raise Corrupt(f"{directory}: the manifest is incomplete or invalid: {exc}") from None
        if stored is not None and stored.dim != dim:
            raise Corrupt(f"{directory}: the adaptor is {stored.dim}-d, the manifest says {dim}-d")
        valid = levels and (levels == clip_levels(levels, dim) if full
                            else levels[-1] < dim and levels == clip_levels(levels, levels[-1]))
        if dim <= 0 or not valid:
            raise Corrupt(f"{directory}: levels {levels} are not valid for a {'full' if full else 'compact'} "
                          f"index of {dim}-d vectors")
        from . import backends
        backend = backends.open_saved(kind, directory / "backend", levels[-1], levels, options,
                                      manifest.get("adaptor_hash"), connection)
        try:
            _check_store_count(backend, count, directory)
        except BaseException:
            backend.close()
            raise
        index = cls.__new__(cls)
        index.dim, index.adaptor, index.levels = dim, stored, levels
        index.backend, index.plan = backend, plan
        index._write_lock = threading.RLock()
        index._closed = False
        return index

    def close(self) -> None:
        """Release the backend (an Edge shard, a client). The index refuses every call after it."""
        self._closed = True
        self.backend.close()

    async def aclose(self) -> None:
        """:meth:`close`, and first the backend's async client where it opened one."""
        if self._closed:
            return
        closing = getattr(self.backend, "aclose", None)
        if closing is not None:
            await closing()
        self.close()

    def __enter__(self) -> "MatryoshkaIndex":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
