"""What an index holds: records, and bytes per vector in RAM and on disk, by part.

``MatryoshkaIndex.stats()`` answers the question a user sizing a deployment asks — what does a
vector cost me here? — from what the backend holds, not from a formula of the options:

* FAISS: the arrays and the FAISS index it keeps (the vectors or their codes, the prefix norms,
  keys and flags, the key map, the coarse index) and the Python objects of ids and metadata;
  on disk, the memory-mapped vector file where the vectors live in one.
* Qdrant (Edge, local mode on disk): on disk, the blocks the engine's files occupy (its files
  are preallocated in 32 MiB chunks, so a small collection looks expensive); in RAM, what its
  layout keeps resident — the codes it pins, the vectors it caches and the coarse graph's
  links — estimated from the layout, as Qdrant reports no memory use of its own.
"""
from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class IndexStats:
    """Sizes of one index. ``ram`` and ``disk`` are bytes by part; ``how`` says how each was
    found (measured from held structures, or estimated from a layout)."""

    records: int
    dim: int
    stored_dim: int
    codes: str
    backend: str
    ram: dict[str, int] = field(default_factory=dict)
    disk: dict[str, int] = field(default_factory=dict)
    how: str = ""

    @property
    def full(self) -> bool:
        return self.stored_dim == self.dim

    @property
    def ram_bytes(self) -> int:
        return sum(self.ram.values())

    @property
    def disk_bytes(self) -> int:
        return sum(self.disk.values())

    def per_vector(self, nbytes: int) -> float:
        return nbytes / self.records if self.records else 0.0

    @property
    def ram_per_vector(self) -> float:
        return self.per_vector(self.ram_bytes)

    @property
    def disk_per_vector(self) -> float:
        return self.per_vector(self.disk_bytes)

    def describe(self) -> str:
        """One paragraph for a person: what is stored and what each vector costs."""
        kept = (f"full {self.dim}-d vectors" if self.full
                else f"a compact index: the {self.stored_dim}-d prefix of {self.dim}-d vectors")
        parts = ", ".join(f"{k} {v / max(1, self.records):.0f}" for k, v in self.ram.items() if v)
        text = (f"{self.records:,} records on {self.backend}, {kept} as {self.codes}; "
                f"{self.ram_per_vector:.0f} B/vector in RAM ({parts or 'not known'})")
        if self.disk:
            text += f", {self.disk_per_vector:.0f} B/vector on disk"
        return text + (f". {self.how}" if self.how else "")

    def to_dict(self) -> dict:
        return {"records": self.records, "dim": self.dim, "stored_dim": self.stored_dim, "full": self.full,
                "codes": self.codes, "backend": self.backend, "ram": dict(self.ram), "disk": dict(self.disk),
                "ram_bytes_per_vector": self.ram_per_vector, "disk_bytes_per_vector": self.disk_per_vector,
                "how": self.how}


def allocated_bytes(paths: Iterable[Path]) -> int:
    """Bytes the files under ``paths`` occupy on disk (allocated blocks: sparse and
    preallocated files count for what they use), without following links."""
    total = 0
    for path in paths:
        path = Path(path)
        if path.is_file() and not path.is_symlink():
            total += path.lstat().st_blocks * 512
            continue
        for root, _dirs, files in os.walk(path):
            for name in files:
                try:
                    total += os.lstat(os.path.join(root, name)).st_blocks * 512
                except OSError:
                    continue  # a file the engine removed while we walked
    return total
