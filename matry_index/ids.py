"""User ids ↔ the unsigned 63-bit integer keys that FAISS and Qdrant store.

Users pass strings or non-negative ints. Ints keep their value (so existing numeric ids stay
readable in the engine); strings are hashed (BLAKE2b, 63 bits). Every backend keeps the user
id next to its key and refuses a second id that hashes to a key already taken, so a
collision can never silently overwrite a record.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Union

import numpy as np

from .errors import InvalidInput

UserId = Union[str, int]
_MAX_KEY = (1 << 63) - 1


def key_for(user_id: UserId) -> int:
    """The engine key of one user id."""
    if isinstance(user_id, (bool, np.bool_)):
        raise InvalidInput(f"ids must be str or int, not bool ({user_id!r})")
    if isinstance(user_id, (int, np.integer)):
        if not 0 <= int(user_id) <= _MAX_KEY:
            raise InvalidInput(f"integer ids must be in 0..2^63-1; got {user_id}")
        return int(user_id)
    if isinstance(user_id, str):
        if not user_id:
            raise InvalidInput("ids must not be empty strings")
        digest = hashlib.blake2b(utf8(user_id, "the id"), digest_size=8).digest()
        return int.from_bytes(digest, "little") & _MAX_KEY
    raise InvalidInput(f"ids must be str or int; got {type(user_id).__name__} ({user_id!r})")


def utf8(text: str, what: str) -> bytes:
    """``text`` encoded as UTF-8, or a clear error for a string that has no UTF-8 form (a lone
    surrogate, e.g. from a file decoded with ``errors="surrogateescape"``): every engine stores
    strings as UTF-8, so such a string could be neither stored nor saved."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(f"{what} {text!r} is not valid Unicode text (it holds a lone surrogate); "
                           "decode the source with errors='replace' or store its bytes in another form") from None


def normalize_id(user_id: UserId) -> UserId:
    """numpy integers become plain ints, so ids round-trip through JSON unchanged."""
    return int(user_id) if isinstance(user_id, np.integer) else user_id


def id_list(ids: Iterable[UserId], what: str = "ids") -> list[UserId]:
    """``ids`` as a list, refusing a bare string or bytes.

    ``delete("ab")`` must not mean ``delete(["a", "b"])``: a string iterates per character,
    so one id passed where a list is expected would silently address other records.
    """
    if isinstance(ids, (str, bytes, bytearray)):
        raise InvalidInput(f"{what} must be a list of ids, not a single {type(ids).__name__} "
                              f"({ids!r}); wrap one id in a list: [{ids!r}]")
    if isinstance(ids, (int, np.integer)):
        raise InvalidInput(f"{what} must be a list of ids; got the single int {ids!r} (use [{ids!r}])")
    try:
        return [normalize_id(i) for i in ids]
    except TypeError:
        raise InvalidInput(f"{what} must be a list of ids; got {type(ids).__name__}") from None


def keys_for(ids: Iterable[UserId]) -> tuple[list[UserId], np.ndarray]:
    """Validated ids (duplicates in one call are refused) and their keys as int64."""
    ids = id_list(ids)
    keys = np.fromiter((key_for(i) for i in ids), dtype=np.int64, count=len(ids))
    if len(np.unique(keys)) != len(keys):
        seen: set[int] = set()
        dup = next(i for i, k in zip(ids, keys) if k in seen or seen.add(int(k)))
        raise InvalidInput(f"duplicate id in one call: {dup!r}")
    return ids, keys


def check_count(ids: Sequence, n: int, what: str = "vectors") -> None:
    if len(ids) != n:
        raise InvalidInput(f"got {len(ids)} ids for {n} {what}")
