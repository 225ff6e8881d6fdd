"""What the two Qdrant backends share above six engine primitives: the backend protocol,
writes that land whole or not at all (with an undo journal on local disk), scans and searches.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..._fs import atomic_write_text
from ...errors import Corrupt, InvalidInput, StorageError, Unavailable
from ...filters import Node
from ...funnel import RANDOM_READ_COST, CoarseCost, FunnelPlan
from ...ids import UserId
from ..base import BackendBase, Hit, Record
from .filters import Vocabulary, compile_filter
from .requests import UNBOUNDED, exact_requests, funnel_requests
from .schema import Layout, check_same_store, level_vectors, payload_for, point_id, split_payload


@dataclass
class StoredPoint:
    """One point as the primitives return it: its id as a string, payload, full vector."""

    pid: str
    payload: dict
    full: np.ndarray | None = None


SCROLL_PAGE = 1024  # points per scroll request when listing a collection


def stored_points(points: list, with_vectors: bool) -> list[StoredPoint]:
    """Points as either engine returns them (``.id``, ``.payload``, ``.vector["full"]``)."""
    return [StoredPoint(str(p.id), p.payload or {},
                        np.asarray(p.vector["full"], np.float32) if with_vectors else None) for p in points]


class QdrantStore(BackendBase):
    """Everything the two Qdrant backends share above six engine primitives.

    A subclass sets ``vocab``, ``levels``, ``names``, ``options``, ``where``,
    ``batch_size``, ``_lock`` (writes) and ``_read_lock`` (reads; the same lock where the
    engine is not thread-safe), and implements ``_fetch``, ``_upsert_batch``,
    ``_delete_points``, ``_count``, ``_scroll_page`` and ``_query``. Writes are all or
    nothing: a failure in any batch undoes the batches before it (new points deleted,
    replaced ones restored), and if the undo fails too the error says so instead of hiding it.
    """

    vocab: Vocabulary
    dim: int
    levels: tuple[int, ...]
    names: list[str]
    layout: Layout
    options: dict
    where: str
    batch_size: int
    _lock: Any
    _read_lock: Any
    keep_exact_floats = False  # see payload_for
    keeps_own_data = True      # the collection or shard outlives the process (an in-memory one overrides)
    store_id: str | None = None  # read from, or written to, the store's metadata when it opens

    @classmethod
    def level_policy(cls, levels: tuple[int, ...]) -> tuple[int, ...]:
        """One prefix, the coarse one (:data:`~matry_index.backends.base.COARSE_LEVEL`): in Qdrant
        every named vector is stored and a middle level's prefetch stage costs more than it
        saves, and an HNSW walk on int8 codes of a 128-d prefix beats one on 64-d, which needs
        twice the candidates (benchmarks/results/qdrant_layouts.md)."""
        return BackendBase.level_policy(levels)[:1]

    # --- primitives -------------------------------------------------------------------
    def _fetch(self, pids: list, with_vectors: bool) -> list[StoredPoint]:
        raise NotImplementedError

    def _upsert_batch(self, pids: list, per_level: dict[str, np.ndarray], payloads: list[dict]) -> None:
        raise NotImplementedError

    def _delete_points(self, pids: list) -> None:
        raise NotImplementedError

    def _count(self) -> int:
        raise NotImplementedError

    def _scroll_page(self, flt: Any, offset: Any) -> tuple[list[dict], Any]:
        raise NotImplementedError

    def _query(self, requests: list) -> list[list[Hit]]:
        raise NotImplementedError

    def _create_payload_index(self, field: str, kind: str) -> None:
        raise NotImplementedError

    def _index_payload(self, indexes: dict[str, str]) -> None:
        """Create the payload indexes asked for (Qdrant keeps one it already has): with them a
        filtered search estimates how many points match and walks the graph or scans the
        matches accordingly, instead of reading every visited point's payload from disk."""
        for field, kind in indexes.items():
            self._create_payload_index(field, kind)

    def _check_space(self, n_points: int, payload_bytes: int) -> None:
        """Refuse a write the disk cannot hold (engines on local disk override it)."""

    def confirm_store(self, saved_id: str | None) -> "QdrantStore":
        """This store, once it proves to be the one a save was made with (else closed and refused)."""
        try:
            check_same_store(self.store_id, saved_id, self.where)
        except InvalidInput:
            self.close()
            raise
        return self

    # --- the protocol -----------------------------------------------------------------
    def __len__(self) -> int:
        with self._read_lock:
            return self._count()

    def stored_ids(self, ids: list[UserId], keys: np.ndarray) -> list[UserId | None]:
        with self._read_lock:
            found = {p.pid: split_payload(p.payload)[0] for p in self._fetch([point_id(i) for i in ids],
                                                                             with_vectors=False)}
        return [found.get(str(point_id(i))) for i in ids]

    def get(self, ids: list[UserId], keys: np.ndarray) -> list[Record | None]:
        with self._read_lock:
            found = {p.pid: p for p in self._fetch([point_id(i) for i in ids], with_vectors=True)}
        out: list[Record | None] = []
        for i in ids:
            p = found.get(str(point_id(i)))
            if p is None:
                out.append(None)
            else:
                uid, meta = split_payload(p.payload)
                out.append(Record(uid, p.full, meta))
        return out

    def add(self, ids: list[UserId], keys: np.ndarray, vectors: np.ndarray, metadata: list[dict]) -> None:
        from tqdm.auto import tqdm
        payloads = [payload_for(i, m, self.keep_exact_floats) for i, m in zip(ids, metadata)]
        pids = [point_id(i) for i in ids]
        with self._lock:
            before = {p.pid: p for p in self._fetch(pids, with_vectors=True)}
            self._check_space(len(pids), sum(len(json.dumps(p)) for p in payloads))
            per_level = level_vectors(vectors, self.levels)
            batches = range(0, len(pids), self.batch_size)
            with self._undoable(pids, before):
                for s in tqdm(batches, desc=f"writing to {self.where}", disable=len(batches) < 4, leave=False):
                    e = s + self.batch_size
                    self._upsert_batch(pids[s:e], {n: v[s:e] for n, v in per_level.items()}, payloads[s:e])

    def delete(self, ids: list[UserId], keys: np.ndarray) -> None:
        pids = [point_id(i) for i in ids]
        with self._lock:
            self._check_space(0, 0)
            before = {p.pid: p for p in self._fetch(pids, with_vectors=True)}
            with self._undoable([], before):
                self._delete_points(pids)

    # --- all or nothing ---------------------------------------------------------------
    def _journal_path(self) -> Path | None:
        """Where an engine on local disk keeps the undo journal of the write in progress
        (None where the store is in memory or on a server)."""
        return None

    @contextmanager
    def _undoable(self, pids: list, before: dict[str, StoredPoint]) -> Iterator[None]:
        """Run a write so that it lands whole or not at all.

        In-process failures are undone at once. Where the store is on local disk, what the
        undo needs (the ids the write creates, the points it replaces or deletes) is first
        written to a journal and fsynced, and removed once the write is complete: a process
        killed in the middle leaves the journal, and the next open undoes the partial write.
        """
        journal = self._journal_path()
        created = [p for p in pids if str(p) not in before]
        if journal is not None:
            atomic_write_text(journal, json.dumps({
                "created": created,
                "before": [{"pid": p.pid, "payload": p.payload, "full": p.full.tolist()} for p in before.values()]}))
        try:
            yield
        except BaseException as exc:
            self._undo(created, list(before.values()), exc)
            raise
        if journal is not None:
            journal.unlink(missing_ok=True)

    def _undo(self, created: list, before: list[StoredPoint], exc: BaseException | None) -> None:
        """Put the store back as it was before a failed write: delete the points the write
        created, restore the ones it replaced or deleted. A failure here is reported, never
        swallowed (and where there is a journal it stays, so the next open retries)."""
        try:
            if created:
                self._delete_points(created)
            if before:
                full = np.stack([np.asarray(p.full, np.float32) for p in before])
                self._upsert_batch([_as_pid(p.pid) for p in before], level_vectors(full, self.levels),
                                   [p.payload for p in before])
        except Exception as undo_exc:
            kind = Unavailable if isinstance(undo_exc, Unavailable) else StorageError
            raise kind(
                f"{self.where}: a write failed ({exc!r}) and undoing it failed too ({undo_exc!r}): part of "
                "that write may be stored; reopen the index once the store is healthy (a journal on local "
                "disk is replayed then) or repeat the same write to finish it") from exc
        journal = self._journal_path()
        if journal is not None:
            journal.unlink(missing_ok=True)

    def _replay_journal(self) -> None:
        """Undo a write that a killed process left half done (called when the store opens)."""
        journal = self._journal_path()
        if journal is None or not journal.exists():
            return
        try:
            entry = json.loads(journal.read_text())
            created = list(entry["created"])
            before = [StoredPoint(str(p["pid"]), dict(p["payload"]), np.asarray(p["full"], np.float32))
                      for p in entry["before"]]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise Corrupt(f"{self.where}: the journal of an interrupted write ({journal}) cannot be "
                                  f"read ({exc}); the store may hold part of that write") from None
        if any(p.full.shape != (self.dim,) for p in before):
            raise Corrupt(f"{self.where}: the journal {journal} does not match this store's dimension")
        self._undo(created, before, None)

    def scan(self, filter: Node | None = None) -> list[tuple[UserId, dict]]:
        flt, out, offset = compile_filter(filter, self.vocab), [], None
        with self._read_lock:
            while True:
                payloads, offset = self._scroll_page(flt, offset)
                out.extend(split_payload(p) for p in payloads)
                if offset is None or not payloads:
                    return out

    def stats_parts(self) -> tuple[dict[str, int], dict[str, int], str]:
        """RAM estimated from the layout (Qdrant reports no memory use of its own); disk, the
        blocks its files occupy where it keeps them here (none for a collection in memory or
        on a server)."""
        n = len(self)
        per_vector = self.layout.ram_bytes_per_vector(self.levels, self.options["hnsw_m"])
        ram = {part: int(round(b * n)) for part, b in per_vector.items()}
        _, disk, _ = super().stats_parts()
        return ram, disk, ("RAM estimated from the layout (pinned codes, cached vectors, the coarse graph's "
                           "links); Qdrant reports no memory use")

    def coarse_cost(self) -> CoarseCost:
        """Qdrant walks an HNSW graph on the coarse level (brute force below its full-scan
        threshold, which the cost order does not need to model); each candidate a later stage
        rescores is fetched by id from vector storage, which on Edge took about as long as a
        node of the walk (0.6 µs each at 100k, warm)."""
        m = int(self.options["hnsw_m"])
        return CoarseCost(self.layout.code, m, candidate_read=m * (self.levels[0] + RANDOM_READ_COST))

    def search(self, queries: np.ndarray, k: int, plan: FunnelPlan,
               filter: Node | None = None) -> list[list[Hit]]:
        requests = self._requests(queries, k, plan, filter)
        with self._read_lock:
            return self._query(requests)

    def exact_search(self, queries: np.ndarray, k: int, filter: Node | None = None) -> list[list[Hit]]:
        requests = self._requests(queries, k, None, filter)
        with self._read_lock:
            return self._query(requests)

    def _requests(self, queries: np.ndarray, k: int, plan: FunnelPlan | None, filter: Node | None) -> list:
        """One query request per row: the funnel as nested prefetches, or (``plan`` None) an
        exact full-dimension search."""
        flt = compile_filter(filter, self.vocab)
        if plan is None:
            return exact_requests(queries, self.levels, k, flt, self.vocab)
        # no count() round trip per search: Qdrant returns fewer points when a limit exceeds
        # the collection, so the plan needs no clipping to its size
        return funnel_requests(queries, self.levels, plan, k, UNBOUNDED, flt, self.vocab)


def _as_pid(text: str) -> int | str:
    """A point id back from its string form (ints were stored as ints)."""
    return int(text) if text.isdigit() else text
