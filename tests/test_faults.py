"""Fault injection: a write that fails at any internal step leaves the index exactly as before,
and a process killed in the middle of a save or an add reopens to its last acknowledged state.

* every call a save makes to the filesystem (each file, each fsync, each rename) is made to fail
  in turn, on every backend and for the adaptor: the earlier save must still load unchanged,
  the in-memory index must be unchanged, and no temporary directory may be left behind;
* every batch of an add and an upsert is made to fail in turn, on every backend;
* a child process is SIGKILLed while it is saving (FAISS) or adding (Qdrant local mode on disk,
  Qdrant Edge), and the store it leaves behind is reopened;
* Qdrant Edge on a filesystem that is really full: an error, never the SIGBUS that kills the
  process (needs a tmpfs mount, so root; skipped where mounting is not allowed).
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import faiss
import numpy as np
import pytest

from matry_index import MatryoshkaAdaptor, MatryoshkaIndex, StorageError

from .helpers import BACKENDS, fail_on_call, ids_of, make_index

DIM, LEVELS = 16, (8, 16)
REPO = Path(__file__).resolve().parents[1]


class Injected(OSError):
    """The fault this suite injects (an OSError, like a real full disk or I/O error)."""


class FailNth:
    """Wrap filesystem calls so that the n-th of them, counted across all, raises."""

    TARGETS = [(os, "replace"), (os, "fsync"), (np, "save"), (np, "savez"), (faiss, "write_index"),
               (Path, "write_text"), (Path, "mkdir")]

    def __init__(self, monkeypatch, n: int | None):
        self.calls, self.n = 0, n
        for owner, name in self.TARGETS:
            monkeypatch.setattr(owner, name, self._wrap(getattr(owner, name)))

    def _wrap(self, real):
        def call(*args, **kwargs):
            self.calls += 1
            if self.calls == self.n:
                raise Injected(f"injected failure at call {self.n} ({real.__name__})")
            return real(*args, **kwargs)
        return call


def _snapshot(index, queries):
    return len(index), sorted(map(str, (i for i, _ in index.scan()))), \
        [ids_of(h) for h in index.search(queries, 5, exact=True)]


def _index(kind, tmp_path, rng):
    index = make_index(kind, tmp_path, dim=DIM, levels=LEVELS, persistent=False,
                       adaptor=MatryoshkaAdaptor(DIM, LEVELS, rotation=np.linalg.qr(rng.standard_normal((DIM, DIM)))[0]))
    vectors = rng.standard_normal((60, DIM)).astype(np.float32)
    index.add([f"d{i}" for i in range(40)], vectors[:40], [{"i": i} for i in range(40)])
    return index, vectors


def _saved_despite(monkeypatch, n: int, save) -> bool:
    """Run ``save()`` with the n-th filesystem call failing; whether it completed anyway."""
    with monkeypatch.context() as m:
        FailNth(m, n)
        try:
            save()
        except Injected:
            return False
        except StorageError as exc:  # an OSError inside a save comes out typed
            assert isinstance(exc.__cause__, Injected), exc
            return False
    return True


def _save_calls(index, tmp_path, monkeypatch) -> int:
    with monkeypatch.context() as m:
        counter = FailNth(m, None)
        index.save(tmp_path / "count")
    shutil.rmtree(tmp_path / "count")
    return counter.calls


def test_an_adaptor_save_failing_at_any_step_keeps_the_previous_one(tmp_path, monkeypatch, rng):
    first = MatryoshkaAdaptor(DIM, LEVELS, rotation=np.linalg.qr(rng.standard_normal((DIM, DIM)))[0])
    second = MatryoshkaAdaptor(DIM, LEVELS, rotation=np.linalg.qr(rng.standard_normal((DIM, DIM)))[0])
    first.save(tmp_path / "a")
    for n in range(1, 12):
        done = _saved_despite(monkeypatch, n, lambda: second.save(tmp_path / "a"))
        assert MatryoshkaAdaptor.load(tmp_path / "a").content_hash == \
            (second if done else first).content_hash
        if done:
            first.save(tmp_path / "a")
        assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]


@pytest.mark.parametrize("kind", ["qdrant", "qdrant-edge"])
@pytest.mark.parametrize("upsert", [False, True])
def test_an_add_failing_at_any_batch_changes_nothing(kind, upsert, tmp_path, monkeypatch, rng):
    index, vectors = _index(kind, tmp_path, rng)
    index.backend.batch_size = 7
    queries = vectors[50:53]
    before = _snapshot(index, queries)
    ids = [f"d{i}" for i in range(20, 40)] + [f"n{i}" for i in range(10)] if upsert else [f"n{i}" for i in range(30)]
    real = index.backend._upsert_batch
    for n in range(1, 6):
        with monkeypatch.context() as m:
            m.setattr(index.backend, "_upsert_batch", fail_on_call(real, n, Injected(f"batch {n}")))
            with pytest.raises(Injected):
                (index.upsert if upsert else index.add)(ids, vectors[20:50], [{"new": n}] * 30)
        assert _snapshot(index, queries) == before, n
    index.close()


@pytest.mark.parametrize("step", ["level_norms", "_reserve", "_sync_coarse"])
def test_a_faiss_add_failing_at_any_step_changes_nothing(step, tmp_path, monkeypatch, rng):
    from matry_index.backends.faiss import rows as row_store
    index, vectors = _index("faiss", tmp_path, rng)
    before = _snapshot(index, vectors[50:53])

    def boom(*args, **kwargs):
        raise Injected(step)
    if step == "level_norms":
        monkeypatch.setattr(row_store, "level_norms", boom)
    else:
        owner = index.backend.rows if step == "_reserve" else index.backend
        monkeypatch.setattr(owner, step, boom)
    with pytest.raises(Injected):
        index.upsert(["d1", "new"], vectors[45:47])
    monkeypatch.undo()
    assert _snapshot(index, vectors[50:53]) == before


# --- a process killed mid-write ---------------------------------------------------------------
CHILD = textwrap.dedent("""
    import sys, time
    import numpy as np
    from matry_index import MatryoshkaIndex
    from matry_index.backends import records
    kind, root, slow = sys.argv[1], sys.argv[2], float(sys.argv[3])
    X = np.random.default_rng(0).standard_normal((4000, 16)).astype(np.float32)
    if kind == "faiss":
        idx = MatryoshkaIndex(16, levels=(8, 16), coarse="flat")
        real_write = records.write_records
        def slow_write(*args):              # make each save last long enough to be killed inside
            print(f"inside {current}", flush=True)
            time.sleep(slow)
            return real_write(*args)
        records.write_records = slow_write
        import matry_index.backends.faiss.backend as fb
        fb.write_records = slow_write
    else:
        options = {"path": root + "/store", "batch_size": 20}
        idx = MatryoshkaIndex(16, levels=(8, 16), backend=kind, **options)
        real_batch = idx.backend._upsert_batch
        def slow_batch(*args):              # make each add last long enough to be killed inside
            print(f"inside {current}", flush=True)
            time.sleep(slow / 10)
            return real_batch(*args)
        idx.backend._upsert_batch = slow_batch
    for current in range(20):
        i = current
        idx.add([f"b{i}-{j}" for j in range(200)], X[i * 200:(i + 1) * 200])
        if kind == "faiss":
            idx.save(root + "/ix")
        print(f"ack {i}", flush=True)
""")


def _reopen(kind, root: Path):
    if kind == "faiss":
        return MatryoshkaIndex.load(root / "ix")
    return MatryoshkaIndex(16, levels=(8, 16), backend=kind, path=str(root / "store"))


@pytest.mark.parametrize("kind", BACKENDS)
def test_a_killed_writer_reopens_to_its_last_acknowledged_state(kind, tmp_path):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = {**os.environ, "PYTHONPATH": str(REPO), "TQDM_DISABLE": "1"}
    for attempt, (wait_for, delay) in enumerate([(1, 0.0), (2, 0.2), (2, 0.4)]):
        root = tmp_path / f"run{attempt}"
        root.mkdir()
        child = subprocess.Popen([sys.executable, str(script), kind, str(root), "0.5"], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, env=env)
        acked = -1
        deadline = time.monotonic() + 120
        for line in child.stdout:
            if line.startswith("ack"):
                acked = int(line.split()[1])
            if line.strip() == f"inside {wait_for}":
                time.sleep(delay)  # inside the write (each lasts about 0.5 s after its first "inside")
                child.send_signal(signal.SIGKILL)
                break
            assert time.monotonic() < deadline, "the child never got going"
        rest, err = child.communicate(timeout=60)
        acked = max([acked] + [int(x.split()[1]) for x in rest.splitlines() if x.startswith("ack")])
        assert child.returncode == -signal.SIGKILL, err
        assert acked >= 0
        journal = root / "store" / "matry_index.journal"
        if kind != "faiss":  # killed inside an add: its undo journal is there to replay
            assert journal.exists(), attempt
        index = _reopen(kind, root)
        assert not journal.exists()
        got = sorted(i for i, _ in index.scan())
        expected = {200 * (acked + 1), 200 * (acked + 2)}  # the in-flight write landed whole, or not at all
        assert len(got) in expected, (attempt, acked, len(got))
        batches = {i.split("-")[0] for i in got}
        assert got == sorted(f"{b}-{j}" for b in batches for j in range(200))
        if kind == "faiss":  # the killed save's temporary directory goes with the next save
            assert list(root.glob(".ix.tmp*"))
            index.save(root / "ix")
            assert not list(root.glob(".ix.tmp*")) and not list(root.glob(".ix.matry-old-*"))
        index.close()


# --- a filesystem that is really full ---------------------------------------------------------
FULL_DISK_CHILD = textwrap.dedent("""
    import sys
    import numpy as np
    from matry_index import MatryIndexError, MatryoshkaIndex
    root = sys.argv[1]
    rng = np.random.default_rng(0)
    try:
        idx = MatryoshkaIndex(64, levels=(16, 64), backend="qdrant-edge", path=root + "/edge")
        start = len(idx)
        for i in range(start, start + 1_000_000, 10_000):  # until the disk is full
            idx.add([f"r{j}" for j in range(i, i + 10_000)], rng.standard_normal((10_000, 64)))
            print("added", len(idx), flush=True)
    except MatryIndexError as exc:
        print("refused:", exc, flush=True)
""")


@pytest.mark.slow
def test_edge_on_a_full_filesystem_is_an_error_not_a_sigbus(tmp_path):
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=300m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.strip()}")
    try:
        script = tmp_path / "child.py"
        script.write_text(FULL_DISK_CHILD)
        env = {**os.environ, "PYTHONPATH": str(REPO), "TQDM_DISABLE": "1"}
        outputs = {}
        for run in ("fill", "reopen"):  # add until refused; then open the shard on the full disk
            child = subprocess.run([sys.executable, str(script), str(mount)], capture_output=True, text=True,
                                   env=env, timeout=300)
            assert child.returncode == 0, (run, child.returncode, child.stderr[-2000:])
            assert "refused: not enough free disk space" in child.stdout, (run, child.stdout[-2000:])
            outputs[run] = child.stdout
        added = [int(line.split()[1]) for line in outputs["fill"].splitlines() if line.startswith("added")]
        subprocess.run(["mount", "-o", "remount,size=900m", str(mount)], check=True)
        index = MatryoshkaIndex(64, levels=(16, 64), backend="qdrant-edge", path=str(mount / "edge"))
        assert len(index) == max(added, default=0) and len(index) > 0  # what was acknowledged is there
        index.close()
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)
