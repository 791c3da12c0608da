"""The one symbol/side encoder: codes index the names, signs follow DESIGN.md's "buy"/"sell"."""

import numpy as np
import polars as pl
import pytest
from hybridtrader.errors import ConfigError
from hybridtrader.market.schema import encode_symbols, side_sign, side_signs
from hypothesis import given
from hypothesis import strategies as st

TICKERS = st.lists(st.sampled_from(["AAPL", "MSFT", "SPY", "A", "ZZZZ"]), min_size=1, max_size=50)


@given(TICKERS)
def test_codes_index_sorted_names(symbols: list[str]) -> None:
    for form in (symbols, pl.Series(symbols), np.array(symbols, dtype=object)):
        names, codes = encode_symbols(form)
        assert names == sorted(set(symbols)) and codes.dtype == np.uint32
        assert [names[c] for c in codes] == symbols


def test_enum_keeps_its_categories_and_one_string_fills_rows() -> None:
    s = pl.Series(["B", "A"], dtype=pl.Enum(["A", "B", "C"]))
    names, codes = encode_symbols(s)
    assert names == ["A", "B", "C"] and codes.tolist() == [1, 0]
    names, codes = encode_symbols("SPY", 3)
    assert names == ["SPY"] and codes.tolist() == [0, 0, 0]
    with pytest.raises(ConfigError, match="symbols has 1 null values"):
        encode_symbols(["A", None])  # type: ignore[list-item]


@given(st.lists(st.sampled_from(["buy", "sell"]), min_size=1, max_size=50))
def test_signs_from_strings_and_ints_agree(sides: list[str]) -> None:
    expected = [1 if s == "buy" else -1 for s in sides]
    assert [side_sign(s) for s in sides] == expected
    assert side_signs(sides).tolist() == expected
    assert side_signs(pl.Series(sides)).tolist() == expected
    assert side_signs(np.array(expected, dtype=np.int64)).tolist() == expected


def test_bad_sides_are_one_line_naming_the_value() -> None:
    with pytest.raises(ConfigError, match=r"side must be 'buy' or 'sell', got 'long'"):
        side_sign("long")
    with pytest.raises(ConfigError, match=r"sides must be 'buy' or 'sell', got 'hold'"):
        side_signs(["buy", "hold"])
    with pytest.raises(ConfigError, match=r"sides\[1\] must be \+1 \(buy\) or -1 \(sell\), got 0"):
        side_signs(np.array([1, 0]))
