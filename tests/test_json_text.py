"""JSON text kept for later is the text orjson writes, held in its own size."""

from __future__ import annotations

import tracemalloc
from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from fhircdisc.json_text import dumps_kept

_JSON = st.recursive(st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1)
                     | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
                     lambda inner: st.lists(inner, max_size=4)
                     | st.dictionaries(st.text(max_size=5), inner, max_size=4), max_leaves=12)


@given(_JSON)
def test_kept_text_is_orjsons(value: Any) -> None:
    assert dumps_kept(value) == orjson.dumps(value)


def test_a_thousand_cache_keys_take_their_size_not_orjsons_buffers() -> None:
    key = [{"value": "1"}, [{"text": "Screening"}]]
    tracemalloc.start()
    try:
        kept = [dumps_kept(key) for _ in range(1000)]
        size = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert len(kept[0]) < 60
    assert size < 150_000            # orjson.dumps's own results held 4 MB here
