"""Helpers shared by the test modules: one factory of empty indexes per backend kind."""
from __future__ import annotations

import re
from pathlib import Path

from matry_index import MatryoshkaIndex

BACKENDS = ["faiss", "qdrant", "qdrant-edge"]
#: FAISS with its full vectors in a memory-mapped file (``vector_storage="mmap"``): the
#: cross-backend suites run on it as a fourth kind
FAISS_MMAP = "faiss-mmap"
#: Qdrant Edge with every vector in RAM and no codes (the default layout keeps int8 codes of the
#: coarse level in RAM and the rest on disk): the other end of the layout options
EDGE_IN_RAM = "qdrant-edge-in-ram"
#: compact indexes (``full=False``: only the adaptor's prefix is stored): FAISS with 8-bit codes
#: (trained from 100 records, so the suites' small corpora are held as codes, and ranked
#: through a 4-bit IVF coarse index from 100 records), Qdrant local mode with int8 codes, Edge
#: with float16 vectors
FAISS_COMPACT, QDRANT_COMPACT, EDGE_COMPACT = "faiss-compact", "qdrant-compact", "qdrant-edge-compact"
#: the cross-backend suites give every backend the same levels: a funnel with middle levels is
#: still an option on Qdrant, whose default keeps only the coarse one
SUITE_LEVELS = (64, 128, 256)


def _faiss(tmp_path: Path, dim: int, persistent: bool, **kw) -> MatryoshkaIndex:
    return MatryoshkaIndex(dim, coarse=kw.pop("coarse", "hnsw"), **kw)


def _faiss_mmap(tmp_path: Path, dim: int, persistent: bool, **kw) -> MatryoshkaIndex:
    tmp_path.mkdir(parents=True, exist_ok=True)
    return MatryoshkaIndex(dim, coarse=kw.pop("coarse", "hnsw"), vector_storage="mmap", scratch_dir=str(tmp_path), **kw)


def _qdrant(tmp_path: Path, dim: int, persistent: bool, **kw) -> MatryoshkaIndex:
    where = {"path": str(tmp_path / "qdrant")} if persistent else {"location": ":memory:"}
    return MatryoshkaIndex(dim, backend="qdrant", **where, **kw)


def _edge(tmp_path: Path, dim: int, persistent: bool, **kw) -> MatryoshkaIndex:
    return MatryoshkaIndex(dim, backend="qdrant-edge", path=str(tmp_path / "edge"), **kw)


def _edge_in_ram(tmp_path: Path, dim: int, persistent: bool, **kw) -> MatryoshkaIndex:
    return _edge(tmp_path, dim, persistent, quantization=None, on_disk=False, **kw)


def _compact_levels(dim: int, kw: dict) -> tuple[int, ...]:
    """The prefixes a compact index keeps of the levels a suite asks for (those below ``dim``),
    or half the dimension where none is."""
    return tuple(m for m in kw.pop("levels", ()) if m < dim) or (max(1, dim // 2),)


def _faiss_compact(tmp_path: Path, dim: int, persistent: bool, **kw) -> MatryoshkaIndex:
    return MatryoshkaIndex(dim, full=False, levels=_compact_levels(dim, kw), codes="int8", codes_from=100,
                           flat_threshold=100, **kw)


def _qdrant_compact(tmp_path: Path, dim: int, persistent: bool, **kw) -> MatryoshkaIndex:
    return _qdrant(tmp_path, dim, persistent, full=False, levels=_compact_levels(dim, kw), codes="int8", **kw)


def _edge_compact(tmp_path: Path, dim: int, persistent: bool, **kw) -> MatryoshkaIndex:
    return _edge(tmp_path, dim, persistent, full=False, levels=_compact_levels(dim, kw), codes="float16", **kw)


#: an empty index of each kind: ``factory(tmp_path, dim, persistent, **options)`` (qdrant local
#: mode on disk where a test reopens it, in memory otherwise)
FACTORIES = {"faiss": _faiss, FAISS_MMAP: _faiss_mmap, "qdrant": _qdrant, "qdrant-edge": _edge,
             EDGE_IN_RAM: _edge_in_ram, FAISS_COMPACT: _faiss_compact, QDRANT_COMPACT: _qdrant_compact,
             EDGE_COMPACT: _edge_compact}


def make_index(kind, tmp_path, dim=384, persistent=False, **kw):
    """An empty index on one backend kind (the Qdrant kinds get :data:`SUITE_LEVELS` unless told)."""
    if kind.startswith("qdrant"):
        kw.setdefault("levels", SUITE_LEVELS)
    return FACTORIES[kind](Path(tmp_path), dim, persistent, **kw)


def rewrite_manifest(directory, edit) -> None:
    """Edit a save's manifest and recompute its checksum, as a crafted file would."""
    import json
    from matry_index.index import MANIFEST, _manifest_digest
    path = Path(directory) / MANIFEST
    manifest = json.loads(path.read_text())
    edit(manifest)
    manifest["manifest_sha256"] = _manifest_digest(manifest)
    path.write_text(json.dumps(manifest))


def ids_of(hits):
    return [h.id for h in hits]


def fail_on_call(real, n, error):
    """``real`` wrapped so that its n-th call raises ``error`` instead (calls are counted)."""
    calls = []

    def wrapped(*args, **kwargs):
        calls.append(1)
        if len(calls) == n:
            raise error
        return real(*args, **kwargs)
    return wrapped


def check_report(folder, tables: int, images: int) -> None:
    """report.md and report.html exist; the page parses, holds the tables and its images are
    real, non-empty PNGs (inlined); the Markdown names the same plots, which exist."""
    import base64
    from html.parser import HTMLParser

    class Page(HTMLParser):
        def __init__(self):
            super().__init__()
            self.tables, self.images = 0, []

        def handle_starttag(self, tag, attrs):
            self.tables += tag == "table"
            if tag == "img":
                self.images.append(dict(attrs)["src"])
    page = Page()
    page.feed((folder / "report.html").read_text(encoding="utf-8"))
    page.close()
    assert page.tables >= tables and len(page.images) == images
    for src in page.images:
        kind, data = src.split(",", 1)
        assert kind == "data:image/png;base64" and base64.b64decode(data).startswith(b"\x89PNG")
    md = (folder / "report.md").read_text(encoding="utf-8")
    for name in re.findall(r"!\[[^]]*\]\(([^)]+)\)", md):
        assert (folder / name).stat().st_size > 0
