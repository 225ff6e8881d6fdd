"""A saved index is data, never a choice: what a load reads from a save, and what a save replaces.

A save someone else made (or edited) must not choose where ``load`` connects, where it writes,
which store it opens or how much it spends; a save must replace only what an earlier save
wrote. Each test here is one way a crafted or unlucky folder got that wrong.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from matry_index import Conflict, Corrupt, InvalidInput, MatryIndexError, MatryoshkaAdaptor, MatryoshkaIndex, NoSpace
from matry_index.index import is_saved_index

from .helpers import ids_of, make_index, rewrite_manifest

DIM = 16


@pytest.fixture()
def vectors(rng):
    return rng.standard_normal((60, DIM)).astype(np.float32)


def filled(kind, tmp_path, vectors, n=30, persistent=True, **kw):
    idx = make_index(kind, tmp_path, dim=DIM, persistent=persistent, levels=(8, 16), **kw)
    idx.add([f"d{i}" for i in range(n)], vectors[:n], [{"i": i} for i in range(n)])
    return idx


def rewrite_file(directory: Path, name: str, text: str) -> None:
    """Replace one file of a save and record its new checksum in the manifest."""
    from matry_index.index import _sha256
    (directory / name).write_text(text)
    rewrite_manifest(directory, lambda m: m["files"].update({name: _sha256(directory / name)}))


# --- 1: a crafted save never chooses where load connects ----------------------------------------
@pytest.mark.parametrize("location", ["http://attacker.example:6333", "attacker.example:6333"])
@pytest.mark.parametrize("snapshot", [True, False])
def test_a_stored_location_never_chooses_a_host(location, snapshot, tmp_path, vectors, monkeypatch):
    from .test_data_safety import record_client_calls
    filled("qdrant", tmp_path, vectors, persistent=False).save(tmp_path / "ix")
    rewrite_manifest(tmp_path / "ix", lambda m: m["backend_options"].update(location=location, url=None,
                                                                            snapshot=snapshot))
    seen = record_client_calls(monkeypatch)
    with pytest.raises(InvalidInput, match="does not choose"):
        MatryoshkaIndex.load(tmp_path / "ix")
    assert seen == []  # no client was even made for the stored host


def test_a_location_given_to_the_constructor_is_a_server(monkeypatch):
    from .test_data_safety import record_client_calls
    seen = record_client_calls(monkeypatch)
    with pytest.raises(ConnectionError):
        MatryoshkaIndex(DIM, backend="qdrant", location="http://mine.example:6333")
    assert seen[-1]["url"] == "http://mine.example:6333"


# --- 2: an IVF delete that empties (or nearly empties) the index --------------------------------
@pytest.mark.parametrize("nlist, keep", [(None, 0), (50, 20)])
def test_ivf_delete_that_empties_the_index_leaves_it_consistent(nlist, keep, tmp_path, rng):
    dim, levels = 32, (16, 32)
    idx = MatryoshkaIndex(dim, levels=levels, coarse="ivf", nlist=nlist)
    first = rng.standard_normal((2000, dim)).astype(np.float32)
    idx.add(list(range(2000)), first)
    idx.delete(list(range(keep, 2000)))  # used to raise after the rows were gone
    assert len(idx) == keep
    later = rng.standard_normal((2500, dim)).astype(np.float32)
    idx.add(list(range(10_000, 12_500)), later)
    queries = rng.standard_normal((100, dim)).astype(np.float32)
    fresh = MatryoshkaIndex(dim, levels=levels, coarse="ivf", nlist=nlist)
    fresh.add(list(range(keep)) + list(range(10_000, 12_500)), np.concatenate([first[:keep], later]))
    for index in (idx, fresh):
        index.plan = index.plan.__class__((100,), nprobe=8)

    def recall(index):
        exact = index.search(queries, k=10, exact=True)
        return np.mean([len(set(ids_of(a)) & set(ids_of(b))) / 10 for a, b in zip(index.search(queries, k=10), exact)])
    assert recall(idx) >= recall(fresh) - 0.05  # it was 0.35 against 0.87: a stale coarse index
    idx.save(tmp_path / "ix")
    assert abs(recall(MatryoshkaIndex.load(tmp_path / "ix")) - recall(idx)) < 1e-9


def test_a_compaction_that_fails_after_a_delete_keeps_the_delete_and_a_consistent_index(tmp_path, vectors,
                                                                                        monkeypatch):
    idx = filled("faiss", tmp_path, vectors, persistent=False, compact_fraction=0.1)
    storage = idx.backend.rows.storage

    def full_disk(*args, **kwargs):
        raise NoSpace("not enough disk space (test)")
    monkeypatch.setattr(storage, "compacted", full_disk)
    with pytest.warns(RuntimeWarning, match="compacting the index failed"):
        idx.delete(["d1", "d2", "d3", "d4"])
    assert len(idx) == 26 and idx.get(["d1"]) == [None]
    assert "d1" not in {h.id for h in idx.search(vectors[1], k=30)}
    monkeypatch.undo()
    idx.delete(["d5"])  # the compaction is retried and succeeds
    assert idx.backend.rows.dead == 0 and len(idx) == 25


# --- 3: a user's own .NAME.old is neither deleted nor restored ----------------------------------
def test_a_users_old_copy_beside_the_index_is_left_alone(tmp_path, vectors):
    idx = filled("faiss", tmp_path, vectors, persistent=False)
    idx.save(tmp_path / "ix")
    shutil.copytree(tmp_path / "ix", tmp_path / ".ix.old")  # the user's backup: cp -r ix .ix.old
    idx.save(tmp_path / "ix")
    MatryoshkaIndex.load(tmp_path / "ix")
    assert is_saved_index(tmp_path / ".ix.old")
    shutil.rmtree(tmp_path / "ix")
    with pytest.raises(InvalidInput, match="not a saved matry_index index"):
        MatryoshkaIndex.load(tmp_path / "ix")  # the backup is not taken for an interrupted save
    assert not (tmp_path / "ix").exists() and is_saved_index(tmp_path / ".ix.old")


# --- 4: bench never overwrites the user's files -------------------------------------------------
def test_bench_refuses_an_out_folder_with_the_users_files_before_any_work(tmp_path, vectors, capsys):
    from matry_index.cli import main
    np.save(tmp_path / "x.npy", np.tile(vectors, (10, 1)))
    out = tmp_path / "out"
    out.mkdir()
    (out / "bench.md").write_text("my own notes")
    assert main(["bench", "--embeddings", str(tmp_path / "x.npy"), "--out", str(out)]) == 2
    assert "not a saved bench output" in capsys.readouterr().err
    assert (out / "bench.md").read_text() == "my own notes"


def test_advise_json_never_overwrites_a_users_file(tmp_path, vectors, capsys):
    from matry_index.cli import main
    np.save(tmp_path / "x.npy", np.tile(vectors, (10, 1)))
    (tmp_path / "notes.json").write_text('{"mine": true}')
    argv = ["advise", "--embeddings", str(tmp_path / "x.npy"), "--levels", "8", "--json"]
    assert main(argv + [str(tmp_path / "notes.json")]) == 2
    assert json.loads((tmp_path / "notes.json").read_text()) == {"mine": True}
    assert main(argv + [str(tmp_path / "advice.json")]) == 0
    assert main(argv + [str(tmp_path / "advice.json")]) == 0  # its own earlier output: replaced


# --- 5: a manifest never chooses where a loaded index writes ------------------------------------
def test_a_saved_scratch_dir_is_refused(tmp_path, vectors):
    filled("faiss", tmp_path, vectors, persistent=False).save(tmp_path / "ix")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    rewrite_manifest(tmp_path / "ix", lambda m: m["backend_options"].update(vector_storage="mmap",
                                                                            scratch_dir=str(elsewhere)))
    with pytest.raises(Corrupt, match="scratch_dir"):
        MatryoshkaIndex.load(tmp_path / "ix")
    assert list(elsewhere.iterdir()) == []


@pytest.mark.parametrize("option, value", [("batch_size", 10**12), ("retries", 10**6), ("timeout", 10**9),
                                           ("hnsw_m", 10**6)])
def test_a_saved_resource_knob_out_of_bounds_is_corrupt(option, value, tmp_path, vectors):
    filled("qdrant", tmp_path, vectors, persistent=False).save(tmp_path / "ix")
    rewrite_manifest(tmp_path / "ix", lambda m: m["backend_options"].update({option: value}))
    with pytest.raises(Corrupt, match=option):
        MatryoshkaIndex.load(tmp_path / "ix")


# --- 6, 8: saved records are checked as if they were being added --------------------------------
@pytest.mark.parametrize("kind", ["faiss", "qdrant"])
@pytest.mark.parametrize("edit", ["repeat an id", "NaN metadata", "surrogate id", "bool id"])
def test_saved_records_that_add_would_refuse_are_corrupt(kind, edit, tmp_path, vectors):
    filled(kind, tmp_path, vectors, persistent=False).save(tmp_path / "ix")
    lines = (tmp_path / "ix" / "backend" / "records.jsonl").read_text().splitlines()
    if edit == "repeat an id":
        lines[1] = lines[0]
    elif edit == "NaN metadata":
        lines[1] = '{"id": "d1", "metadata": {"x": NaN}}'
    elif edit == "surrogate id":
        lines[1] = '{"id": "\\udcff", "metadata": {}}'
    else:
        lines[1] = '{"id": true, "metadata": {}}'
    rewrite_file(tmp_path / "ix", "backend/records.jsonl", "\n".join(lines) + "\n")
    with pytest.raises(Corrupt):
        MatryoshkaIndex.load(tmp_path / "ix")


def test_a_save_whose_count_disagrees_with_its_records_is_corrupt(tmp_path, vectors):
    filled("faiss", tmp_path, vectors, persistent=False).save(tmp_path / "ix")
    rewrite_manifest(tmp_path / "ix", lambda m: m.update(count=31))
    with pytest.raises(Corrupt, match="lists 31 records"):
        MatryoshkaIndex.load(tmp_path / "ix")


# --- 7: a load opens only the store the index was saved with ------------------------------------
@pytest.mark.parametrize("kind", ["qdrant", "qdrant-edge"])
def test_load_refuses_another_store_given_or_named(kind, tmp_path, vectors):
    idx = filled(kind, tmp_path / "a", vectors, n=30)
    store = Path(idx.backend.storage_paths()[0])
    idx.save(tmp_path / "ix")
    idx.close()
    other = filled(kind, tmp_path / "b", vectors, n=10)  # same schema, another store
    other_path = Path(other.backend.storage_paths()[0])
    other.close()
    with pytest.raises(InvalidInput, match="not the store this index was saved with"):
        MatryoshkaIndex.load(tmp_path / "ix", path=str(other_path))
    rewrite_manifest(tmp_path / "ix", lambda m: m["backend_options"].update(path=str(other_path)))
    with pytest.raises(InvalidInput, match="not the store this index was saved with"):
        MatryoshkaIndex.load(tmp_path / "ix")
    loaded = MatryoshkaIndex.load(tmp_path / "ix", path=str(store))  # the real one, moved or not
    assert len(loaded) == 30
    loaded.close()


def test_a_store_without_an_id_must_hold_the_saved_count(tmp_path, vectors):
    """A shard made before stores carried ids cannot prove it is the saved one: its count must agree."""
    idx = filled("qdrant-edge", tmp_path, vectors, n=30)
    store = Path(idx.backend.storage_paths()[0])
    idx.save(tmp_path / "ix")
    idx.add(["later"], vectors[40:41])
    idx.close()
    meta = json.loads((store / "matry_index.json").read_text())
    del meta["matry_index"]["store_id"]
    (store / "matry_index.json").write_text(json.dumps(meta))
    rewrite_manifest(tmp_path / "ix", lambda m: m["backend_options"].pop("store_id"))
    with pytest.raises(InvalidInput, match="holds 31 and carries no id"):
        MatryoshkaIndex.load(tmp_path / "ix")


def test_writes_after_a_save_are_part_of_a_live_store(tmp_path, vectors):
    idx = filled("qdrant-edge", tmp_path, vectors, n=30)
    idx.save(tmp_path / "ix")
    idx.add(["later"], vectors[40:41])
    idx.close()
    loaded = MatryoshkaIndex.load(tmp_path / "ix")
    assert len(loaded) == 31
    loaded.close()


# --- 12, 13: symbolic links in a save folder ----------------------------------------------------
def test_saving_over_a_folder_with_a_foreign_link_is_refused_and_keeps_the_link(tmp_path, vectors):
    idx = filled("faiss", tmp_path, vectors, persistent=False)
    idx.save(tmp_path / "ix")
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "cat.jpg").write_bytes(b"meow")
    os.symlink(tmp_path / "photos", tmp_path / "ix" / "my-photos")
    with pytest.raises(InvalidInput, match="not a saved index"):
        idx.save(tmp_path / "ix")
    assert (tmp_path / "ix" / "my-photos").is_symlink()
    assert (tmp_path / "photos" / "cat.jpg").read_bytes() == b"meow"


@pytest.mark.parametrize("link", ["backend/records.jsonl", "extra"])
def test_load_never_follows_a_link_out_of_the_folder(link, tmp_path, vectors, monkeypatch):
    import matry_index.index as index_module
    filled("faiss", tmp_path, vectors, persistent=False).save(tmp_path / "ix")
    secret = tmp_path / "secret.txt"
    secret.write_text("not for the index")
    target = tmp_path / "ix" / link
    if target.exists():
        target.unlink()
    os.symlink(secret, target)
    read = []
    real = index_module._sha256
    monkeypatch.setattr(index_module, "_sha256", lambda p: read.append(Path(p)) or real(p))
    with pytest.raises(Corrupt, match="symbolic link"):
        MatryoshkaIndex.load(tmp_path / "ix")
    assert all(not p.is_symlink() for p in read) and secret.read_text() == "not for the index"


# --- raw exceptions that are now typed errors ----------------------------------------------------
def test_an_adaptor_config_that_is_not_an_object_is_corrupt(tmp_path):
    MatryoshkaAdaptor.identity(DIM, (8, 16)).save(tmp_path / "a")
    (tmp_path / "a" / "adaptor.json").write_text("[1, 2, 3]")
    with pytest.raises(Corrupt, match="not a matry_index adaptor"):
        MatryoshkaAdaptor.load(tmp_path / "a")


def test_a_full_disk_during_a_faiss_save_is_nospace_and_keeps_the_old_save(tmp_path, vectors, monkeypatch):
    import errno
    idx = filled("faiss", tmp_path, vectors, persistent=False)
    idx.save(tmp_path / "ix")
    idx.add(["later"], vectors[40:41])

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(np, "save", full)
    with pytest.raises(NoSpace) as caught:
        idx.save(tmp_path / "ix")
    assert isinstance(caught.value, OSError) and not isinstance(caught.value, ValueError)
    monkeypatch.undo()
    assert len(MatryoshkaIndex.load(tmp_path / "ix")) == 30
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".ix")] == []


def test_two_saves_racing_for_one_folder_give_a_conflict_and_a_whole_save(tmp_path, vectors, monkeypatch):
    first = filled("faiss", tmp_path, vectors, persistent=False, n=30)
    second = filled("faiss", tmp_path, vectors, persistent=False, n=20)
    real = os.replace

    def the_other_process_wins(src, dst):
        if Path(dst) == tmp_path / "ix" and not Path(dst).exists():
            monkeypatch.setattr(os, "replace", real)
            second.save(tmp_path / "ix")  # lands between this save's check and its rename
        return real(src, dst)
    monkeypatch.setattr(os, "replace", the_other_process_wins)
    with pytest.raises(Conflict, match="at the same time"):
        first.save(tmp_path / "ix")
    monkeypatch.undo()
    assert len(MatryoshkaIndex.load(tmp_path / "ix")) == 20
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".ix")] == []


@pytest.mark.parametrize("kind", ["faiss", "qdrant", "qdrant-edge"])
async def test_a_closed_index_refuses_every_call(kind, tmp_path, vectors):
    idx = filled(kind, tmp_path, vectors)
    await idx.aclose()
    for call in (lambda: idx.search(vectors[0], k=3), lambda: idx.add(["x"], vectors[40:41]),
                 lambda: idx.delete(["d1"]), lambda: idx.get(["d1"]), lambda: len(idx), lambda: idx.scan(),
                 lambda: idx.save(tmp_path / "ix"), lambda: idx.tune(vectors[:5])):
        with pytest.raises(InvalidInput, match="closed"):
            call()
    with pytest.raises(InvalidInput, match="closed"):
        await idx.asearch(vectors[0], k=3)
    assert "closed" in repr(idx)
    await idx.aclose()  # closing twice is harmless


def test_every_error_the_package_raises_is_typed():
    """No ``raise MatryIndexError(...)`` of the root class: each failure has its kind."""
    root = Path(__file__).resolve().parents[1] / "matry_index"
    offenders = [f"{p.relative_to(root)}:{n}" for p in root.rglob("*.py")
                 for n, line in enumerate(p.read_text().splitlines(), 1) if "raise MatryIndexError(" in line]
    assert offenders == []
    assert issubclass(InvalidInput, ValueError) and not issubclass(MatryIndexError, ValueError)
    assert not issubclass(Corrupt, ValueError) and issubclass(NoSpace, OSError)
