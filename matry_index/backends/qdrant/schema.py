"""The data model both Qdrant backends share: how a collection (or an Edge shard) is laid out.

Vector names per level, point ids from user ids, payloads that carry the user's id and
metadata, the collection's own metadata (schema, adaptor hash, store id) and the layout of its
named vectors. qdrant-client and Qdrant Edge speak this one model through two Python APIs.
"""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...kernels import unit_prefix
from ...codes import COARSE_CODES, ROW_CODES as CODES, CoarseCode
from ...errors import AdaptorMismatchError, Corrupt, InvalidInput
from ...ids import UserId

ID_FIELD = "_matry_id"          # the user's id, kept in the payload so results return it as given
_NAMESPACE = uuid.UUID("6f1c5a52-3b1e-4f0a-9c55-6d61747279a1")
FORMAT_VERSION = 1


#: the coarse code of each ``quantization`` (:mod:`matry_index.codes`): the graph walks float
#: vectors, 8-bit codes or 1-bit codes
CODE_OF_QUANTIZATION = {None: "hnsw", "int8": "hnsw-int8", "binary": "hnsw-binary"}
QUANTIZATIONS = tuple(CODE_OF_QUANTIZATION)
#: the coarse graph: twice Qdrant's default links and a wider build. At 1M vectors the walk
#: over the 128-d prefix then reached recall@10 0.99 with 480 candidates from ef 1,440 (3.4 ms)
#: where Qdrant's m 16 / ef_construct 100 needed 2,000 from 4,000 (13 ms), for 42 more bytes
#: per vector at load (benchmarks/results/qdrant_layouts.md)
HNSW_M, EF_CONSTRUCT = 32, 200
INT8_QUANTILE = 0.99  # int8 codes span this quantile of the values: outliers clip, the rest keep resolution


@dataclass(frozen=True)
class Layout:
    """How a collection stores each named vector: the layout both Qdrant backends create.

    The coarse (first) vector carries the HNSW graph and, with ``quantization``, its 8-bit
    (``"int8"``) or 1-bit (``"binary"``) codes held in RAM; the graph walk then reads only
    the codes, so with ``on_disk`` the coarse originals stay on disk. Every other vector is
    only read for the few candidates handed to it, so it has no graph and, with ``on_disk``,
    lives in memory-mapped files the OS pages in on demand. The defaults are what won in
    ``benchmarks/qdrant_layouts.py`` (docs/index.md has the table).
    """

    quantization: str | None = "int8"
    on_disk: bool = True
    codes: str = "float32"

    def __post_init__(self) -> None:
        if self.quantization not in QUANTIZATIONS:
            raise InvalidInput(f"quantization must be one of {QUANTIZATIONS}; got {self.quantization!r}")
        if not isinstance(self.on_disk, bool):
            raise InvalidInput(f"on_disk must be True or False; got {self.on_disk!r}")
        if self.codes not in CODES:
            raise InvalidInput(f"codes must be one of {CODES}; got {self.codes!r}")

    @property
    def datatype(self) -> str:
        """How Qdrant stores every vector: "float16" halves the originals; "float32" otherwise
        (with ``codes="int8"`` the originals stay float32 on disk, and RAM holds 8-bit codes)."""
        return "float16" if self.codes == "float16" else "float32"

    @property
    def code(self) -> CoarseCode:
        """The coarse stage this layout gives the collection."""
        return COARSE_CODES[CODE_OF_QUANTIZATION[self.quantization]]

    def plan(self, levels: tuple[int, ...]) -> list[tuple[str, int, bool, str | None, bool]]:
        """(name, size, has graph, its codes in RAM — "int8", "binary" or None —, originals on
        disk) for each named vector. ``codes="int8"`` gives every vector 8-bit codes in RAM
        (Qdrant's scalar quantization; the coarse one keeps ``quantization`` if that is set)."""
        out = []
        for i, (name, size) in enumerate(zip(vector_names(levels), levels)):
            coarse = i == 0
            quantised = (self.quantization if coarse else None) or ("int8" if self.codes == "int8" else None)
            # the coarse originals are what an unquantised graph walk reads: they stay in RAM
            on_disk = self.on_disk and (quantised is not None or not coarse)
            out.append((name, size, coarse, quantised, on_disk))
        return out


    def ram_bytes_per_vector(self, levels: tuple[int, ...], hnsw_m: int) -> dict[str, float]:
        """What this layout keeps resident per vector, by part: the codes it pins in RAM, the
        vectors it caches in RAM, and the coarse graph's level-0 links (2·m of 4 bytes)."""
        codes = vectors = 0.0
        for _name, size, _graph, quantised, on_disk in self.plan(levels):
            codes += {"int8": size, "binary": -(-size // 8)}.get(quantised or "", 0)
            vectors += 0 if on_disk else size * (2 if self.datatype == "float16" else 4)
        return {"codes": codes, "vectors": vectors, "graph": 2 * hnsw_m * 4}


#: payload index kinds for filtered search: strings ("keyword") and numbers ("float", which
#: holds integers too, so a range on it means what docs/filters.md says: numbers by value)
PAYLOAD_INDEX_KINDS = ("keyword", "float")
MAX_PAYLOAD_INDEXES = 64


def check_payload_indexes(indexes: Any) -> dict[str, str]:
    """``{field: kind}`` checked: string field names, kinds from :data:`PAYLOAD_INDEX_KINDS`."""
    if indexes is None:
        return {}
    if not isinstance(indexes, dict) or not all(isinstance(f, str) and f for f in indexes):
        raise InvalidInput(f"payload_indexes must map field names to kinds; got {indexes!r}")
    if len(indexes) > MAX_PAYLOAD_INDEXES:
        raise InvalidInput(f"at most {MAX_PAYLOAD_INDEXES} payload indexes; got {len(indexes)}")
    bad = {f: k for f, k in indexes.items() if k not in PAYLOAD_INDEX_KINDS}
    if bad:
        raise InvalidInput(f"payload index kinds must be one of {PAYLOAD_INDEX_KINDS}; got {bad}")
    reserved = {ID_FIELD, EXACT_FIELD} & set(indexes)
    if reserved:
        raise InvalidInput(f"{sorted(reserved)} are matry_index's own payload fields")
    return dict(indexes)


def vector_names(levels: tuple[int, ...]) -> list[str]:
    """``d64``, ``d128``, … for the prefixes and ``full`` for the whole vector."""
    return [f"d{m}" for m in levels[:-1]] + ["full"]


def point_id(user_id: UserId) -> int | str:
    """Qdrant point id of a user id: ints as they are, strings as a UUID5 of the string."""
    if isinstance(user_id, int):
        return user_id
    return str(uuid.uuid5(_NAMESPACE, user_id))


def level_vectors(vectors: np.ndarray, levels: tuple[int, ...]) -> dict[str, np.ndarray]:
    """Each level's prefix of unit-length ``vectors``, re-normalised (stored with DOT distance,
    so scores are cosines)."""
    return {name: unit_prefix(vectors, m) for name, m in zip(vector_names(levels), levels)}


EXACT_FIELD = "_matry_exact"    # the metadata as JSON text, where the engine may round floats


def _has_float(value: Any) -> bool:
    if isinstance(value, float):
        return True
    if isinstance(value, dict):
        return any(_has_float(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_float(v) for v in value)
    return False


def payload_for(user_id: UserId, metadata: dict, keep_exact_floats: bool = False) -> dict:
    """The point payload: the metadata (filterable), the user's id, and — where the engine's
    JSON parser may move a float by a unit in the last place (qdrant-edge-py 0.9) — an exact
    text copy of metadata that holds floats, which reads return instead."""
    for reserved in (ID_FIELD, EXACT_FIELD):
        if reserved in metadata:
            raise InvalidInput(f"metadata key {reserved!r} is reserved")
    payload = {**metadata, ID_FIELD: user_id}
    if keep_exact_floats and _has_float(metadata):
        payload[EXACT_FIELD] = json.dumps(metadata, allow_nan=False)
    return payload


def split_payload(payload: dict | None) -> tuple[UserId, dict]:
    payload = dict(payload or {})
    uid = payload.pop(ID_FIELD)
    exact = payload.pop(EXACT_FIELD, None)
    return uid, (json.loads(exact) if isinstance(exact, str) else payload)


def collection_metadata(dim: int, levels: tuple[int, ...], adaptor_hash: str | None, store_id: str) -> dict:
    """What a collection or shard made by matry_index records about itself: its schema, the
    adaptor's hash and a random id that tells this store from any other (a save records it,
    and a load refuses a store that carries another one)."""
    return {"matry_index": {"format_version": FORMAT_VERSION, "dim": dim, "levels": list(levels),
                            "vectors": vector_names(levels), "adaptor_hash": adaptor_hash, "store_id": store_id}}


def new_store_id() -> str:
    return uuid.uuid4().hex


def check_metadata(found: dict | None, dim: int, levels: tuple[int, ...], adaptor_hash: str | None,
                   where: str) -> str | None:
    """Refuse a collection/shard made for another schema or adaptor; its store id (None for a
    store made before stores carried one)."""
    info = (found or {}).get("matry_index")
    if not isinstance(info, dict):
        raise InvalidInput(f"{where} exists but was not created by matry_index (no schema metadata)")
    if info.get("dim") != dim or tuple(info.get("levels", ())) != tuple(levels):
        raise InvalidInput(f"{where} stores levels {info.get('levels')} of {info.get('dim')}-d vectors; "
                           f"this index needs {list(levels)} of {dim}-d")
    if info.get("adaptor_hash") != adaptor_hash:
        raise AdaptorMismatchError(f"adaptor mismatch: {where} was built with "
                                   f"{str(info.get('adaptor_hash'))[:12]}, got {str(adaptor_hash)[:12]}")
    store_id = info.get("store_id")
    return store_id if isinstance(store_id, str) else None


def check_same_store(found: str | None, saved: str | None, where: str) -> None:
    """Refuse a store other than the one a save was made with (the ids differ)."""
    if saved is not None and found != saved:
        raise InvalidInput(f"{where} is not the store this index was saved with (it carries store id "
                           f"{str(found)[:12]}, the save {saved[:12]}): it was re-created, or another store "
                           "was given; nothing was changed")


def saved_options(options: dict, names: tuple[str, ...], where: Path,
                  bookkeeping: tuple[str, ...] = ("store_id", "snapshot")) -> tuple[dict, str | None]:
    """The options a save recorded that the backend reads back, and the store id it recorded.

    A key the backend never writes is refused (:class:`Corrupt`): the manifest is checksummed,
    so such a key was put there by hand, and a save must not add what the backend did not
    choose (a host, a scratch directory, a resource knob)."""
    unknown = set(options) - set(names) - set(bookkeeping)
    if unknown:
        raise Corrupt(f"{where}: the save holds backend options this backend never writes: {sorted(unknown)}")
    store_id = options.get("store_id")
    return {k: v for k, v in options.items() if k in names}, store_id if isinstance(store_id, str) else None
