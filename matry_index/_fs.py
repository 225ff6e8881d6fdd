"""Atomic file and directory writes, shared by everything that saves to disk.

A save never deletes what it did not write: :func:`atomic_directory` replaces an existing
``target`` only when ``is_ours(target)`` recognises it as an earlier save of the same kind,
and refuses anything else (a directory with someone's files, a regular file, the working
directory). A save runs in a temporary sibling ``.<name>.tmp-<pid>-…`` and is swapped in with
two renames (``target`` → ``.<name>.old``, temporary → ``target``); a crash between them
leaves the complete previous save as ``.<name>.old``, which :func:`recover_directory`
(called by every load and every save) moves back. Temporary directories of processes that
died mid-save are removed by the next save.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from ._validation import MatryIndexError

TMP_MARK = ".tmp-"


def _old_copy(target: Path) -> Path:
    return target.with_name(f".{target.name}.old")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def _remove_stale_temporaries(target: Path) -> None:
    """Delete ``.<name>.tmp-<pid>-*`` siblings whose writer process is gone."""
    prefix = f".{target.name}{TMP_MARK}"
    if not target.parent.is_dir():
        return
    for entry in target.parent.iterdir():
        if not entry.name.startswith(prefix) or not entry.is_dir():
            continue
        pid_text = entry.name[len(prefix):].split("-", 1)[0]
        if pid_text.isdigit() and not _pid_alive(int(pid_text)):
            shutil.rmtree(entry, ignore_errors=True)


def recover_directory(target: str | Path) -> None:
    """Finish a swap that a crash interrupted.

    ``target`` missing but ``.<name>.old`` present: the crash came between the two renames,
    and ``.old`` is the complete previous save — move it back. Both present: the crash came
    after the swap, while the old copy was being removed — finish removing it.
    """
    target = Path(os.path.abspath(target))
    old = _old_copy(target)
    if not old.exists():
        return
    if target.exists():
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(old, target)


def _refuse_unless_ours(target: Path, is_ours: Callable[[Path], bool], what: str) -> None:
    if not os.path.lexists(target):
        return
    resolved, cwd = target.resolve(), Path.cwd().resolve()
    if resolved == cwd or resolved in cwd.parents:
        raise MatryIndexError(f"refusing to save {what} over {target}: it is the working directory "
                              "or one of its parents; give a new directory name")
    if target.is_symlink() or not target.is_dir():
        raise MatryIndexError(f"refusing to save {what} over {target}: it exists and is not a directory "
                              f"of a saved {what}; give a new path or remove it yourself")
    if any(target.iterdir()) and not is_ours(target):
        raise MatryIndexError(f"refusing to save {what} into {target}: it holds files that are not a "
                              f"saved {what} (nothing was changed); give a new or empty directory")


def _fsync_tree(root: Path) -> None:
    for p in root.rglob("*"):
        if p.is_file():
            with p.open("rb") as fh:
                os.fsync(fh.fileno())
    _fsync_dir(root)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # some filesystems cannot open directories
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_directory(target: str | Path, is_ours: Callable[[Path], bool],
                     what: str = "index") -> Iterator[Path]:
    """Yield a fresh temporary sibling of ``target``; on success it replaces ``target``.

    ``is_ours(path)`` says whether an existing non-empty ``target`` is an earlier save of this
    kind (so it may be replaced); anything else is refused before a byte is written. Files are
    fsynced before the swap, so after a crash ``target`` (or, between the two renames, its
    ``.old`` copy, restored by :func:`recover_directory`) is a complete save. On an exception
    the temporary directory is removed and ``target`` is untouched.
    """
    target = Path(os.path.abspath(target))  # "." and ".." get a name to refuse by
    _refuse_unless_ours(target, is_ours, what)
    recover_directory(target)
    _refuse_unless_ours(target, is_ours, what)
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(target)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}{TMP_MARK}{os.getpid()}-"))
    try:
        yield tmp
        _fsync_tree(tmp)
        if target.exists():
            old = _old_copy(target)
            os.replace(target, old)
            os.replace(tmp, target)
            _fsync_dir(target.parent)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
            _fsync_dir(target.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def atomic_write(path: str | Path, write: Callable[[BinaryIO], object]) -> None:
    """Write one file through ``write(fh)`` into a temporary sibling, then rename it over ``path``.

    A reader sees either the old file or the complete new one, never a half-written file; on an
    exception the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """:func:`atomic_write` for UTF-8 text."""
    atomic_write(path, lambda fh: fh.write(text.encode("utf-8")))


def free_bytes(path: str | Path) -> int:
    """Free bytes on the filesystem holding ``path`` (or its nearest existing parent)."""
    p = Path(path).absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return shutil.disk_usage(p).free


def unallocated_bytes(root: str | Path) -> int:
    """Bytes that sparse files under ``root`` may still claim from the filesystem.

    Engines that preallocate memory-mapped files sparsely (Qdrant's WAL segments, vector
    chunks and payload pages) write into these holes later; on a full disk that write is a
    SIGBUS, not an error, so the space has to be there before the engine touches the files.
    """
    debt = 0
    for p in Path(root).rglob("*"):
        try:
            st = p.lstat()
        except OSError:
            continue
        if p.is_file() and not p.is_symlink():
            debt += max(0, st.st_size - st.st_blocks * 512)
    return debt


def require_free_space(path: str | Path, needed: int, what: str) -> None:
    """Raise a clear error unless ``needed`` bytes are free where ``path`` lives."""
    free = free_bytes(path)
    if free < needed:
        raise MatryIndexError(f"not enough free disk space for {what} at {path}: "
                              f"{free / 2**20:.0f} MiB free, {needed / 2**20:.0f} MiB needed "
                              "(nothing was written); free some space and retry")
