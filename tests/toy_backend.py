"""A toy backend: every record in a numpy matrix, every search an exact scan.

It exists to show what a new engine takes: this one module and one registry line
(``register_backend`` in ``tests/test_conformance.py``); with them it passes the same
conformance suite as the engines matry_index ships.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from matry_index.backends import BackendBase, Hit, Record, SavedBackend
from matry_index.backends.records import read_records, write_records
from matry_index.filters import Node, matches
from matry_index.funnel import CoarseCost, FunnelPlan


class ToyBackend(BackendBase):
    kind = "toy"

    def __init__(self, dim: int, levels: tuple[int, ...], *, adaptor_hash: str | None = None):
        self.dim, self.levels = int(dim), tuple(levels)
        self.records: dict[Any, tuple[np.ndarray, dict]] = {}

    def __len__(self) -> int:
        return len(self.records)

    def add(self, ids, keys, vectors, metadata) -> None:
        for uid, vector, meta in zip(ids, vectors, metadata):
            self.records[uid] = (np.array(vector, np.float32), dict(meta))

    def delete(self, ids, keys) -> None:
        for uid in ids:
            del self.records[uid]

    def stored_ids(self, ids, keys) -> list:
        return [uid if uid in self.records else None for uid in ids]

    def get(self, ids, keys) -> list[Record | None]:
        return [Record(uid, self.records[uid][0].copy(), dict(self.records[uid][1])) if uid in self.records else None
                for uid in ids]

    def scan(self, filter: Node | None = None) -> list[tuple[Any, dict]]:
        return [(uid, dict(meta)) for uid, (_, meta) in self.records.items() if filter is None or matches(filter, meta)]

    def exact_search(self, queries: np.ndarray, k: int, filter: Node | None = None) -> list[list[Hit]]:
        keep = [(uid, v, m) for uid, (v, m) in self.records.items() if filter is None or matches(filter, m)]
        if not keep:
            return [[] for _ in queries]
        scores = queries @ np.stack([v for _, v, _ in keep]).T
        out = []
        for row in scores:
            order = np.argsort(-row, kind="stable")[:k]
            out.append([Hit(keep[i][0], float(row[i]), dict(keep[i][2])) for i in order])
        return out

    def search(self, queries: np.ndarray, k: int, plan: FunnelPlan, filter: Node | None = None) -> list[list[Hit]]:
        return self.exact_search(queries, k, filter)  # every plan is an exact scan here

    def coarse_cost(self) -> CoarseCost:
        return CoarseCost("flat")

    def save(self, directory: Path) -> dict[str, Any]:
        vectors = np.stack([v for v, _ in self.records.values()]) if self.records else np.empty((0, self.dim), np.float32)
        write_records(directory, list(self.records), [m for _, m in self.records.values()], vectors)
        return {}

    @classmethod
    def open(cls, saved: SavedBackend) -> "ToyBackend":
        backend = cls(saved.dim, saved.levels)
        ids, metadata, vectors = read_records(saved.directory, saved.dim)
        backend.add(ids, None, vectors, metadata)
        return backend
