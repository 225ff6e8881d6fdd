"""Atomic file and directory writes, shared by everything that saves to disk.

A save never deletes what it did not write: :func:`atomic_directory` replaces an existing
``target`` only when ``is_ours(target)`` recognises it as an earlier save of the same kind,
and refuses anything else (a directory with someone's files, a symbolic link, a regular file,
the working directory). A save runs in a temporary sibling ``.<name>.tmp-<pid>-…`` and is
swapped in with two renames (``target`` → ``.<name>.matry-old-<pid>-…``, temporary →
``target``); a crash between them leaves the complete previous save under that name, which
:func:`recover_directory` (called by every load and every save) moves back. Only siblings with
that marker *and* the shape of a save of this kind are ever moved or deleted: a user's own
``.<name>.old`` backup is left alone. Temporary directories of processes that died mid-save
are removed by the next save.

Every ``OSError`` a save meets becomes a typed error: :class:`~matry_index.errors.NoSpace` for a
full disk or quota, :class:`~matry_index.errors.Conflict` when another process swapped a save
into the same place at the same moment, :class:`~matry_index.errors.StorageError` otherwise.
"""
from __future__ import annotations

import errno
import os
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from .errors import Conflict, InvalidInput, MatryIndexError, NoSpace, StorageError

TMP_MARK = ".tmp-"
OLD_MARK = ".matry-old-"
_FULL = (errno.ENOSPC, errno.EDQUOT)


def storage_error(exc: OSError, doing: str) -> StorageError:
    """``exc`` as the typed error a caller can branch on (:class:`NoSpace` for a full disk)."""
    if exc.errno in _FULL:
        return NoSpace(f"not enough disk space to {doing}: {exc.strerror or exc} (nothing was changed); "
                       "free some space and retry")
    return StorageError(f"cannot {doing}: {exc}")


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
        if not entry.name.startswith(prefix) or entry.is_symlink() or not entry.is_dir():
            continue
        pid_text = entry.name[len(prefix):].split("-", 1)[0]
        if pid_text.isdigit() and not _pid_alive(int(pid_text)):
            shutil.rmtree(entry, ignore_errors=True)


def _old_copies(target: Path, is_ours: Callable[[Path], bool]) -> list[Path]:
    """Previous saves a swap set aside (``.<name>.matry-old-…`` directories that are saves of
    this kind), newest first."""
    prefix = f".{target.name}{OLD_MARK}"
    if not target.parent.is_dir():
        return []
    found = [e for e in target.parent.iterdir()
             if e.name.startswith(prefix) and not e.is_symlink() and e.is_dir() and is_ours(e)]
    return sorted(found, key=lambda e: e.stat().st_mtime, reverse=True)


def recover_directory(target: str | Path, is_ours: Callable[[Path], bool]) -> None:
    """Finish a swap that a crash interrupted.

    ``target`` missing but a set-aside previous save present: the crash came between the two
    renames, and that copy is the complete previous save — move it back. Both present: the
    crash came after the swap, while the old copy was being removed — finish removing it.
    Nothing that ``is_ours`` does not recognise is touched.
    """
    target = Path(os.path.abspath(target))
    olds = _old_copies(target, is_ours)
    if not olds:
        return
    try:
        if not os.path.lexists(target):
            os.replace(olds[0], target)
            olds = olds[1:]
        for old in olds:
            shutil.rmtree(old, ignore_errors=True)
    except OSError as exc:
        raise storage_error(exc, f"restore the previous save of {target}") from exc


def _refuse_unless_ours(target: Path, is_ours: Callable[[Path], bool], what: str) -> None:
    if not os.path.lexists(target):
        return
    resolved, cwd = target.resolve(), Path.cwd().resolve()
    if resolved == cwd or resolved in cwd.parents:
        raise InvalidInput(f"refusing to save {what} over {target}: it is the working directory "
                           "or one of its parents; give a new directory name")
    if target.is_symlink() or not target.is_dir():
        raise InvalidInput(f"refusing to save {what} over {target}: it exists and is not a directory "
                           f"of a saved {what}; give a new path or remove it yourself")
    if any(target.iterdir()) and not is_ours(target):
        raise InvalidInput(f"refusing to save {what} into {target}: it holds files that are not a "
                           f"saved {what} (nothing was changed); give a new or empty directory")


def files_below(root: Path) -> list[str]:
    """Every file and link under ``root`` as a relative path, symbolic links included but
    never followed (a link to a directory is one entry, not its contents)."""
    out = []
    for folder, dirs, files in os.walk(root, followlinks=False):
        base = Path(folder)
        out += [str((base / name).relative_to(root)) for name in files]
        out += [str((base / name).relative_to(root)) for name in dirs if (base / name).is_symlink()]
    return sorted(out)


def links_below(root: Path) -> list[str]:
    """The symbolic links under ``root`` (relative paths), without following any."""
    return [p for p in files_below(root) if (root / p).is_symlink()]


def _fsync_tree(root: Path) -> None:
    for p in root.rglob("*"):
        if p.is_file() and not p.is_symlink():
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


def _swap_in(tmp: Path, target: Path) -> None:
    """Put the finished temporary directory in ``target``'s place (see the module docstring)."""
    try:
        if os.path.lexists(target):
            old = target.with_name(f".{target.name}{OLD_MARK}{os.getpid()}-{secrets.token_hex(4)}")
            os.replace(target, old)
            try:
                os.replace(tmp, target)
            except BaseException:
                os.replace(old, target)  # still alive: put the previous save back at once
                raise
            _fsync_dir(target.parent)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
            _fsync_dir(target.parent)
    except OSError as exc:
        if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
            raise Conflict(f"another process saved to {target} at the same time; this save was not "
                           "applied (the other one was): save again if yours should win") from exc
        raise


@contextmanager
def atomic_directory(target: str | Path, is_ours: Callable[[Path], bool],
                     what: str = "index") -> Iterator[Path]:
    """Yield a fresh temporary sibling of ``target``; on success it replaces ``target``.

    ``is_ours(path)`` says whether an existing non-empty ``target`` is an earlier save of this
    kind (so it may be replaced); anything else is refused before a byte is written. Files are
    fsynced before the swap, so after a crash ``target`` (or, between the two renames, its
    set-aside copy, restored by :func:`recover_directory`) is a complete save. On an exception
    the temporary directory is removed and ``target`` is untouched; an ``OSError`` comes out as
    :class:`~matry_index.errors.NoSpace` / :class:`~matry_index.errors.StorageError`.
    """
    target = Path(os.path.abspath(target))  # "." and ".." get a name to refuse by
    _refuse_unless_ours(target, is_ours, what)
    recover_directory(target, is_ours)
    _refuse_unless_ours(target, is_ours, what)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_temporaries(target)
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}{TMP_MARK}{os.getpid()}-"))
    except OSError as exc:
        raise storage_error(exc, f"save the {what} to {target}") from exc
    try:
        yield tmp
        _fsync_tree(tmp)
        _swap_in(tmp, target)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, MatryIndexError):
            raise
        raise storage_error(exc, f"save the {what} to {target}") from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def atomic_write(path: str | Path, write: Callable[[BinaryIO], object]) -> None:
    """Write one file through ``write(fh)`` into a temporary sibling, then rename it over ``path``.

    A reader sees either the old file or the complete new one, never a half-written file; on an
    exception the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    except OSError as exc:
        raise storage_error(exc, f"write {path}") from exc
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, MatryIndexError):
            raise
        raise storage_error(exc, f"write {path}") from exc
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
        raise NoSpace(f"not enough free disk space for {what} at {path}: "
                      f"{free / 2**20:.0f} MiB free, {needed / 2**20:.0f} MiB needed "
                      "(nothing was written); free some space and retry")
