"""The vectorised msgpack encoder decodes to exactly what msgpack.packb of the dicts decodes to."""

from __future__ import annotations

import msgpack
import numpy as np
import pytest
from hybridtrader.venue.msgpack_frames import pack_maps
from hypothesis import given, settings
from hypothesis import strategies as st

names = st.lists(st.text(min_size=1, max_size=40), min_size=1, max_size=5, unique=True)


@settings(max_examples=60, deadline=None)
@given(data=st.data(), symbols=names, n=st.integers(0, 40))
def test_pack_maps_matches_packb(data: st.DataObject, symbols: list[str], n: int) -> None:
    def column(elements: st.SearchStrategy, dtype: type) -> np.ndarray:
        return np.array(data.draw(st.lists(elements, min_size=n, max_size=n)), dtype=dtype)

    p = column(st.floats(allow_nan=False, width=64), np.float64)
    i = column(st.integers(-(2**63), 2**63 - 1), np.int64)
    t = column(st.integers(0, 2**63 - 1), np.int64)  # every int64 ns fits the 64-bit Timestamp
    codes = column(st.integers(0, len(symbols) - 1), np.int32)
    fields = [("T", "str", "t"), ("p", "f64", p), ("i", "i64", i), ("c", "raw", msgpack.packb(["@"])),
              ("t", "ts", t)]
    got = msgpack.unpackb(pack_maps(fields, symbols, codes))
    ref = msgpack.unpackb(msgpack.packb([
        {"T": "t", "p": float(p[k]), "i": int(i[k]), "c": ["@"],
         "t": msgpack.Timestamp.from_unix_nano(int(t[k])), "S": symbols[codes[k]]} for k in range(n)]))
    assert got == ref


def test_large_arrays_and_limits() -> None:
    n = 70_000  # array32 header
    codes = np.zeros(n, dtype=np.int32)
    out = msgpack.unpackb(pack_maps([("x", "i64", np.arange(n))], ["A"], codes))
    assert len(out) == n and out[-1] == {"x": n - 1, "S": "A"}
    with pytest.raises(ValueError, match="96-bit"):
        pack_maps([("t", "ts", np.array([-1]))], ["A"], np.zeros(1, dtype=np.int32))
