"""The FAISS backend's packed per-row strings and metadata give back exactly what was appended."""
from hypothesis import given, settings, strategies as st

from matry_index.backends.faiss.packed import PackedBytes, PackedMetadata, StringIds

_text = st.text(max_size=12)
_meta = st.one_of(st.none(), st.dictionaries(_text, st.one_of(st.integers(-10**12, 10**12), _text, st.booleans()),
                                              max_size=3))


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 5), st.lists(st.lists(st.binary(max_size=6), max_size=5), max_size=5))
def test_packed_bytes_keep_every_row(empty_rows, batches):
    packed, model = PackedBytes(empty_rows), [b""] * empty_rows
    for batch in batches:
        packed.extend(batch)
        model += batch
    assert packed.n == len(model) and [packed.get(r) for r in range(len(model))] == model
    if not any(model):
        assert packed.nbytes() == 0  # no offsets while every row is empty


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 3), st.lists(st.lists(st.one_of(_text, st.integers(0, 2**62)), max_size=4), max_size=4))
def test_string_ids_keep_strings_and_leave_ints_to_their_keys(int_rows, batches):
    ids, model = StringIds(int_rows), list(range(int_rows))
    for batch in batches:
        ids.extend(batch)
        model += batch
    keys = [m if isinstance(m, int) else -1 for m in model]
    assert ids.take(list(range(len(model))), keys) == model


@settings(max_examples=60, deadline=None)
@given(st.lists(_meta, max_size=6), st.lists(_meta, max_size=6))
def test_metadata_round_trips_as_json(first, then):
    packed = PackedMetadata(first)
    packed.extend(then)
    assert [packed.get(r) for r in range(len(first) + len(then))] == [m or {} for m in first + then]
