"""Batch bars (`hybridtrader.market.aggregate_trades` / `aggregate_quotes`) against independent references:
Polars `group_by_dynamic` for time bars, straightforward Python loops for tick / volume / dollar bars."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import numpy as np
import polars as pl
import pytest
from bar_reference import ohlcv
from helpers import UTC_NS
from hybridtrader import BarAggregator, _core
from hybridtrader.market import aggregate_quotes, aggregate_trades, frames
from hybridtrader.market import bars as bars_mod
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

BASE = 1_704_205_800 * 10**9  # 2024-01-02 14:30 UTC
NS = {"s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9, "d": 86400 * 10**9}


def random_trades(seed: int, n: int = 6000, n_symbols: int = 25, span: str = "3h") -> pl.DataFrame:
    """Trades in time order (symbols interleaved) with duplicate timestamps and gaps of silence."""
    rng = np.random.default_rng(seed)
    span_ns = int(span[:-1]) * NS[span[-1]]
    # A coarse grid makes duplicate timestamps common; dropping some stretches makes gaps.
    grid = rng.integers(0, span_ns // 10**8, n) * 10**8
    gap_start = rng.integers(0, span_ns, 3)
    keep = np.ones(n, dtype=bool)
    for g in gap_start:
        keep &= ~((grid >= g) & (grid < g + span_ns // 20))
    ts = np.sort(grid[keep]) + BASE
    m = len(ts)
    names = np.array([f"SYM{i:02d}" for i in range(n_symbols)])
    # Skewed symbol frequencies: some symbols trade rarely, leaving empty intervals.
    weights = rng.pareto(1.0, n_symbols) + 0.05
    symbol = names[rng.choice(n_symbols, m, p=weights / weights.sum())]
    price = np.round(rng.uniform(5, 200, m), 2)
    size = rng.integers(1, 1000, m).astype(np.float64)
    return pl.DataFrame(
        {"symbol": symbol, "ts": pl.Series(ts).cast(UTC_NS), "price": price, "size": size}
    )


def polars_time_bars(trades: pl.DataFrame, every: str, origin_ns: int = 0) -> pl.DataFrame:
    """The reference: Polars windows [start, start+every) labelled by start, per symbol."""
    every_ns = int(every[:-1]) * NS[every[-1]]
    return (
        trades.sort("symbol", "ts", maintain_order=True)
        .group_by_dynamic(
            "ts", every=every, offset=f"{origin_ns % every_ns}ns", group_by="symbol", closed="left",
            label="left",
        )
        .agg(ohlcv())
        .sort("symbol", "ts")
    )


def assert_bars_equal(ours: pl.DataFrame, ref: pl.DataFrame) -> None:
    assert_frame_equal(ours, ref, check_exact=False, rel_tol=1e-12, abs_tol=1e-9)


@pytest.mark.parametrize(
    ("seed", "every", "origin_ns"),
    [
        (0, "1s", 0),
        (1, "5s", 0),
        (2, "1m", 0),
        (3, "5m", 7 * 10**9),
        (4, "15m", 0),
        (5, "1h", 30 * 60 * 10**9),
        (6, "1d", 0),
        (7, "1m", BASE + 13 * 10**9),  # origin given as an absolute time
        (8, "7s", 3 * 10**9 + 5),
    ],
)
def test_time_bars_equal_polars_group_by_dynamic(seed: int, every: str, origin_ns: int) -> None:
    trades = random_trades(seed)
    ours = aggregate_trades(trades, every=every, origin=origin_ns)
    assert ours.schema == pl.Schema(bars_mod.TRADE_BAR_SCHEMA)
    assert_bars_equal(ours, polars_time_bars(trades, every, origin_ns))


def test_time_bars_many_symbols_long_span() -> None:
    trades = random_trades(11, n=20_000, n_symbols=300, span="2d")
    assert_bars_equal(aggregate_trades(trades, every="1h"), polars_time_bars(trades, "1h"))
    assert_bars_equal(aggregate_trades(trades, every="1d"), polars_time_bars(trades, "1d"))


@pytest.mark.parametrize("rule", [{"every": "1m"}, {"every": "1s"}, {"ticks": 5}, {"volume": 3000.0}])
def test_input_grouped_by_symbol(rule: dict) -> None:
    # Grouped rows take the run-length path; interleaved rows the hashed path; both equal the references.
    trades = random_trades(15, n=8000, n_symbols=12)
    grouped = trades.sort("symbol", "ts", maintain_order=True)
    assert bars_mod._symbol_runs(grouped["symbol"]) is not None
    assert bars_mod._symbol_runs(trades["symbol"]) is None
    ours = aggregate_trades(grouped, **rule)
    assert ours.equals(aggregate_trades(trades, **rule))
    if "every" in rule:
        assert_bars_equal(ours, polars_time_bars(trades, rule["every"]))
    # Grouped in reverse name order, and a symbol in two runs (not a run per symbol).
    reverse = trades.sort("symbol", "ts", descending=[True, False], maintain_order=True)
    assert aggregate_trades(reverse, **rule).equals(ours)
    first = grouped.filter(pl.col("symbol") == "SYM00")
    split = pl.concat([first.head(10), grouped.filter(pl.col("symbol") != "SYM00"), first.tail(-10)])
    assert split["symbol"].rle_id().max() == 12  # 13 runs for 12 symbols
    assert bars_mod._symbol_runs(split["symbol"]) is None
    assert aggregate_trades(split, **rule).equals(ours)


def test_every_as_nanoseconds_and_datetime_origin() -> None:
    trades = random_trades(12)
    origin = datetime(2024, 1, 2, 9, 30, 20, tzinfo=UTC)
    by_string = aggregate_trades(trades, every="1m", origin=origin)
    assert by_string.equals(aggregate_trades(trades, every=60 * 10**9, origin=origin))
    assert_bars_equal(by_string, polars_time_bars(trades, "1m", int(origin.timestamp()) * 10**9))


def test_unsorted_input_gives_the_same_bars() -> None:
    # Distinct timestamps per symbol: any order of the rows describes the same trades.
    trades = random_trades(13).unique(["symbol", "ts"], keep="first", maintain_order=True)
    shuffled = trades.sample(fraction=1.0, shuffle=True, seed=1)
    expected = aggregate_trades(trades, every="1m")
    assert aggregate_trades(shuffled, every="1m").equals(expected)
    assert aggregate_trades(shuffled, ticks=7).equals(aggregate_trades(trades, ticks=7))
    assert_bars_equal(expected, polars_time_bars(trades, "1m"))


def large_trades(n_symbols: int, n: int = 1_200_000) -> pl.DataFrame:
    """More rows than the engine's two-thread threshold (2**20), in time order with symbols interleaved,
    timestamps on a millisecond grid (so repeated)."""
    rng = np.random.default_rng(n_symbols)
    ts = BASE + np.sort(rng.integers(0, 2 * 3600 * 10**3, n)) * 10**6
    names = np.array([f"SYM{i:02d}" for i in range(n_symbols)])
    return pl.DataFrame(
        {
            "symbol": names[rng.integers(0, n_symbols, n)],
            "ts": pl.Series(ts).cast(UTC_NS),
            "price": np.round(rng.uniform(5, 200, n), 2),
            "size": rng.integers(1, 1000, n).astype(np.float64),
        }
    )


def one_thread_bars(trades: pl.DataFrame, **rule) -> pl.DataFrame:
    """The engine's single-threaded sorting path on exact symbol codes."""
    codes, names = bars_mod._exact_codes(trades["symbol"])
    ts = trades["ts"].dt.epoch("ns").to_numpy()
    bar_codes, columns, _ = _core.aggregate_bars(
        "trades", codes, len(names), ts, trades["price"].to_numpy(), trades["size"].to_numpy(), **rule
    )
    rank = names.rank("ordinal").cast(pl.UInt32).to_numpy() - 1
    perm = _core.bar_order(bar_codes, rank)
    return bars_mod._bars_frame("trades", names.gather(bar_codes[perm]), [c[perm] for c in columns])


@pytest.mark.parametrize("n_symbols", [1, 40])
def test_large_grouped_batch_on_two_threads_equals_one_thread(n_symbols: int) -> None:
    # Grouped by symbol, large: symbol runs from the string views, two threads split by symbol or (one
    # symbol) at a minute boundary. The same bars as one thread, Polars, and the interleaved input.
    trades = large_trades(n_symbols)
    grouped = trades.sort("symbol", "ts", maintain_order=True)
    assert bars_mod._symbol_runs(grouped["symbol"]) is not None
    ours = aggregate_trades(grouped, every="1m")
    assert ours.equals(one_thread_bars(grouped, every="1m"))
    assert ours.equals(aggregate_trades(grouped, every="1m"))  # deterministic
    assert_bars_equal(ours, polars_time_bars(trades, "1m"))
    assert aggregate_trades(trades, every="1m").equals(ours)
    assert aggregate_trades(grouped, ticks=50).equals(one_thread_bars(grouped, ticks=50))


def test_symbol_runs_of_long_symbols_and_other_string_layouts() -> None:
    # Over 12 bytes a symbol is not inline in its Arrow view: the hashed path, the same bars.
    trades = random_trades(16, n=3000, n_symbols=6)
    grouped = trades.sort("symbol", "ts", maintain_order=True)
    expected = aggregate_trades(grouped, every="1m")
    long = grouped.with_columns(pl.col("symbol") + "_WITH_A_LONG_SUFFIX")
    assert bars_mod._symbol_runs(long["symbol"]) is None
    renamed = aggregate_trades(long, every="1m").with_columns(pl.col("symbol").str.head(5))
    assert renamed.equals(expected)
    # A slice (views at an offset), several chunks, a categorical column.
    tail = grouped.slice(1000)
    assert aggregate_trades(tail, every="1m").equals(one_thread_bars(tail, every="1m"))
    chunked = pl.concat([grouped.head(1000), grouped.tail(-1000)], rechunk=False)
    assert chunked["symbol"].n_chunks() == 2
    assert aggregate_trades(chunked, every="1m").equals(expected)
    categorical = grouped.with_columns(pl.col("symbol").cast(pl.Categorical))
    assert aggregate_trades(categorical, every="1m").equals(expected)


def test_other_time_units_and_zones_are_converted() -> None:
    trades = random_trades(14)
    expected = aggregate_trades(trades, every="5m")
    ny_us = trades.with_columns(pl.col("ts").dt.cast_time_unit("us").dt.convert_time_zone("America/New_York"))
    assert aggregate_trades(ny_us, every="5m").equals(expected)
    categorical = trades.with_columns(pl.col("symbol").cast(pl.Categorical), pl.col("size").cast(pl.Int32))
    assert aggregate_trades(categorical, every="5m").equals(expected)
    assert aggregate_trades(trades.lazy(), every="5m").equals(expected)


def reference_count_bars(trades: pl.DataFrame, rule: str, threshold: float) -> pl.DataFrame:
    """Tick / volume / dollar bars by a plain loop over each symbol's trades in time order."""
    rows = []
    ordered = trades.sort("symbol", "ts", maintain_order=True)
    for (sym,), g in ordered.group_by("symbol", maintain_order=True):
        bar: list[tuple[int, float, float]] = []
        for ts, price, size in zip(g["ts"].dt.epoch("ns"), g["price"], g["size"], strict=True):
            bar.append((ts, price, size))
            amount = {"ticks": len(bar), "volume": sum(b[2] for b in bar),
                      "dollars": sum(b[1] * b[2] for b in bar)}[rule]
            if amount >= threshold:
                rows.append(_bar_row(sym, bar))
                bar = []
        if bar:
            rows.append(_bar_row(sym, bar))
    return pl.DataFrame(rows, schema=bars_mod.TRADE_BAR_SCHEMA, orient="row")


def _bar_row(sym: str, bar: list[tuple[int, float, float]]) -> tuple:
    prices = [b[1] for b in bar]
    volume = sum(b[2] for b in bar)
    return (sym, bar[0][0], prices[0], max(prices), min(prices), prices[-1], volume,
            sum(b[1] * b[2] for b in bar) / volume, len(bar))


@pytest.mark.parametrize(("rule", "threshold"), [("ticks", 1), ("ticks", 17), ("volume", 2500.0),
                                                  ("volume", 1.0), ("dollars", 250_000.0)])
def test_count_bars_equal_loop_reference(rule: str, threshold: float) -> None:
    trades = random_trades(20 + int(threshold) % 7, n=2500, n_symbols=8)
    ours = aggregate_trades(trades, **{rule: threshold})
    assert_bars_equal(ours, reference_count_bars(trades, rule, threshold))


def test_volume_bar_closes_after_the_trade_that_reaches_the_threshold() -> None:
    trades = pl.DataFrame(
        {
            "symbol": ["A"] * 5,
            "ts": pl.Series([BASE + i for i in range(5)]).cast(UTC_NS),
            "price": [10.0, 11.0, 12.0, 13.0, 14.0],
            "size": [60.0, 30.0, 50.0, 100.0, 5.0],
        }
    )
    bars = aggregate_trades(trades, volume=100)
    # 60+30 = 90 < 100, +50 = 140 -> closes (overshoot kept); 100 -> closes exactly; 5 left partial.
    assert bars["volume"].to_list() == [140.0, 100.0, 5.0]
    assert bars["trades"].to_list() == [3, 1, 1]
    assert bars["ts"].dt.epoch("ns").to_list() == [BASE, BASE + 3, BASE + 4]


def random_quotes(seed: int, n: int = 5000) -> pl.DataFrame:
    trades = random_trades(seed, n=n)
    rng = np.random.default_rng(seed)
    mid = trades["price"].to_numpy()
    half = mid * rng.uniform(0, 0.002, len(mid))
    return pl.DataFrame(
        {
            "symbol": trades["symbol"],
            "ts": trades["ts"],
            "bid": mid - half,
            "ask": mid + half,
            "bid_size": rng.integers(1, 10, len(mid)) * 100,
            "ask_size": rng.integers(1, 10, len(mid)) * 100,
        }
    )


@pytest.mark.parametrize(("seed", "every"), [(30, "1s"), (31, "1m"), (32, "15m")])
def test_quote_bars_equal_polars_reference(seed: int, every: str) -> None:
    quotes = random_quotes(seed)
    ref = (
        quotes.with_columns(mid=(pl.col("bid") + pl.col("ask")) / 2)
        .with_columns(spread=(pl.col("ask") - pl.col("bid")) / pl.col("mid") * 1e4)
        .sort("symbol", "ts", maintain_order=True)
        .group_by_dynamic("ts", every=every, group_by="symbol", closed="left", label="left")
        .agg(
            open=pl.col("mid").first(),
            high=pl.col("mid").max(),
            low=pl.col("mid").min(),
            close=pl.col("mid").last(),
            bid=pl.col("bid").last(),
            ask=pl.col("ask").last(),
            spread_bps_mean=pl.col("spread").mean(),
            spread_bps_last=pl.col("spread").last(),
            quotes=pl.len().cast(pl.Int64),
        )
        .sort("symbol", "ts")
    )
    ours = aggregate_quotes(quotes, every=every)
    assert ours.schema == pl.Schema(bars_mod.QUOTE_BAR_SCHEMA)
    assert_bars_equal(ours, ref)


def test_bad_quotes_rejected(caplog: pytest.LogCaptureFixture) -> None:
    quotes = random_quotes(33, n=500)
    bad = pl.DataFrame(
        {
            "symbol": ["SYM00"] * 5,
            "ts": quotes["ts"].head(5),
            "bid": [10.0, 0.0, float("nan"), 5.0, -1.0],
            "ask": [9.0, 1.0, 5.0, float("inf"), 1.0],  # crossed, zero bid, NaN, inf, negative
            "bid_size": [1] * 5,
            "ask_size": [1] * 5,
        }
    )
    with caplog.at_level(logging.WARNING):
        ours = aggregate_quotes(pl.concat([quotes, bad]), every="1m")
    assert f"dropped 5 of {len(quotes) + 5} rows" in caplog.text
    assert ours.equals(aggregate_quotes(quotes, every="1m"))
    assert aggregate_quotes(quotes, ticks=10)["quotes"].max() == 10


def test_bad_trades_rejected_and_bars_untouched(caplog: pytest.LogCaptureFixture) -> None:
    trades = random_trades(40, n=1000)
    ts = trades["ts"].head(7)
    bad = pl.DataFrame(
        {
            "symbol": ["SYM00", "SYM01", "SYM02", "SYM03", "SYM00", "SYM01", "SYM02"],
            "ts": ts,
            "price": [float("nan"), float("inf"), 0.0, -5.0, 10.0, 10.0, None],
            "size": [1.0, 1.0, 1.0, 1.0, -1.0, float("nan"), 1.0],
        }
    )
    with caplog.at_level(logging.WARNING):
        ours = aggregate_trades(pl.concat([trades, bad]), every="1m")
    assert f"dropped 7 of {len(trades) + 7} rows" in caplog.text
    assert ours.equals(aggregate_trades(trades, every="1m"))
    assert ours.select(pl.all().exclude("symbol", "ts").is_finite().all()).row(0) == (True,) * 7


def test_zero_size_trades_count_but_add_no_volume() -> None:
    trades = pl.DataFrame(
        {"symbol": ["A", "A"], "ts": pl.Series([BASE, BASE + 1]).cast(UTC_NS), "price": [10.0, 20.0],
         "size": [0.0, 0.0]}
    )
    bar = aggregate_trades(trades, every="1m").row(0, named=True)
    assert (bar["trades"], bar["volume"], bar["high"]) == (2, 0.0, 20.0)
    assert np.isnan(bar["vwap"])  # no volume, no volume-weighted price


def test_empty_input() -> None:
    empty = random_trades(41).clear()
    out = aggregate_trades(empty, every="1m")
    assert out.is_empty()
    assert out.schema == pl.Schema(bars_mod.TRADE_BAR_SCHEMA)


@pytest.mark.parametrize(
    ("change", "kwargs", "message"),
    [
        (lambda f: f.drop("size"), {"every": "1m"}, "missing column"),
        (lambda f: f.with_columns(pl.col("ts").dt.replace_time_zone(None)), {"every": "1m"}, "no time zone"),
        (lambda f: f.with_columns(pl.col("ts").dt.epoch("ns")), {"every": "1m"}, "must be Datetime"),
        (lambda f: f.with_columns(pl.lit(None, pl.String).alias("symbol")), {"every": "1m"}, "null"),
        (lambda f: f.with_columns(pl.lit("x").alias("price")), {"every": "1m"}, "numeric"),
        (lambda f: f, {"every": "1 minute"}, "invalid interval"),
        (lambda f: f, {"every": "0s"}, "invalid interval"),
        (lambda f: f, {}, "exactly one"),
        (lambda f: f, {"every": "1m", "ticks": 5}, "exactly one"),
        (lambda f: f, {"ticks": 0}, "positive"),
        (lambda f: f, {"volume": -5.0}, "positive"),
        (lambda f: f, {"dollars": float("nan")}, "positive"),
        (lambda f: f, {"every": "1m", "origin": datetime(2024, 1, 1)}, "timezone-aware"),
    ],
)
def test_bad_arguments_are_clear_errors(change, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        aggregate_trades(change(random_trades(42, n=100)), **kwargs)


def test_quote_bars_reject_volume_rules() -> None:
    with pytest.raises(ValueError, match="every= or ticks="):
        BarAggregator(volume=100.0, source="quotes")


def test_symbol_codes_hash_path_matches_exact_codes() -> None:
    symbol = random_trades(43)["symbol"]
    codes, names = bars_mod._symbol_codes(symbol)
    exact, exact_names = bars_mod._exact_codes(symbol)
    np.testing.assert_array_equal(codes, exact)
    assert names.to_list() == exact_names.to_list()
    # A pair of hashes contradicting an earlier pair is a detected collision: the exact path is used.
    h1, h2 = np.array([5, 9, 5], np.uint64), np.array([1, 2, 3], np.uint64)
    assert _core.bar_codes_from_hashes(h1, h2) is None
    ts, ones = np.array([0, 1, 2]), np.ones(3)
    assert _core.aggregate_bars_hashed("trades", h1, h2, ts, ones, ones, ticks=1) is None


def test_exact_codes_path_equals_hashed_path() -> None:
    trades = random_trades(45).sample(fraction=1.0, shuffle=True, seed=4)
    symbol, ts, price, size = bars_mod._columns(trades, ("price", "size"))
    codes, names = bars_mod._exact_codes(symbol)
    bar_codes, columns, _ = _core.aggregate_bars("trades", codes, len(names), ts, price, size, every="1m")
    perm = np.lexsort((columns[0], names.gather(bar_codes).to_numpy()))
    frame = bars_mod._bars_frame("trades", names.gather(bar_codes[perm]), [c[perm] for c in columns])
    assert frame.equals(aggregate_trades(trades, every="1m"))


def test_native_and_public_frame_builders_agree() -> None:
    rng = np.random.default_rng(44)
    n = 50
    symbols = [f"S{i % 7}" for i in range(n)]
    columns = {
        "symbol": symbols,
        "ts": rng.integers(0, 10**18, n),
        **{c: np.where(rng.random(n) < 0.2, np.nan, rng.uniform(1, 100, n))
           for c in list(bars_mod.QUOTE_BAR_SCHEMA)[2:-1]},
        "quotes": rng.integers(0, 100, n),
    }
    builders = [frames._public] + ([frames._native] if frames._plr is not None else [])
    built = [b(bars_mod.QUOTE_BAR_SCHEMA, columns) for b in builders]
    for frame in built:
        assert frame.schema == pl.Schema(bars_mod.QUOTE_BAR_SCHEMA)
        assert frame["spread_bps_last"].null_count() == 0  # NaN stays NaN
        np.testing.assert_array_equal(frame["spread_bps_last"].to_numpy(), columns["spread_bps_last"])
        assert frame["symbol"].to_list() == symbols
        assert frame["ts"].dt.epoch("ns").to_list() == columns["ts"].tolist()
    assert built[-1].equals(built[0])
    flags = {"f": np.array([True, False, True])}
    assert frames.build_frame({"f": pl.Boolean()}, flags)["f"].to_list() == [True, False, True]
    for i in range(3 * frames._MAX_PLANS):  # schemas built per call do not pile up in the plan cache
        assert frames.build_frame({"x": pl.Int64()}, {"x": np.array([i])})["x"].to_list() == [i]
    assert len(frames._PLANS) <= frames._MAX_PLANS
    if frames._native in builders:
        with pytest.raises(TypeError, match="unsupported dtype"):
            frames._native({"x": pl.Int8()}, {"x": np.array([1], np.int8)})


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(
        st.tuples(
            st.integers(0, 5),
            st.integers(0, 50),
            st.one_of(st.floats(0.5, 9.0), st.just(float("nan"))),
            st.integers(0, 9).map(float),
        ),
        min_size=1,
        max_size=80,
    ),
    rule=st.sampled_from([{"every": 13}, {"every": "1s"}, {"ticks": 3}, {"volume": 12.0}, {"dollars": 40.0}]),
)
def test_row_order_does_not_change_bars(rows, rule) -> None:
    # The same trades in time order, grouped by symbol, and reversed (distinct timestamps per symbol):
    # the run-length, hashed and sorting paths give the same bars.
    seen: set[tuple[int, int]] = set()
    trades = [(f"S{s}", BASE + t, p, q) for s, t, p, q in rows if not ((s, t) in seen or seen.add((s, t)))]
    frame = pl.DataFrame(trades, schema=["symbol", "ts", "price", "size"], orient="row").with_columns(
        pl.col("ts").cast(UTC_NS)
    ).sort("ts", maintain_order=True)
    expected = aggregate_trades(frame, **rule)
    for variant in (frame.sort("symbol", "ts"), frame.reverse(), frame.sort("symbol", "ts").reverse()):
        assert_frame_equal(aggregate_trades(variant, **rule), expected)
