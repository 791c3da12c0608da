"""The strategies' history: the last n bars of each symbol, cut by index arithmetic on the symbols' codes,
against the Polars window filter it replaced, on parts with uneven symbol runs (symbols that come and go,
runs shorter and longer than n)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
from hybridtrader.engine.events import symbol_index
from hybridtrader.engine.trader import _tail_of_parts, _tail_per_symbol
from hybridtrader.market.schema import BAR_SCHEMA
from hypothesis import given, settings
from hypothesis import strategies as st

T0 = datetime(2024, 3, 5, 14, 30, tzinfo=UTC)


def reference(bars: pl.DataFrame, n: int) -> pl.DataFrame:
    return bars.filter(pl.int_range(pl.len()).reverse().over("symbol") < n)


@st.composite
def parts(draw: st.DrawFn) -> list[pl.DataFrame]:
    """Consecutive frames in (ts, symbol) order, each bar time with a random subset of the symbols."""
    out, t = [], 0
    for _ in range(draw(st.integers(1, 4))):
        rows = []
        for _ in range(draw(st.integers(1, 8))):
            for sym in sorted(draw(st.sets(st.sampled_from(["AA", "B", "CCC", "D", "EE"]), min_size=1))):
                px = float(len(rows))  # tells the rows apart
                rows.append((sym, T0 + timedelta(minutes=t), px, px, px, px, 1.0, px, 1))
            t += 1
        out.append(pl.DataFrame(rows, schema=BAR_SCHEMA, orient="row"))
    return out


@settings(max_examples=150, deadline=None)
@given(frames=parts(), n=st.integers(1, 6))
def test_the_tail_of_parts_is_the_window_filter_of_their_concatenation(
    frames: list[pl.DataFrame], n: int
) -> None:
    encoded = [(f, *symbol_index(f["symbol"])) for f in frames]
    tail, names, codes = _tail_of_parts(encoded, n)
    whole = pl.concat(frames)
    assert tail.equals(reference(whole, n))
    assert [names[c] for c in codes] == tail["symbol"].to_list()  # the encoding goes with the rows
    # cutting again from the tail and a later part is the cut of everything (the Trader's incremental use)
    again, _, _ = _tail_of_parts([(tail, names, codes), encoded[-1]], n)
    assert again.equals(reference(pl.concat([whole, frames[-1]]), n))


@settings(max_examples=100, deadline=None)
@given(frames=parts(), n=st.integers(1, 6))
def test_tail_per_symbol_is_the_window_filter(frames: list[pl.DataFrame], n: int) -> None:
    bars = pl.concat(frames)
    assert _tail_per_symbol(bars, n).equals(reference(bars, n))
    assert _tail_per_symbol(bars, n, symbol_index(bars["symbol"])[1]).equals(reference(bars, n))


@st.composite
def sessions(draw: st.DrawFn) -> list[pl.DataFrame]:
    """Consecutive sessions of bar times where every symbol trades except for a few missing bars: the last
    one usually holds the last n rows of every symbol in its last rows (the cut reads those alone)."""
    symbols = ["AA", "B", "CCC", "D"]
    out, t = [], 0
    for _ in range(draw(st.integers(1, 3))):
        missing = draw(st.sets(st.tuples(st.integers(0, 11), st.sampled_from(symbols)), max_size=6))
        rows = []
        for k in range(12):
            for sym in symbols:
                if (k, sym) not in missing:
                    px = float(len(rows))
                    rows.append((sym, T0 + timedelta(minutes=t), px, px, px, px, 1.0, px, 1))
            t += 1
        out.append(pl.DataFrame(rows, schema=BAR_SCHEMA, orient="row"))
    return out


@settings(max_examples=150, deadline=None)
@given(frames=sessions(), n=st.integers(1, 9))
def test_the_tail_of_nearly_full_sessions_is_the_window_filter(frames: list[pl.DataFrame], n: int) -> None:
    encoded = [(f, *symbol_index(f["symbol"])) for f in frames]
    tail, names, codes = _tail_of_parts(encoded, n)
    assert tail.equals(reference(pl.concat(frames), n))
    assert [names[c] for c in codes] == tail["symbol"].to_list()


def test_a_full_last_session_is_cut_from_its_last_rows() -> None:
    """Hand-worked: two symbols, n = 2; the last part's last 2 x 2 + 1 rows hold two of each, so the older
    part and rows are not read (a first part of another symbol would have to be: it has no rows there)."""
    rows = [
        (s, T0 + timedelta(minutes=k), float(k), 1.0, 1.0, 1.0, 1.0, 1.0, 1) for k in range(4) for s in "AB"
    ]
    last = pl.DataFrame(rows, schema=BAR_SCHEMA, orient="row")
    old = last.with_columns(pl.col("ts").dt.offset_by("-1h"))
    tail, names, codes = _tail_of_parts([(f, *symbol_index(f["symbol"])) for f in (old, last)], 2)
    assert tail["open"].to_list() == [2.0, 2.0, 3.0, 3.0] and names == ["A", "B"]
    assert codes.tolist() == [0, 1, 0, 1]
    other = old.with_columns(pl.lit("C").alias("symbol"))
    tail, names, _ = _tail_of_parts([(f, *symbol_index(f["symbol"])) for f in (other, last)], 2)
    assert tail["symbol"].to_list() == ["C", "C", "A", "B", "A", "B"] and names == [
        "A",
        "B",
        "C",
    ]
