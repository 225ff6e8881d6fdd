"""The errors matry_index raises, typed so that a program can tell them apart.

Every error is a :class:`MatryIndexError`; what to do about one depends on its kind:

============================  ==========================================  =========================
class                         what happened                               also an instance of
============================  ==========================================  =========================
:class:`InvalidInput`         the caller passed something wrong (shape,   ``ValueError``
                              NaN, unknown id, bad option, bad file given
                              as input); nothing changed
:class:`AdaptorMismatchError` vectors, an index or a store made for       ``ValueError``
                              another adaptor
:class:`Corrupt`              a saved index, adaptor, store or journal
                              fails its checks (edited, truncated,
                              half-written, crafted); nothing was opened
:class:`Unavailable`          a server did not answer after the retries   ``ConnectionError``
:class:`StorageError`         the local filesystem refused a read or      ``OSError``
                              write (permissions, I/O)
:class:`NoSpace`              not enough free disk space; nothing was     ``OSError``
                              written
:class:`Conflict`             another process holds the store or is
                              saving to the same place
============================  ==========================================  =========================

``except ValueError`` therefore catches bad input and never an outage or a full disk; the CLI
maps each class to its own exit code (:data:`EXIT_CODES`).
"""
from __future__ import annotations


class MatryIndexError(Exception):
    """Root of every error matry_index raises on purpose; the message says what was wrong."""


class InvalidInput(MatryIndexError, ValueError):
    """Bad input from the caller: the message says what was expected. Nothing changed."""


class AdaptorMismatchError(InvalidInput):
    """An index and an adaptor (or two adaptors) that do not belong together."""


class Corrupt(MatryIndexError):
    """A saved file or store fails its checks: it was edited, truncated, half-written or
    crafted. Nothing was opened or changed."""


class Unavailable(MatryIndexError, ConnectionError):
    """A server or cluster could not be reached (after the configured retries)."""


class StorageError(MatryIndexError, OSError):
    """The local filesystem refused an operation (permissions, I/O errors)."""


class NoSpace(StorageError):
    """Not enough free disk space for a write; nothing was written."""


class Conflict(MatryIndexError):
    """Another process holds the store (a lock), or saved to the same place at the same time."""


#: the CLI's exit code for each kind (argparse's usage errors are 2 as well; 1 is a bug)
EXIT_CODES: dict[type[MatryIndexError], int] = {
    InvalidInput: 2, Corrupt: 3, Unavailable: 4, StorageError: 5, Conflict: 6,
}
#: exit code of a call that needs an optional dependency that is not installed
MISSING_EXTRA_EXIT = 7


def exit_code(exc: BaseException) -> int:
    """The CLI's exit code for ``exc`` (most specific class first; 1 for anything unplanned)."""
    for kind, code in EXIT_CODES.items():
        if isinstance(exc, kind):
            return code
    if isinstance(exc, OSError):
        return EXIT_CODES[StorageError]
    return 1


__all__ = ["MatryIndexError", "InvalidInput", "AdaptorMismatchError", "Corrupt", "Unavailable",
           "StorageError", "NoSpace", "Conflict", "EXIT_CODES", "MISSING_EXTRA_EXIT", "exit_code"]
