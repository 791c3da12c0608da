"""The streaming `BarAggregator`: push / push_many / flush / close agree with the batch functions, late and
bad ticks are counted, and bars are emitted on time by flush."""

from __future__ import annotations

import itertools

import numpy as np
import polars as pl
import pytest
from helpers import MIN, UTC_NS
from hybridtrader import BarAggregator
from hybridtrader.market import aggregate_quotes, aggregate_trades, push_frame
from hybridtrader.market.bars import QUOTE_BAR_SCHEMA, TRADE_BAR_SCHEMA
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

T0 = 1_704_205_800 * 10**9


def trades_frame(rows: list[tuple[str, int, float, float]]) -> pl.DataFrame:
    return pl.DataFrame(
        rows, schema={"symbol": pl.String, "ts": pl.Int64, "price": pl.Float64, "size": pl.Float64},
        orient="row",
    ).with_columns(pl.col("ts").cast(UTC_NS))


def tuples_frame(bars: list[tuple], schema: dict) -> pl.DataFrame:
    return pl.DataFrame(bars, schema={**schema, "ts": pl.Int64}, orient="row").with_columns(
        pl.col("ts").cast(UTC_NS)
    )


def sort_bars(frames: list[pl.DataFrame]) -> pl.DataFrame:
    return pl.concat(frames).sort("symbol", "ts", maintain_order=True)


RULES = [
    {"every": 10},
    {"every": 37, "origin": 5},
    {"ticks": 3},
    {"volume": 25.0},
    {"dollars": 400.0},
]

# A tick: symbol index, time step after the previous tick, price (sometimes invalid), size.
tick = st.tuples(
    st.integers(0, 3),
    st.integers(0, 15),
    st.one_of(st.floats(1.0, 50.0), st.sampled_from([float("nan"), float("inf"), 0.0, -2.0])),
    st.one_of(st.integers(0, 20).map(float), st.just(-1.0)),
)


@settings(max_examples=120, deadline=None)
@given(
    ticks=st.lists(tick, min_size=1, max_size=120),
    rule=st.sampled_from(RULES),
    cuts=st.lists(st.floats(0, 1), max_size=8),
    flushes=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 15)), max_size=8),
    single=st.lists(st.booleans(), min_size=10, max_size=10),
)
def test_streaming_with_any_chunking_and_flushes_equals_batch(ticks, rule, cuts, flushes, single) -> None:
    # Time-ordered ticks (duplicates allowed) of up to 4 symbols.
    rows, t = [], T0
    for sym, step, price, size in ticks:
        t += step
        rows.append((f"S{sym}", t, price, size))
    frame = trades_frame(rows)
    expected = aggregate_trades(frame, **rule)

    agg = BarAggregator(**rule)
    out: list[pl.DataFrame] = []
    # Flush at `now` between the previous tick and the next one: never after a tick still to come.
    flush_at = {int(f * len(rows)): step for f, step in flushes}
    bounds = sorted({0, len(rows), *(int(c * len(rows)) for c in cuts), *flush_at})
    for k, (lo, hi) in enumerate(itertools.pairwise(bounds)):
        if lo in flush_at and lo > 0:
            now = min(rows[lo - 1][1] + flush_at[lo], rows[lo][1]) if lo < len(rows) else rows[-1][1] + 99
            out.append(agg.flush(now))
        chunk = rows[lo:hi]
        if single[k % len(single)]:
            emitted = [bar for sym, ts, price, size in chunk for bar in agg.push(sym, ts, price, size)]
            out.append(tuples_frame(emitted, TRADE_BAR_SCHEMA))
        else:
            sym, ts, price, size = (list(c) for c in zip(*chunk, strict=True)) if chunk else ([],) * 4
            out.append(agg.push_many(np.array(sym, dtype=object), np.array(ts, dtype=np.int64),
                                     np.array(price, dtype=float), np.array(size, dtype=float)))
    out.append(agg.close())
    streamed = sort_bars(out)
    assert_frame_equal(streamed, expected)
    stats = agg.stats()
    n_bad = sum(not (p > 0 and np.isfinite(p) and s >= 0) for _, _, p, s in rows)
    assert stats == {"ticks": len(rows), "bars": len(expected), "late": 0, "rejected": n_bad}


def test_push_returns_completed_bars_as_tuples() -> None:
    agg = BarAggregator(every="1m")
    assert agg.push("AAPL", T0 + 1, 10.0, 5.0) == ()
    assert agg.push("AAPL", T0 + 2, 12.0, 5.0) == ()
    bars = agg.push("AAPL", T0 + MIN, 11.0, 1.0)
    assert bars == (("AAPL", T0, 10.0, 12.0, 10.0, 12.0, 10.0, 11.0, 2),)
    assert agg.symbols == ["AAPL"]
    assert agg.source == "trades"


def test_flush_emits_a_bar_on_time_without_a_later_tick() -> None:
    agg = BarAggregator(every="1m")
    agg.push("AAPL", T0 + 30 * 10**9, 10.0, 5.0)
    agg.push("MSFT", T0 + 90 * 10**9, 20.0, 5.0)
    assert agg.flush(T0 + MIN - 1).is_empty()
    first = agg.flush(T0 + MIN)
    assert first.select("symbol", pl.col("ts").dt.epoch("ns")).rows() == [("AAPL", T0)]
    assert agg.flush(T0 + MIN).is_empty()  # nothing twice
    # A tick for the flushed minute arriving now is late, not a second bar for that minute.
    assert agg.push("AAPL", T0 + 59 * 10**9, 10.0, 5.0) == ()
    second = agg.flush(T0 + 2 * MIN)
    assert second.select("symbol", pl.col("ts").dt.epoch("ns")).rows() == [("MSFT", T0 + MIN)]
    assert agg.stats() == {"ticks": 3, "bars": 2, "late": 1, "rejected": 0}
    assert agg.close().is_empty()


def test_late_ticks_counted_and_dropped() -> None:
    agg = BarAggregator(every="1m")
    agg.push("A", T0 + 5 * MIN, 10.0, 1.0)
    frame = agg.push_many(["A", "A", "B", "A"], np.array([T0 + MIN, T0 + 5 * MIN + 1, T0, T0 + 6 * MIN]),
                          np.array([1.0, 11.0, 5.0, 12.0]), np.array([1.0, 1.0, 1.0, 1.0]))
    assert frame["volume"].to_list() == [2.0]  # the late tick at T0+1m is not in the 5m bar
    assert agg.stats()["late"] == 1
    rest = agg.close()
    assert rest["symbol"].to_list() == ["A", "B"]


def test_push_many_symbol_forms_agree() -> None:
    rng = np.random.default_rng(3)
    n = 3000
    names = np.array(["AAPL", "MSFT", "NVDA", "TSLA"])
    sym = names[rng.integers(0, 4, n)]
    ts = T0 + np.cumsum(rng.integers(0, 10**9, n))
    price, size = rng.uniform(10, 20, n), rng.integers(1, 100, n).astype(float)
    results = []
    for form in ("ids", "numpy_str", "object", "list"):
        agg = BarAggregator(every="5s")
        if form == "ids":
            symbols = agg.intern(list(names))[np.searchsorted(names, sym)]
        else:
            symbols = {"numpy_str": sym, "object": sym.astype(object), "list": sym.tolist()}[form]
        results.append(sort_bars([agg.push_many(symbols, ts, price, size), agg.close()]))
    assert all(r.equals(results[0]) for r in results[1:])
    frame = trades_frame(list(zip(sym.tolist(), ts.tolist(), price.tolist(), size.tolist(), strict=True)))
    assert results[0].equals(aggregate_trades(frame, every="5s"))


def test_feed_many_and_flush_columns_equal_push_many_and_flush() -> None:
    """The adapter's forms carry the same bars as the frame forms: ticks fed without taking bars, then
    flush_columns, give the bars push_many returned chunk by chunk followed by those flush returns, as
    columns (None when there are none). feed_many refuses a quote aggregator like push_many."""
    rng = np.random.default_rng(8)
    n = 4000
    sym = np.array(["AAPL", "MSFT", "NVDA"])[rng.integers(0, 3, n)].tolist()
    ts = T0 + np.cumsum(rng.integers(0, 10**8, n))
    price, size = rng.uniform(10, 20, n), rng.integers(1, 100, n).astype(float)
    frames, columns = BarAggregator(every="1s"), BarAggregator(every="1s")
    pushed = []
    for lo in range(0, n, 7):
        chunk = (sym[lo : lo + 7], ts[lo : lo + 7], price[lo : lo + 7], size[lo : lo + 7])
        pushed.append(frames.push_many(*chunk))
        assert columns.feed_many(*chunk) is None
    now = int(ts[-1]) + 10**9
    want = pl.concat([*pushed, frames.flush(now)])
    got = columns.flush_columns(now)
    assert got is not None and want.height > 100
    got_frame = pl.DataFrame(dict(zip(TRADE_BAR_SCHEMA, got, strict=True)))
    assert got_frame.with_columns(pl.col("ts").cast(TRADE_BAR_SCHEMA["ts"])).equals(want)
    assert columns.flush_columns(now) is None
    with pytest.raises(ValueError, match="quote"):
        BarAggregator(every="1s", source="quotes").feed_many(["A"], [T0], [1.0], [1.0])


def test_quote_stream_equals_batch() -> None:
    rng = np.random.default_rng(5)
    n = 2000
    sym = np.array(["A", "B", "C"])[rng.integers(0, 3, n)]
    ts = T0 + np.cumsum(rng.integers(0, 2 * 10**8, n))
    mid = 100 + np.cumsum(rng.normal(0, 0.01, n))
    half = rng.uniform(0, 0.05, n)
    bid, ask = mid - half, mid + half
    bid[::97] = ask[::97] + 1  # crossed: rejected
    agg = BarAggregator(every="1s", source="quotes")
    single = [bar for i in range(500) for bar in agg.push_quote(str(sym[i]), int(ts[i]), bid[i], ask[i])]
    frames = [tuples_frame(single, QUOTE_BAR_SCHEMA)]
    frames += [agg.push_quotes_many(sym[i:i + 300], ts[i:i + 300], bid[i:i + 300], ask[i:i + 300])
               for i in range(500, n, 300)]
    frames.append(agg.close())
    quotes = pl.DataFrame({"symbol": sym, "ts": pl.Series(ts).cast(UTC_NS), "bid": bid, "ask": ask})
    expected = aggregate_quotes(quotes, every="1s")
    assert_frame_equal(sort_bars(frames), expected, check_exact=False, rel_tol=1e-12)
    assert agg.stats()["rejected"] == len(range(0, n, 97))


def test_argument_errors() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        BarAggregator()
    with pytest.raises(ValueError, match="exactly one"):
        BarAggregator(every="1m", ticks=3)
    with pytest.raises(ValueError, match="invalid interval"):
        BarAggregator(every="1y")
    with pytest.raises(ValueError, match="source"):
        BarAggregator(every="1m", source="bars")
    with pytest.raises(TypeError):
        BarAggregator("1m")  # keyword-only
    trades = BarAggregator(every="1m")
    quotes = BarAggregator(every="1m", source="quotes")
    with pytest.raises(ValueError, match="source=\"trades\""):
        trades.push_quote("A", 0, 1.0, 2.0)
    with pytest.raises(ValueError, match="source=\"quotes\""):
        quotes.push("A", 0, 1.0, 2.0)
    with pytest.raises(ValueError, match="symbol must be a str"):
        trades.push(7, 0, 1.0, 2.0)
    with pytest.raises(ValueError, match="intern"):
        trades.push_many(np.array([3], dtype=np.uint32), np.array([0]), np.array([1.0]), np.array([1.0]))
    with pytest.raises(ValueError, match="differ in length"):
        trades.push_many(["A", "A"], np.array([0]), np.array([1.0]), np.array([1.0]))
    assert trades.stats() == {"ticks": 0, "bars": 0, "late": 0, "rejected": 0}


def test_push_frame_chunks_equal_batch() -> None:
    rng = np.random.default_rng(8)
    n = 4000
    trades = pl.DataFrame(
        {
            "symbol": np.array(["X", "Y", "Z", "W"])[rng.integers(0, 4, n)],
            "ts": pl.Series(T0 + np.cumsum(rng.integers(0, 10**8, n))).cast(UTC_NS),
            "price": rng.uniform(1, 2, n),
            "size": rng.integers(0, 50, n),
        }
    )
    agg = BarAggregator(every="2s")
    frames = [push_frame(agg, trades[i:i + 333]) for i in range(0, n, 333)]
    frames.append(agg.close())
    assert_frame_equal(sort_bars(frames), aggregate_trades(trades, every="2s"))
    quotes = trades.select("symbol", "ts", bid=pl.col("price"), ask=pl.col("price") * 1.001)
    qagg = BarAggregator(ticks=9, source="quotes")
    qframes = [push_frame(qagg, quotes[i:i + 500]) for i in range(0, n, 500)] + [qagg.close()]
    assert_frame_equal(sort_bars(qframes), aggregate_quotes(quotes, ticks=9))
