"""What a user stored is there tomorrow, and what a user did not give the index is never touched.

One test (or one parametrised group) per data-safety defect: saves that must not delete
foreign files, stores that must not be opened or emptied silently, writes that must be all
or nothing, inputs that must be refused before anything changes. Run over every backend
where the defect applies.
"""
from __future__ import annotations

import json
import os
import pickle
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from matry_index import Corrupt, InvalidInput, MatryIndexError, MatryoshkaAdaptor, MatryoshkaIndex, Unavailable
from matry_index.cli import main

from .helpers import BACKENDS, fail_on_call, ids_of, make_index, rewrite_manifest

DIM = 16


@pytest.fixture()
def vectors(rng):
    return rng.standard_normal((40, DIM)).astype(np.float32)


def filled(kind, tmp_path, vectors, persistent=True, n=30, **kw):
    idx = make_index(kind, tmp_path, dim=DIM, persistent=persistent, levels=(8, 16), **kw)
    idx.add([f"d{i}" for i in range(n)], vectors[:n], [{"i": i} for i in range(n)])
    return idx


def state(index, queries):
    return len(index), sorted(i for i, _ in index.scan()), [ids_of(h) for h in index.search(queries, 5, exact=True)]


# --- 1: a save replaces only an earlier save of the same kind ---------------------------------
def test_save_refuses_a_directory_with_foreign_files(tmp_path, vectors):
    idx = filled("faiss", tmp_path, vectors)
    target = tmp_path / "p"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    with pytest.raises(MatryIndexError, match="not a saved index"):
        idx.save(target)
    assert (target / "notes.txt").read_text() == "mine" and sorted(os.listdir(target)) == ["notes.txt"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".p")] == []


def test_save_refuses_a_file_and_the_working_directory(tmp_path, vectors, monkeypatch):
    idx = filled("faiss", tmp_path, vectors)
    (tmp_path / "file").write_text("mine")
    with pytest.raises(MatryIndexError, match="not a directory"):
        idx.save(tmp_path / "file")
    assert (tmp_path / "file").read_text() == "mine"
    work = tmp_path / "work"
    work.mkdir()
    (work / "code.py").write_text("print(1)")
    monkeypatch.chdir(work)
    for where in (".", "..", str(work)):
        with pytest.raises(MatryIndexError, match="working directory"):
            idx.save(where)
    assert (work / "code.py").read_text() == "print(1)"


def test_save_replaces_its_own_earlier_save_but_not_one_with_added_files(tmp_path, vectors):
    idx = filled("faiss", tmp_path, vectors)
    idx.save(tmp_path / "ix")
    idx.add(["extra"], vectors[35:36])
    idx.save(tmp_path / "ix")  # an earlier save: replaced
    assert len(MatryoshkaIndex.load(tmp_path / "ix")) == 31
    (tmp_path / "ix" / "README").write_text("my notes about this index")
    with pytest.raises(MatryIndexError, match="not a saved index"):
        idx.save(tmp_path / "ix")
    assert (tmp_path / "ix" / "README").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    idx.save(empty)  # an empty directory holds nothing to lose
    assert len(MatryoshkaIndex.load(empty)) == 31


def test_adaptor_save_refuses_foreign_files(tmp_path):
    adaptor = MatryoshkaAdaptor.identity(DIM, (8, 16))
    target = tmp_path / "a"
    target.mkdir()
    (target / "weights.npz").write_bytes(b"someone else's")
    with pytest.raises(MatryIndexError, match="not a saved adaptor"):
        adaptor.save(target)
    assert (target / "weights.npz").read_bytes() == b"someone else's"
    adaptor.save(tmp_path / "b")
    adaptor.save(tmp_path / "b")  # its own earlier save
    assert MatryoshkaAdaptor.load(tmp_path / "b").content_hash == adaptor.content_hash


@pytest.mark.parametrize("kind", ["qdrant", "qdrant-edge"])
def test_save_refuses_the_backends_own_storage(kind, tmp_path, vectors):
    idx = filled(kind, tmp_path, vectors)
    store = Path(idx.backend.storage_paths()[0])
    for target in (store, store / "shard", store.parent):
        with pytest.raises(MatryIndexError):
            idx.save(target)
    idx.close()
    reopened = make_index(kind, tmp_path, dim=DIM, persistent=True, levels=(8, 16))
    assert len(reopened) == 30
    reopened.close()


def test_cli_build_refuses_an_out_directory_with_foreign_files(tmp_path, vectors, capsys):
    np.save(tmp_path / "x.npy", vectors)
    (tmp_path / "x.ids").write_text("\n".join(f"d{i}" for i in range(len(vectors))) + "\n")
    out = tmp_path / "out"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    rc = main(["build", "--embeddings", str(tmp_path / "x.npy"), "--ids", str(tmp_path / "x.ids"),
               "--out", str(out)])
    assert rc == 2 and "not a saved index" in capsys.readouterr().err
    assert (out / "thesis.tex").read_text() == "years of work"


# --- 2: a local-mode folder from someone else is never unpickled ------------------------------
class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def _plant_pickle(store: Path, marker: Path) -> None:
    db = next(store.glob("collection/*/storage.sqlite"))
    con = sqlite3.connect(db)
    with con:
        con.execute("INSERT INTO points VALUES (?, ?)", ("evil", pickle.dumps(_Payload(str(marker)))))
    con.close()


def test_local_mode_folder_with_foreign_pickles_is_refused_unopened(tmp_path, vectors):
    idx = filled("qdrant", tmp_path, vectors)
    idx.save(tmp_path / "ix")
    idx.close()
    marker = tmp_path / "code_ran"
    _plant_pickle(tmp_path / "qdrant", marker)
    with pytest.raises(MatryIndexError, match="something other than Qdrant points"):
        make_index("qdrant", tmp_path, dim=DIM, persistent=True, levels=(8, 16))
    with pytest.raises(MatryIndexError, match="something other than Qdrant points"):
        MatryoshkaIndex.load(tmp_path / "ix")
    assert not marker.exists()


def test_in_memory_qdrant_index_saves_as_plain_data(tmp_path, vectors):
    idx = filled("qdrant", tmp_path, vectors, persistent=False)
    before = state(idx, vectors[:3])
    idx.save(tmp_path / "ix")
    names = {p.name for p in (tmp_path / "ix" / "backend").iterdir()}
    assert names == {"vectors.npy", "records.jsonl"}
    np.load(tmp_path / "ix" / "backend" / "vectors.npy", allow_pickle=False)
    loaded = MatryoshkaIndex.load(tmp_path / "ix")  # 5: it used to come back with 0 rows
    assert state(loaded, vectors[:3]) == before
    assert loaded.get(["d3"])[0].metadata == {"i": 3}


# --- 3: a loaded file never chooses where credentials go --------------------------------------
def _saved_with_url(tmp_path, vectors, url):
    idx = filled("qdrant", tmp_path, vectors, persistent=False)
    idx.save(tmp_path / "ix")
    # a crafted file can recompute the manifest's checksum too
    rewrite_manifest(tmp_path / "ix", lambda m: m["backend_options"].update(url=url, location=None, snapshot=False))
    return tmp_path / "ix"


def record_client_calls(monkeypatch) -> list[dict]:
    """Replace qdrant-client's QdrantClient with one that records its arguments and never connects."""
    from matry_index.backends.qdrant import client as qmod
    seen: list[dict] = []

    class Recorder:
        def __init__(self, **kwargs):
            seen.append(kwargs)
            raise ConnectionError("not connecting in a test")
    monkeypatch.setattr(qmod, "QdrantClient", Recorder)
    return seen


def test_load_never_connects_to_a_stored_url_on_its_own(tmp_path, vectors, monkeypatch):
    saved = _saved_with_url(tmp_path, vectors, "http://attacker.example:6333")
    seen = record_client_calls(monkeypatch)
    monkeypatch.setenv("QDRANT_API_KEY", "secret-key")
    with pytest.raises(MatryIndexError, match="does not choose"):
        MatryoshkaIndex.load(saved)
    assert seen == []
    with pytest.raises(ConnectionError):
        MatryoshkaIndex.load(saved, url="https://mine.example:6333", api_key="k")
    assert seen[-1]["url"] == "https://mine.example:6333" and seen[-1]["api_key"] == "k"
    with pytest.raises(ConnectionError):
        MatryoshkaIndex.load(saved, trust_stored_url=True)
    assert seen[-1]["url"] == "http://attacker.example:6333"
    assert "api_key" not in json.dumps(json.loads((saved / "index.json").read_text()))


# --- 4: a full disk is an error, not a dead process -------------------------------------------
@pytest.mark.parametrize("kind", ["qdrant", "qdrant-edge"])
def test_full_disk_refuses_the_write_before_touching_the_store(kind, tmp_path, vectors, monkeypatch):
    idx = filled(kind, tmp_path, vectors)
    before = state(idx, vectors[:3])
    real = shutil.disk_usage

    def nearly_full(path):
        usage = real(path)
        return type(usage)(usage.total, usage.total - (1 << 20), 1 << 20)
    monkeypatch.setattr(shutil, "disk_usage", nearly_full)
    with pytest.raises(MatryIndexError, match="not enough free disk space"):
        idx.add(["new"], vectors[35:36])
    with pytest.raises(MatryIndexError, match="not enough free disk space"):
        idx.upsert(["d1"], vectors[36:37])
    monkeypatch.undo()
    assert state(idx, vectors[:3]) == before
    idx.close()


# --- 5: loads never come back empty without a word --------------------------------------------
@pytest.mark.parametrize("kind", ["qdrant", "qdrant-edge"])
def test_moved_store_is_an_error_and_loads_from_its_new_place(kind, tmp_path, vectors):
    idx = filled(kind, tmp_path, vectors)
    store = Path(idx.backend.storage_paths()[0])
    idx.save(tmp_path / "ix")
    idx.close()
    moved = tmp_path / "moved"
    shutil.move(store, moved)
    with pytest.raises(MatryIndexError, match="moved or deleted"):
        MatryoshkaIndex.load(tmp_path / "ix")
    assert not store.exists()  # and no fresh empty store was created in its place
    loaded = MatryoshkaIndex.load(tmp_path / "ix", path=str(moved))
    assert len(loaded) == 30
    loaded.close()


def test_store_emptied_behind_the_index_is_an_error(tmp_path, vectors):
    idx = filled("qdrant-edge", tmp_path, vectors)
    idx.save(tmp_path / "ix")
    idx.delete([f"d{i}" for i in range(30)])
    idx.close()
    with pytest.raises(MatryIndexError, match="held 30 records when saved"):
        MatryoshkaIndex.load(tmp_path / "ix")


# --- 6: writes are all or nothing -------------------------------------------------------------
@pytest.mark.parametrize("kind", ["qdrant", "qdrant-edge"])
@pytest.mark.parametrize("replace", [False, True])
def test_failure_in_a_later_batch_undoes_the_earlier_ones(kind, replace, tmp_path, vectors, monkeypatch):
    idx = filled(kind, tmp_path, vectors, n=20)
    idx.backend.batch_size = 4
    before = state(idx, vectors[:3])
    stored_before = {r.id: (r.vector.copy(), r.metadata) for r in idx.get([f"d{i}" for i in range(20)])}
    monkeypatch.setattr(idx.backend, "_upsert_batch",
                        fail_on_call(idx.backend._upsert_batch, 3, OSError("connection reset")))
    ids = [f"d{i}" for i in range(10, 30)] if replace else [f"n{i}" for i in range(20)]
    write = idx.upsert if replace else idx.add
    with pytest.raises(OSError, match="connection reset"):
        write(ids, vectors[20:40], [{"new": True}] * 20)
    monkeypatch.undo()
    assert state(idx, vectors[:3]) == before
    for r in idx.get(list(stored_before)):
        np.testing.assert_allclose(r.vector, stored_before[r.id][0], atol=1e-6)
        assert r.metadata == stored_before[r.id][1]
    idx.close()


def test_a_failed_undo_is_reported_not_swallowed(tmp_path, vectors, monkeypatch):
    idx = filled("qdrant", tmp_path, vectors, persistent=False, n=8)
    idx.backend.batch_size = 4
    monkeypatch.setattr(idx.backend, "_upsert_batch", fail_on_call(idx.backend._upsert_batch, 2, OSError("write failed")))
    monkeypatch.setattr(idx.backend, "_delete_points", fail_on_call(idx.backend._delete_points, 1, OSError("server gone")))
    with pytest.raises(MatryIndexError, match="undoing it failed too"):
        idx.add([f"n{i}" for i in range(8)], vectors[10:18])


# --- 7: every backend is safe under concurrent reads and writes -------------------------------
# --- 9: metadata that cannot be saved is refused at add time, everywhere ----------------------
@pytest.mark.parametrize("kind", BACKENDS)
@pytest.mark.parametrize("bad", [{"s": {1, 2}}, {"t": __import__("datetime").datetime(2020, 1, 1)},
                                 {"b": b"raw"}, {"x": float("nan")}, {1: "int key"}, {"a": object()},
                                 {"n": [1, {"deep": float("inf")}]}])
def test_metadata_that_json_cannot_hold_is_refused(kind, bad, tmp_path, vectors):
    idx = filled(kind, tmp_path, vectors, persistent=False)
    before = state(idx, vectors[:3])
    with pytest.raises(MatryIndexError, match="metadata"):
        idx.add(["new"], vectors[35:36], [bad])
    assert state(idx, vectors[:3]) == before
    idx.close()


def test_numpy_scalars_become_plain_numbers_and_the_index_still_saves(tmp_path, vectors):
    idx = filled("faiss", tmp_path, vectors)
    meta = {"n": np.int64(3), "f": np.float32(0.5), "b": np.bool_(True), "l": (np.int32(1), "x")}
    idx.add(["np"], vectors[35:36], [meta])
    meta["n"] = 99  # the caller's dict is copied, not kept
    idx.save(tmp_path / "ix")
    assert MatryoshkaIndex.load(tmp_path / "ix").get(["np"])[0].metadata == \
        {"n": 3, "f": 0.5, "b": True, "l": [1, "x"]}


# --- 10: a crash between the two renames, and temporaries of killed saves ---------------------
def test_crash_between_the_renames_is_recovered_and_leftovers_cleaned(tmp_path, vectors, monkeypatch):
    idx = filled("faiss", tmp_path, vectors)
    idx.save(tmp_path / "ix")
    idx.add(["later"], vectors[35:36])
    real = os.replace
    calls = []

    def crash_after_first(src, dst):  # the power goes after the first rename: nothing more happens
        calls.append((src, dst))
        if len(calls) >= 2:
            raise KeyboardInterrupt("power cut")
        return real(src, dst)
    monkeypatch.setattr(os, "replace", crash_after_first)
    with pytest.raises(KeyboardInterrupt):
        idx.save(tmp_path / "ix")
    monkeypatch.undo()
    assert not (tmp_path / "ix").exists() and len(list(tmp_path.glob(".ix.matry-old-*"))) == 1
    assert len(MatryoshkaIndex.load(tmp_path / "ix")) == 30  # the previous save, recovered
    stale = tmp_path / ".ix.tmp-999999999-abc"  # a save killed long ago (no such pid)
    stale.mkdir()
    (stale / "vectors.npy").write_bytes(b"half")
    idx.save(tmp_path / "ix")
    assert not stale.exists() and not list(tmp_path.glob(".ix.matry-old-*"))
    assert len(MatryoshkaIndex.load(tmp_path / "ix")) == 31


# --- 11: the manifest is covered by a checksum and checked against the files ------------------
@pytest.mark.parametrize("edit", [lambda m: m.update(levels=[4, 16]), lambda m: m.update(count=5),
                                  lambda m: m["plan"].update(candidates=[1])])
def test_an_edited_manifest_is_refused(edit, tmp_path, vectors):
    filled("faiss", tmp_path, vectors).save(tmp_path / "ix")
    path = tmp_path / "ix" / "index.json"
    manifest = json.loads(path.read_text())
    edit(manifest)
    path.write_text(json.dumps(manifest))
    with pytest.raises(MatryIndexError, match="edited"):
        MatryoshkaIndex.load(tmp_path / "ix")


def test_a_consistently_rewritten_manifest_still_cannot_change_the_coarse_level(tmp_path, vectors):
    filled("faiss", tmp_path, vectors).save(tmp_path / "ix")
    rewrite_manifest(tmp_path / "ix", lambda m: m.update(levels=[4, 16]))
    with pytest.raises(MatryIndexError, match="8-d|4-d"):
        MatryoshkaIndex.load(tmp_path / "ix")


# --- 12: a bare string is not a list of ids ---------------------------------------------------
@pytest.mark.parametrize("kind", BACKENDS)
def test_a_bare_string_is_not_a_list_of_ids(kind, tmp_path, vectors):
    idx = make_index(kind, tmp_path, dim=DIM, levels=(8, 16))
    idx.add(["a", "b", "ab"], vectors[:3])
    for call in (lambda: idx.delete("ab"), lambda: idx.get("ab"), lambda: idx.add("xy", vectors[3:5]),
                 lambda: idx.upsert(b"ab", vectors[3:5]), lambda: idx.delete("ab", missing_ok=True)):
        with pytest.raises(MatryIndexError, match="list of ids"):
            call()
    assert sorted(i for i, _ in idx.scan()) == ["a", "ab", "b"]
    idx.close()


def test_rag_stores_refuse_a_bare_string_of_ids():
    from langchain_core.embeddings import DeterministicFakeEmbedding
    from matry_index.integrations.langchain import MatryoshkaVectorStore
    store = MatryoshkaVectorStore(DeterministicFakeEmbedding(size=8))
    store.add_texts(["alpha", "beta", "ab"], ids=["a", "b", "ab"])
    with pytest.raises(MatryIndexError, match="list of ids"):
        store.delete("ab")
    assert len(store.get_by_ids(["a", "b", "ab"])) == 3


# --- 13: huge finite vectors keep their direction ---------------------------------------------
@pytest.mark.parametrize("kind", BACKENDS)
@pytest.mark.parametrize("scale", [1e20, 1e-30])
def test_huge_and_tiny_vectors_keep_their_direction(kind, scale, tmp_path, vectors):
    idx = filled(kind, tmp_path, vectors, persistent=False)
    idx.add(["scaled"], vectors[35:36] * scale)
    hit = idx.search(vectors[35], k=1, exact=True)[0]
    assert hit.id == "scaled" and hit.score == pytest.approx(1.0, abs=1e-5)
    assert np.isfinite(idx.get(["scaled"])[0].vector).all()
    with pytest.raises(MatryIndexError, match="all zeros"):
        idx.add(["zero"], np.zeros((1, DIM)))
    idx.close()


# --- 14: an adaptor with NaN/inf weights is refused, whatever its hash ------------------------
def test_adaptor_with_non_finite_weights_is_refused(tmp_path, rng):
    rot, _ = np.linalg.qr(rng.standard_normal((DIM, DIM)))
    good = MatryoshkaAdaptor(DIM, (8, 16), rotation=rot)
    bad = rot.copy()
    bad[0, 0] = np.nan
    with pytest.raises(MatryIndexError, match="NaN or inf"):
        MatryoshkaAdaptor(DIM, (8, 16), rotation=bad)
    good.save(tmp_path / "a")
    np.savez(tmp_path / "a" / "weights.npz", rotation=bad)
    cfg = json.loads((tmp_path / "a" / "adaptor.json").read_text())
    import hashlib
    h = hashlib.sha256(json.dumps({"dim": DIM, "levels": (8, 16)}).encode())
    h.update(b"rotation")
    h.update(bad.astype(np.float32).tobytes())
    cfg["hash"] = h.hexdigest()  # a matching hash does not make NaN weights usable
    (tmp_path / "a" / "adaptor.json").write_text(json.dumps(cfg))
    with pytest.raises(MatryIndexError, match="NaN or inf"):
        MatryoshkaAdaptor.load(tmp_path / "a")


# --- 15: fractional timeouts -------------------------------------------------------------------
def test_fractional_timeout_reaches_the_client(monkeypatch):
    from matry_index.backends.qdrant import client as qmod
    seen = record_client_calls(monkeypatch)
    with pytest.raises(ConnectionError):
        qmod.QdrantBackend(DIM, (8, 16), url="http://127.0.0.1:9", timeout=0.5)
    assert seen[0]["timeout"] == 0.5
    for bad in (0, -1, float("nan"), "5"):
        with pytest.raises(MatryIndexError, match="timeout"):
            qmod.QdrantBackend(DIM, (8, 16), url="http://127.0.0.1:9", timeout=bad)


# --- 16 and 17: the CLI -------------------------------------------------------------------------
@pytest.fixture()
def built(tmp_path, vectors):
    np.save(tmp_path / "x.npy", vectors)
    (tmp_path / "x.ids").write_text("\n".join(f"d{i}" for i in range(len(vectors))) + "\n")
    (tmp_path / "p.jsonl").write_text("".join(json.dumps({"i": i}) + "\n" for i in range(len(vectors))) + "\n")
    assert main(["build", "--embeddings", str(tmp_path / "x.npy"), "--ids", str(tmp_path / "x.ids"),
                 "--payload", str(tmp_path / "p.jsonl"), "--levels", "8,16", "--out", str(tmp_path / "ix")]) == 0
    return tmp_path


def test_cli_search_takes_a_single_query_vector(built, vectors, capsys):
    np.save(built / "q1.npy", vectors[3])
    capsys.readouterr()
    assert main(["search", "--index", str(built / "ix"), "--queries", str(built / "q1.npy"), "-k", "2"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["hits"][0]["id"] == "d3"


@pytest.mark.parametrize("argv", [
    ["search", "--index", "{t}/nowhere", "--queries", "{t}/x.npy"],
    ["search", "--index", "{t}/ix", "--queries", "{t}/missing.npy"],
    ["search", "--index", "{t}/ix", "--queries", "{t}/x.ids"],                    # not .npy
    ["search", "--index", "{t}/ix", "--queries", "{t}/x.npy", "--filter", "{{bad json"],
    ["search", "--index", "{t}/ix", "--queries", "{t}/x.npy", "--filter", "[1, 2]"],
    ["search", "--index", "{t}/ix", "--queries", "{t}/x.npy", "-k", "0"],
    ["build", "--embeddings", "{t}/x.npy", "--ids", "{t}/x.ids", "--levels", "abc", "--out", "{t}/o"],
    ["build", "--embeddings", "{t}/x.npy", "--ids", "{t}/x.ids", "--nlist", "-3", "--out", "{t}/o"],
    ["build", "--embeddings", "{t}/x.ids", "--ids", "{t}/x.ids", "--out", "{t}/o"],
    ["build", "--embeddings", "{t}/x.npy", "--ids", "{t}/nope.ids", "--out", "{t}/o"],
    ["build", "--embeddings", "{t}/x.npy", "--ids", "{t}/x.ids", "--payload", "{t}/x.npy", "--out", "{t}/o"],
    ["build", "--embeddings", "{t}/x.npy", "--ids", "{t}/x.ids", "--out", "{t}/x.npy"],
    ["evaluate", "--data", "{t}/nowhere", "--adaptor", "{t}/nowhere"],
])
def test_cli_user_errors_are_one_line_with_exit_code_2(built, argv, capsys):
    argv = [a.format(t=built) for a in argv]
    capsys.readouterr()
    try:
        rc = main(argv)
    except SystemExit as exc:  # argparse's own usage errors
        rc = exc.code
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "error" in err and "Traceback" not in err, err
    assert (built / "x.npy").exists()


# --- a new store is never created among someone else's files ----------------------------------
@pytest.mark.parametrize("kind", ["qdrant", "qdrant-edge"])
def test_a_new_store_refuses_a_directory_with_foreign_files(kind, tmp_path):
    folder = tmp_path / ("qdrant" if kind == "qdrant" else "edge")
    folder.mkdir()
    (folder / "photos.zip").write_bytes(b"mine")
    with pytest.raises(MatryIndexError, match="already holds files"):
        make_index(kind, tmp_path, dim=DIM, persistent=True, levels=(8, 16))
    assert sorted(os.listdir(folder)) == ["photos.zip"]


def test_crafted_backend_options_are_an_error_not_a_crash(tmp_path, vectors):
    index = filled("qdrant-edge", tmp_path, vectors)
    index.save(tmp_path / "ix")
    index.close()
    rewrite_manifest(tmp_path / "ix", lambda m: m["backend_options"].update(run_this="rm -rf /"))
    with pytest.raises(Corrupt, match="never writes"):
        MatryoshkaIndex.load(tmp_path / "ix")


# --- second round: inputs that used to pass or crash raw --------------------------------------
@pytest.mark.parametrize("kind", BACKENDS)
def test_complex_and_string_vectors_are_refused_everywhere(kind, tmp_path, vectors):
    idx = filled(kind, tmp_path, vectors, persistent=False)
    before = state(idx, vectors[:3])
    for bad in (vectors[35:36] + 1j, vectors[35:36].astype(str)):
        with pytest.raises(InvalidInput, match="real numbers"):
            idx.add(["new"], bad)
        with pytest.raises(InvalidInput, match="real numbers"):
            idx.search(bad[0], k=3)
        with pytest.raises(InvalidInput, match="real numbers"):
            idx.tune(bad)
    assert state(idx, vectors[:3]) == before
    idx.close()


@pytest.mark.parametrize("kind", BACKENDS)
def test_text_that_has_no_utf8_form_is_refused(kind, tmp_path, vectors):
    idx = filled(kind, tmp_path, vectors, persistent=False)
    before = state(idx, vectors[:3])
    for ids, meta in ((["bad\udcff"], None), (["ok"], [{"name": "bad\udcff"}]), (["ok"], [{"bad\udcff": 1}])):
        with pytest.raises(InvalidInput, match="not valid Unicode"):
            idx.add(ids, vectors[35:36], meta)
    assert state(idx, vectors[:3]) == before
    idx.close()


@pytest.mark.parametrize("kind", BACKENDS)
def test_metadata_nested_too_deep_or_containing_itself_is_refused(kind, tmp_path, vectors):
    idx = filled(kind, tmp_path, vectors, persistent=False)
    deep: dict = {}
    node = deep
    for _ in range(5000):
        node["x"] = {}
        node = node["x"]
    looped: dict = {"a": []}
    looped["a"].append(looped)
    for bad in (deep, looped):
        with pytest.raises(InvalidInput, match="nested more than"):
            idx.add(["new"], vectors[35:36], [bad])
    shallow: dict = {}
    node = shallow
    for _ in range(20):  # deep enough for any real payload: stored and read back as given
        node["x"] = {}
        node = node["x"]
    idx.add(["ok"], vectors[36:37], [shallow])
    assert idx.get(["ok"])[0].metadata == shallow
    idx.close()


@pytest.mark.parametrize("k", [0, -5, True, 2.5])
def test_tune_refuses_a_k_that_is_not_a_positive_integer(k, tmp_path, vectors):
    idx = filled("faiss", tmp_path, vectors, persistent=False)
    plan = idx.plan
    with pytest.raises(InvalidInput, match="k must be a positive integer"):
        idx.tune(vectors[:10], k=k)
    assert idx.plan == plan


@pytest.mark.parametrize("args", [(("100",),), ((True,),), ((-1,),), ((10,), "ef"), ((10,), None, {}, 0), ((10,), 1 << 30),
                                  ((10,), None, [], None)])
def test_a_plan_with_wrong_types_is_refused(args):
    from matry_index import FunnelPlan
    with pytest.raises(InvalidInput, match="plan"):
        FunnelPlan(*args)


def test_qdrant_setup_refuses_two_places_at_once(tmp_path, capsys):
    for extra in (["--url", "http://localhost:6333"], ["--path", str(tmp_path / "local")],
                  ["--collection", "mine"], ["--shards", "2"]):
        capsys.readouterr()
        try:
            rc = main(["qdrant-setup", "--edge-path", str(tmp_path / "edge"), "--dim", "8"] + extra)
        except SystemExit as exc:
            rc = exc.code
        assert rc == 2 and len(capsys.readouterr().err.strip().splitlines()) == 1
    assert not (tmp_path / "edge").exists() and not (tmp_path / "local").exists()


# --- errors a program can tell apart -----------------------------------------------------------
def test_an_outage_is_not_a_value_error():
    from matry_index.backends.qdrant.client import QdrantBackend
    try:
        QdrantBackend(DIM, (8, 16), url="http://127.0.0.1:9", timeout=1, retries=1)
    except ValueError:
        pytest.fail("an unreachable server was caught by `except ValueError`")
    except Unavailable as exc:
        assert isinstance(exc, ConnectionError) and "unreachable" in str(exc)


@pytest.mark.parametrize("make, code", [
    (lambda t: ["search", "--index", str(t / "nowhere"), "--queries", str(t / "x.npy")], 2),
    (lambda t: ["search", "--index", str(t / "corrupt"), "--queries", str(t / "x.npy")], 3),
    (lambda t: ["search", "--index", str(t / "server"), "--queries", str(t / "x.npy"), "--url",
                "http://127.0.0.1:9"], 4),
])
def test_cli_exit_codes_tell_the_kinds_apart(make, code, tmp_path, vectors, capsys):
    np.save(tmp_path / "x.npy", vectors[:2])
    filled("faiss", tmp_path, vectors, persistent=False).save(tmp_path / "corrupt")
    (tmp_path / "corrupt" / "backend" / "records.jsonl").write_text("edited\n")
    server = filled("qdrant", tmp_path, vectors, persistent=False)
    server.save(tmp_path / "server")
    rewrite_manifest(tmp_path / "server", lambda m: m["backend_options"].update(
        snapshot=False, url="http://127.0.0.1:9", timeout=1, retries=1))
    capsys.readouterr()
    assert main(make(tmp_path)) == code
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
