"""The FAISS backend's memory tier: full vectors in a memory-mapped file (``vector_storage="mmap"``).

The cross-backend suites (test_index, test_filters, test_properties, the save faults) run on a
mapped index as a fourth kind; this file checks what is particular to it: where the vectors
live, what a load maps, that the saved files are never written through the mapping, and that a
full disk is a clear error that leaves the index as it was.
"""
from __future__ import annotations

import hashlib
import os
import subprocess

import numpy as np
import pytest

from matry_index import FunnelPlan, MatryIndexError, MatryoshkaIndex

from .helpers import ids_of


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _mapped(tmp_path, **kw) -> MatryoshkaIndex:
    return MatryoshkaIndex(384, levels=(64, 128, 384), coarse="hnsw", vector_storage="mmap",
                           scratch_dir=str(tmp_path), **kw)


def test_a_mapped_index_answers_like_one_in_memory(small_corpus, tmp_path):
    ids, docs, queries = small_corpus
    mapped, in_ram = _mapped(tmp_path), MatryoshkaIndex(384, levels=(64, 128, 384), coarse="hnsw")
    for idx in (mapped, in_ram):
        idx.add(ids, docs)
    assert isinstance(mapped.backend.rows.vectors, np.memmap)
    assert not isinstance(in_ram.backend.rows.vectors, np.memmap)
    plan = FunnelPlan((100, 30))
    for exact in (False, True):
        got = mapped.search(queries, k=10, plan=None if exact else plan, exact=exact)
        want = in_ram.search(queries, k=10, plan=None if exact else plan, exact=exact)
        assert [ids_of(h) for h in got] == [ids_of(h) for h in want]
        np.testing.assert_allclose([h.score for r in got for h in r], [h.score for r in want for h in r], atol=1e-6)


def test_a_load_maps_the_saved_vectors_and_never_writes_through_them(small_corpus, tmp_path):
    ids, docs, queries = small_corpus
    idx = MatryoshkaIndex(384, levels=(64, 128, 384), coarse="hnsw")  # saved from RAM ...
    idx.add(ids[:1500], docs[:1500])
    idx.save(tmp_path / "ix")
    saved = tmp_path / "ix" / "backend" / "vectors.npy"
    before = _digest(saved)
    expected = [ids_of(h) for h in idx.search(queries[:5], k=10)]

    loaded = MatryoshkaIndex.load(tmp_path / "ix", vector_storage="mmap", scratch_dir=str(tmp_path))  # ... opened mapped
    rows = loaded.backend.rows.vectors
    assert isinstance(rows, np.memmap) and not rows.flags.writeable
    assert os.path.samefile(rows.filename, saved)
    assert [ids_of(h) for h in loaded.search(queries[:5], k=10)] == expected

    loaded.add(ids[1500:], docs[1500:])          # the first write moves to a scratch file
    loaded.delete(ids[:600])                     # and compacts there (600 of 2000 dead)
    assert loaded.backend.rows.dead == 0 and len(loaded) == 1400
    assert _digest(saved) == before
    loaded.save(tmp_path / "ix")                 # over the directory its first mapping came from
    again = MatryoshkaIndex.load(tmp_path / "ix", vector_storage="mmap")
    assert sorted(i for i, _ in again.scan()) == sorted(ids[600:])
    assert [ids_of(h) for h in again.search(queries[:5], k=10, exact=True)] == \
        [ids_of(h) for h in loaded.search(queries[:5], k=10, exact=True)]
    assert MatryoshkaIndex.load(tmp_path / "ix").backend.options["vector_storage"] == "mmap"  # the save remembers


def test_storage_options_are_checked(tmp_path):
    with pytest.raises(MatryIndexError, match="vector_storage must be one of"):
        MatryoshkaIndex(8, levels=(4, 8), vector_storage="disk")
    with pytest.raises(MatryIndexError, match="scratch_dir is only used"):
        MatryoshkaIndex(8, levels=(4, 8), scratch_dir=str(tmp_path))
    idx = MatryoshkaIndex(8, levels=(4, 8), vector_storage="mmap", scratch_dir=str(tmp_path / "absent"))
    with pytest.raises(MatryIndexError, match="cannot create the vector file"):
        idx.add(["a"], np.ones((1, 8), np.float32))
    assert len(idx) == 0


def _state(idx, queries):
    return len(idx), [ids_of(h) for h in idx.search(queries, k=5, exact=True)]


def test_a_failed_reservation_leaves_the_index_as_it_was(tmp_path, monkeypatch, rng):
    idx = MatryoshkaIndex(16, levels=(8, 16), coarse="flat", vector_storage="mmap", scratch_dir=str(tmp_path))
    vectors = rng.standard_normal((3000, 16)).astype(np.float32)
    idx.add([f"d{i}" for i in range(1000)], vectors[:1000])  # capacity 1024: the next add must grow
    before = _state(idx, vectors[-3:])

    def no_space(fd, offset, length):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "posix_fallocate", no_space)
    with pytest.raises(MatryIndexError, match="cannot reserve .* nothing was written"):
        idx.add([f"n{i}" for i in range(1000)], vectors[1000:2000])
    assert _state(idx, vectors[-3:]) == before
    monkeypatch.undo()
    idx.add([f"n{i}" for i in range(1000)], vectors[1000:2000])
    assert len(idx) == 2000


@pytest.mark.slow
def test_a_really_full_scratch_filesystem_is_an_error_not_a_sigbus(tmp_path, rng):
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.strip()}")
    try:
        idx = MatryoshkaIndex(256, levels=(32, 256), coarse="flat", vector_storage="mmap", scratch_dir=str(mount))
        batch = 1000  # 1 MB of vectors a batch; the file doubles, so the 4 MiB disk fills within a few
        added, refused = 0, None
        for _ in range(20):
            vectors = rng.standard_normal((batch, 256)).astype(np.float32)
            before = _state(idx, vectors[:2])
            try:
                idx.add([f"r{added + j}" for j in range(batch)], vectors)
            except MatryIndexError as exc:
                refused = str(exc)
                break
            added += batch
        assert refused is not None and "cannot reserve" in refused
        assert added > 0 and _state(idx, vectors[:2]) == before  # what was acknowledged is all there
        assert len(idx) == added
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)
