"""The one small protocol every storage engine implements, and the types it speaks.

The index does everything engine-independent (validation, the adaptor, user ids → keys,
persistence of the manifest) and hands a backend only clean inputs: adapted float32 vectors
of the right dimension, unique user ids with their int64 keys (each backend addresses records
by whichever suits its engine), metadata dicts. A backend stores every prefix
level and runs the funnel plan its own way: FAISS over one stored matrix, Qdrant as
nested prefetches of named vectors.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ..filters import Node
from ..funnel import CoarseCost, FunnelPlan
from ..ids import UserId


@dataclass(slots=True)  # slots: one query builds k of these, and a slotted one is cheaper to make
class Hit:
    """One search result: the user's id, the full-dimension cosine, the stored metadata."""

    id: UserId
    score: float
    metadata: dict = field(default_factory=dict)


@dataclass
class Record:
    """One stored item as :meth:`Backend.get` returns it (``vector``: the adapted vector, L2-normalised)."""

    id: UserId
    vector: np.ndarray
    metadata: dict = field(default_factory=dict)


@dataclass(frozen=True)
class SavedBackend:
    """What reopening a saved backend starts from: the folder its :meth:`Backend.save` wrote,
    what the index manifest records (dimension, levels, the backend's options, the adaptor's
    hash), and what the caller passes to override the saved options (``connection``: a moved
    shard's ``path``, a server's ``url`` / ``api_key`` / ``client``)."""

    directory: Path
    dim: int
    levels: tuple[int, ...]
    options: dict[str, Any]
    adaptor_hash: str | None = None
    connection: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Backend(Protocol):
    """Storage + funnel search over several prefix levels of adapted vectors."""

    kind: str
    where: str  # a human name of where the data lives ("in process", a path, a URL)
    dim: int
    levels: tuple[int, ...]
    #: whether the records live in a store of the engine's own that outlives the process (an Edge
    #: shard, a local-mode folder, a server) rather than in memory and in the index's save
    keeps_own_data: bool
    #: the random id such a store carries (None for the others, and for stores made before ids)
    store_id: str | None

    @classmethod
    def open(cls, saved: SavedBackend) -> "Backend":
        """Reopen what :meth:`save` wrote into ``saved.directory`` (and, for engines that keep
        their own data, the store it names). Never creates an empty store in place of a missing one."""

    def add(self, ids: list[UserId], keys: np.ndarray, vectors: np.ndarray, metadata: list[dict]) -> None:
        """Store records, replacing any stored under the same keys; all or nothing. The index
        has already checked the ids against :meth:`stored_ids` (no backend checks again)."""

    def delete(self, ids: list[UserId], keys: np.ndarray) -> None:
        """Remove stored records (the index has checked that they exist)."""

    def stored_ids(self, ids: list[UserId], keys: np.ndarray) -> list[UserId | None]:
        """The user id stored under each record's address (None where nothing is): the id
        itself, or — where an engine addresses records by a hash of the id — whichever id
        holds that hash."""

    def get(self, ids: list[UserId], keys: np.ndarray) -> list[Record | None]:
        """Stored records in the given order (None where absent)."""

    def search(self, queries: np.ndarray, k: int, plan: FunnelPlan,
               filter: Node | None = None) -> list[list[Hit]]:
        """Top-``k`` hits per query through the funnel ``plan``."""

    def exact_search(self, queries: np.ndarray, k: int, filter: Node | None = None) -> list[list[Hit]]:
        """Exact full-dimension top-``k`` (the reference for recall and tuning)."""

    def scan(self, filter: Node | None = None) -> list[tuple[UserId, dict]]:
        """(id, metadata) of every stored record that matches ``filter``, in no set order."""

    def optimize(self) -> None:
        """Finish deferred builds (FAISS ``deferred_build``, Edge's HNSW graph)."""

    def storage_paths(self) -> list[Path]:
        """Local paths where the engine keeps its own files (an index save must never touch them)."""

    def coarse_cost(self) -> CoarseCost:
        """How the approximate stage's cost grows with a plan (used to rank plans in tuning)."""

    def __len__(self) -> int: ...

    def save(self, directory: Path) -> dict[str, Any]:
        """Write what the backend needs to reopen into ``directory``; return its options."""

    def close(self) -> None: ...


def run_search(backend: Backend, queries: np.ndarray, k: int, plan: FunnelPlan | None,
               filter: Node | None = None) -> list[list[Hit]]:
    """The backend's funnel search under ``plan``, or its exact search where ``plan`` is None."""
    if plan is None:
        return backend.exact_search(queries, k, filter)
    return backend.search(queries, k, plan, filter)


async def search_async(backend: Backend, queries: np.ndarray, k: int, plan: FunnelPlan | None,
                       filter: Node | None = None) -> list[list[Hit]]:
    """:func:`run_search` without blocking the event loop: the backend's own ``asearch``
    (a worker thread unless it has a native async client; see :class:`BackendBase`)."""
    return await backend.asearch(queries, k, plan, filter)


#: the prefix an index starts its funnel at when the levels come from an adaptor (the shortest
#: level from here up): a 32-d prefix needs thousands of candidates for recall 0.99 even on a
#: few thousand documents (benchmarks/results/funnel_need.md), and at a million vectors an
#: IVF scan of 8-bit codes of the 128-d prefix beat one of the 64-d prefix, which needed three
#: times the candidates (benchmarks/results/peers.md); ``matry-index advise`` measures it on
#: your data
COARSE_LEVEL = 128


class BackendBase:
    """What a backend gets for free: the protocol's optional parts, as defaults.

    Subclass it, set ``kind``, implement the required methods of :class:`Backend`, and add one
    line to the registry (:func:`matry_index.backends.register_backend`); the conformance suite
    (:mod:`matry_index.testing`) then says whether it keeps the contract.
    """

    kind = "custom"
    where = "in process"
    keeps_own_data = False
    store_id: str | None = None

    @classmethod
    def level_policy(cls, levels: tuple[int, ...]) -> tuple[int, ...]:
        """The prefix levels an index keeps of an adaptor's (the full dimension is added by the
        index): those from :data:`COARSE_LEVEL` up — the shortest of them is the coarse one, the
        others middle stages the tuner uses where they pay — or the longest when none is that
        long. An engine where every stored level costs storage and a search stage keeps fewer."""
        return tuple(m for m in levels if m >= COARSE_LEVEL) or tuple(levels)[-1:]

    async def asearch(self, queries: np.ndarray, k: int, plan: FunnelPlan | None,
                      filter: Node | None = None) -> list[list[Hit]]:
        """:func:`run_search` in a worker thread: in-process engines compute on the CPU (and
        release the GIL in their kernels), so a thread is what keeps an event loop free."""
        return await asyncio.to_thread(run_search, self, queries, k, plan, filter)

    async def aclose(self) -> None:
        """Release async resources (none by default)."""

    def optimize(self) -> None:
        """Finish deferred builds (nothing by default)."""

    def storage_paths(self) -> list[Path]:
        """Local paths where the engine keeps its own files (none by default)."""
        return []

    def memory_bytes(self) -> dict[str, int]:
        """Bytes held in RAM for the records, by part (unknown by default: an empty dict)."""
        return {}

    def stats_parts(self) -> tuple[dict[str, int], dict[str, int], str]:
        """(RAM bytes by part, disk bytes by part, how they were found) for
        :meth:`MatryoshkaIndex.stats`: by default :meth:`memory_bytes` and the blocks the
        files under :meth:`storage_paths` occupy."""
        from ..stats import allocated_bytes
        paths = self.storage_paths()
        return self.memory_bytes(), ({"files": allocated_bytes(paths)} if paths else {}), ""

    def close(self) -> None:
        """Release the engine (nothing by default)."""
