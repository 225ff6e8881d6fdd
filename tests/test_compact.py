"""Compact indexes (``full=False``): only the adaptor's prefix is stored, optionally as codes.

The cross-backend contract runs on compact kinds in test_conformance.py; these tests cover what
is particular to the mode: what is stored, how codes are trained and saved, what is refused,
and what ``stats()`` reports."""
from __future__ import annotations

import gc
import json
import tracemalloc

import faiss
import numpy as np
import pytest

from matry_index import FunnelPlan, MatryoshkaAdaptor, MatryoshkaIndex
from matry_index.backends.faiss.row_codes import RowCodec
from matry_index.errors import Corrupt, InvalidInput
from matry_index.kernels import unit_prefix

from .helpers import ids_of, rewrite_manifest


def _clustered(n: int, dim: int = 64, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((20, dim)) * 2
    return (centres[rng.integers(0, 20, n)] + rng.standard_normal((n, dim))).astype(np.float32)


def _own_exact(index: MatryoshkaIndex, queries: np.ndarray, k: int) -> list[list]:
    """What a compact index's exhaustive ranking must be: inner products of the adapted queries
    with the stored (decoded) vectors of every record."""
    ids = [i for i, _ in index.scan()]
    stored = np.stack([r.vector for r in index.get(ids)])
    scores = index.adapt(queries) @ stored.T
    return [[ids[j] for j in np.argsort(-row, kind="stable")[:k]] for row in scores]


def test_a_compact_index_stores_the_prefix_and_ranks_by_it():
    x, q = _clustered(3000), _clustered(20, seed=1)
    rotation = np.linalg.qr(np.random.default_rng(2).standard_normal((64, 64)))[0]
    adaptor = MatryoshkaAdaptor(64, (16, 32, 64), rotation=rotation)
    index = MatryoshkaIndex(64, adaptor=adaptor, levels=(16, 32), full=False)
    index.add(list(range(3000)), x)
    assert not index.full and index.stored_dim == 32 and index.levels == (16, 32)
    stored = index.get([5])[0].vector
    assert stored.shape == (32,)
    np.testing.assert_allclose(stored, unit_prefix(adaptor.apply(x[5:6] / np.linalg.norm(x[5])), 32)[0], atol=1e-6)
    exhaustive = index.search(q, k=10, plan=FunnelPlan.exhaustive(index.levels, len(index)))
    assert [ids_of(h) for h in exhaustive] == _own_exact(index, q, 10)
    assert "compact" in index.explain() and "compact" in repr(index)


def test_int8_codes_are_trained_once_there_are_rows_enough_and_rank_like_their_decoding():
    x, q = _clustered(1500), _clustered(20, seed=1)
    index = MatryoshkaIndex(64, levels=(16, 32), full=False, codes="int8")
    index.add(list(range(600)), x[:600])
    assert index.backend.rows.vectors.dtype == np.float32  # too few rows to train 8-bit ranges on
    index.add(list(range(600, 1500)), x[600:])
    assert index.backend.rows.vectors.dtype == np.uint8 and index.backend.rows.codec.trained
    exhaustive = index.search(q, k=10, plan=FunnelPlan.exhaustive(index.levels, len(index)))
    assert [ids_of(h) for h in exhaustive] == _own_exact(index, q, 10)
    funnel = index.search(q, k=10, plan=FunnelPlan((1500,)))
    assert [ids_of(h) for h in funnel] == [ids_of(h) for h in exhaustive]
    exact_float = MatryoshkaIndex(64, levels=(16, 32), full=False)
    exact_float.add(list(range(1500)), x)
    reference = exact_float.search(q, k=10, plan=FunnelPlan.exhaustive(index.levels, 1500))
    overlap = np.mean([len(set(ids_of(a)) & set(ids_of(b))) / 10 for a, b in zip(exhaustive, reference)])
    assert overlap >= 0.9, overlap  # 8-bit codes with a range per dimension barely move the ranking


def test_the_8bit_codec_decodes_as_faiss_does():
    x = _clustered(2000, dim=48)
    codec = RowCodec("int8", 48)
    codec.train(x)
    codes = codec.encode(x)
    np.testing.assert_allclose(codec.decode(codes), codec.quantizer.decode(codes), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(codec.decode(codes[:, :16], slice(0, 16)), codec.quantizer.decode(codes)[:, :16],
                               rtol=1e-5, atol=1e-6)
    restored = RowCodec("int8", 48)
    restored.restore(codec.state(), "here")
    assert (restored.encode(x) == codes).all()


@pytest.mark.parametrize("codes", ["float32", "float16", "int8"])
def test_a_compact_save_loads_back_with_its_codes(tmp_path, codes):
    x, q = _clustered(1200), _clustered(10, seed=1)
    index = MatryoshkaIndex(64, levels=(16, 32), full=False, codes=codes)
    index.add([f"d{i}" for i in range(1200)], x, [{"i": i} for i in range(1200)])
    before = index.search(q, k=10)
    index.save(tmp_path / "ix")
    loaded = MatryoshkaIndex.load(tmp_path / "ix")
    assert not loaded.full and loaded.codes == codes and loaded.stored_dim == 32
    assert [[(h.id, h.metadata) for h in hits] for hits in loaded.search(q, k=10)] == \
        [[(h.id, h.metadata) for h in hits] for hits in before]
    assert json.loads((tmp_path / "ix" / "index.json").read_text())["full"] is False


def test_a_compact_save_whose_manifest_claims_other_levels_is_corrupt(tmp_path):
    index = MatryoshkaIndex(64, levels=(16, 32), full=False)
    index.add(list(range(50)), _clustered(50))
    index.save(tmp_path / "ix")
    rewrite_manifest(tmp_path / "ix", lambda m: m.update(levels=[16, 32, 64, 128]))
    with pytest.raises(Corrupt, match="levels"):
        MatryoshkaIndex.load(tmp_path / "ix")
    rewrite_manifest(tmp_path / "ix", lambda m: m.update(levels=[16, 32], full="no"))
    with pytest.raises(Corrupt, match="full"):
        MatryoshkaIndex.load(tmp_path / "ix")


def test_compact_refusals_say_what_to_do():
    with pytest.raises(InvalidInput, match="shorter than the 64-d"):
        MatryoshkaIndex(64, levels=(32, 64), full=False)
    with pytest.raises(InvalidInput, match="full must be"):
        MatryoshkaIndex(64, full="no")
    with pytest.raises(InvalidInput, match="codes must be one of"):
        MatryoshkaIndex(64, levels=(16, 32), full=False, codes="int4")
    index = MatryoshkaIndex(64, levels=(16, 32), full=False)
    index.add(["a"], _clustered(1))
    with pytest.raises(InvalidInput, match="compact.*FunnelPlan.exhaustive"):
        index.search(_clustered(1)[0], k=1, exact=True)


def test_stats_report_what_the_faiss_backend_holds():
    """``stats()`` against the bytes really held: numpy's allocations as tracemalloc counts them,
    and the coarse FAISS index as FAISS serialises it (FAISS's own allocations are not traced)."""
    x = _clustered(20_000, dim=128)
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        index = MatryoshkaIndex(128, levels=(32, 64), full=False, codes="int8")
        for s in range(0, 20_000, 5000):
            index.add(list(range(s, s + 5000)), x[s:s + 5000])
        index.backend.compact()  # drop the arrays' spare capacity: count what the rows use
        gc.collect()
        traced = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    stats = index.stats()
    coarse = len(faiss.serialize_index(index.backend.coarse.index))
    held = traced + coarse
    assert stats.records == 20_000 and stats.stored_dim == 64 and stats.codes == "int8"
    assert abs(stats.ram_bytes - held) <= 0.05 * held, (stats.ram, traced, coarse)
    assert stats.ram["vectors"] == 20_000 * 64  # one byte per stored dimension
    assert "compact" in stats.describe() and stats.to_dict()["ram_bytes_per_vector"] == stats.ram_per_vector


def test_stats_of_the_other_backends_and_tiers(tmp_path):
    x = _clustered(2000)
    mapped = MatryoshkaIndex(64, vector_storage="mmap", scratch_dir=str(tmp_path))
    mapped.add(list(range(2000)), x)
    stats = mapped.stats()
    assert stats.ram["vectors"] == 0 and stats.disk["vectors"] >= 2000 * 64 * 4
    edge = MatryoshkaIndex(64, backend="qdrant-edge", path=str(tmp_path / "edge"), levels=(16, 32), full=False,
                           codes="int8")
    edge.add(list(range(2000)), x)
    stats = edge.stats()
    assert stats.ram["codes"] == 2000 * (16 + 32) and stats.disk_bytes > 0 and "estimated" in stats.how
    edge.close()
