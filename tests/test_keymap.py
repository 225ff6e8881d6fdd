"""KeyMap (the FAISS row store's key → row lookup) behaves as the dict it replaces."""
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from matry_index.backends.faiss import keymap
from matry_index.backends.faiss.keymap import KeyMap

KEYS = st.integers(0, 40)
OPS = st.lists(st.one_of(st.tuples(st.just("assign"), st.lists(KEYS, min_size=1, max_size=12, unique=True)),
                         st.tuples(st.just("pop"), KEYS)), max_size=60)


@settings(max_examples=200, deadline=None)
@given(start=st.lists(KEYS, max_size=20, unique=True), ops=OPS, merge_at=st.sampled_from([2, 5, 4096]))
def test_keymap_agrees_with_a_dict(start, ops, merge_at):
    old = keymap.MERGE_AT
    keymap.MERGE_AT = merge_at  # small thresholds exercise the folds and the bulk path
    try:
        km, model = KeyMap.of_rows(np.array(start, np.int64)), {k: r for r, k in enumerate(start)}
        row = len(start)
        for op, arg in ops:
            if op == "assign":
                km.assign(np.array(arg, np.int64), np.arange(row, row + len(arg)))
                model.update((k, r) for r, k in zip(range(row, row + len(arg)), arg))
                row += len(arg)
            else:
                assert km.pop(arg) == model.pop(arg, None)
            assert len(km) == len(model)
        probe = np.arange(0, 45, dtype=np.int64)
        assert [km.get(int(k)) for k in probe] == [model.get(int(k)) for k in probe]
        assert km.lookup(probe).tolist() == [model.get(int(k), -1) for k in probe]
    finally:
        keymap.MERGE_AT = old
