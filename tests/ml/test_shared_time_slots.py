"""What the pipeline reads once per input and hands on (each bar's position among the distinct bar times, the
symbols' runs, the symbols as a Series) gives, bit for bit, what each consumer computed on its own: the
basket-relative price against the Polars statement it replaced (a group-by mean per bar time), the P&L
periods, the sessions, the intraday test and the slippage costs of the labels."""

from __future__ import annotations

import numpy as np
import polars as pl
from hybridtrader.ml.costs import SlippageCost
from hybridtrader.ml.evaluation import Periods, basket_relative
from hybridtrader.ml.features import SortedBars, out_of_order
from hybridtrader.ml.labels import is_intraday, session_of, time_slots
from hypothesis import given, settings
from hypothesis import strategies as st

START_NS = 1_704_205_800 * 10**9  # 2024-01-02 14:30 UTC, a session open
MINUTE_NS = 60 * 10**9


def polars_basket_relative(bars: pl.DataFrame, column: str = "pnl_close") -> pl.DataFrame:
    """The statement `basket_relative` replaced: the mean 1-bar log return per bar time by a group-by."""
    ordered = bars.sort("symbol", "ts") if bars.select(out_of_order()).item() else bars
    same = pl.col("symbol") == pl.col("symbol").shift(1)
    step = ordered.select("ts", lr=pl.when(same).then(pl.col("close").log().diff()))
    level = (
        step.group_by("ts")
        .agg(pl.col("lr").mean())
        .sort("ts")
        .select("ts", _level=pl.col("lr").fill_null(0.0).cum_sum().exp())
    )
    out = bars.join(level, on="ts", how="left", maintain_order="left")
    return out.with_columns((pl.col("close") / pl.col("_level")).alias(column)).drop("_level")


bar = st.tuples(
    st.sampled_from(["AA", "B", "CC", "D", "EEE"]),
    st.integers(0, 3 * 1440),  # minute after the first open: several sessions, overnight gaps
    st.one_of(st.none(), st.floats(0.5, 500.0, allow_nan=False)),
)
frames = st.lists(bar, min_size=1, max_size=80, unique_by=lambda b: (b[0], b[1]))


def frame_of(rows: list[tuple[str, int, float | None]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "symbol": [r[0] for r in rows],
            "ts": [START_NS + r[1] * MINUTE_NS for r in rows],
            "open": [r[2] for r in rows],
            "high": [r[2] for r in rows],
            "low": [r[2] for r in rows],
            "close": [r[2] for r in rows],
            "volume": [1.0] * len(rows),
        },
        schema={
            "symbol": pl.String,
            "ts": pl.Int64,
            **dict.fromkeys(["open", "high", "low", "close", "volume"], pl.Float64),
        },
    ).with_columns(pl.col("ts").cast(pl.Datetime("ns", "UTC")))


def bits(s: pl.Series) -> np.ndarray:
    return s.to_numpy().view(np.int64)


@settings(max_examples=80, deadline=None)
@given(frames)
def test_basket_relative_equals_the_group_by_statement(rows: list) -> None:
    bars = frame_of(rows)  # in the order drawn: usually not (symbol, ts) order
    want = polars_basket_relative(bars)
    assert want.columns == basket_relative(bars).columns
    np.testing.assert_array_equal(bits(basket_relative(bars)["pnl_close"]), bits(want["pnl_close"]))
    ready = SortedBars.of(bars)
    distinct = ready.bars["ts"].unique().sort()
    given_slots = basket_relative(ready.bars, "rel", time_slots(ready.bars["ts"], distinct))
    np.testing.assert_array_equal(
        bits(given_slots["rel"]), bits(polars_basket_relative(ready.bars)["pnl_close"])
    )


@settings(max_examples=60, deadline=None)
@given(frames, st.sampled_from([None, 1, 30, 60]))
def test_periods_and_sessions_from_the_slots_equal_their_own(rows: list, minutes: int | None) -> None:
    ready = SortedBars.of(frame_of(rows))
    ts = ready.bars["ts"]
    distinct = ts.unique().sort()
    slots = time_slots(ts, distinct)
    assert (distinct.gather(slots) == ts).all()
    assert session_of(ts, distinct, slots).equals(ts.dt.convert_time_zone("America/New_York").dt.date())
    own = Periods.from_bars(ready.bars, minutes, 252)
    shared = Periods.from_bars(ready.bars, minutes, 252, "close", distinct, slots)
    assert shared.keys.equals(own.keys) and shared.per_year == own.per_year and shared.symbols == own.symbols
    for a, b in zip(shared.cells, own.cells, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(shared.marks, own.marks)
    assert is_intraday(ready) == is_intraday(frame_of(rows))


class SideBlind:
    """A batch slippage model recording what it is given: cost = 1 bp per 100 shares."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], list[int]]] = []

    def forecast_slippage(self, symbol: str, side: str, qty: float, price: float, ts: object = None) -> float:
        return qty / 100.0

    def forecast_many(self, symbols: pl.Series, sides: np.ndarray, qty: np.ndarray, price, ts) -> np.ndarray:
        self.calls.append((symbols.cast(pl.String).to_list(), [int(s) for s in sides]))
        return np.asarray(qty) / 100.0 + np.where(np.asarray(sides) > 0, 0.5, 0.0)


def test_slippage_costs_take_symbols_as_strings_or_a_series_alike() -> None:
    from hybridtrader import SlippageModel

    model = SlippageModel(None)
    cost = SlippageCost(model, notional=10_000.0)
    symbols = ["B", "A", "B", "C"]
    sides = np.array([1, -1, -1, 1])
    prices = np.array([50.0, 125.0, 80.0, 10.0])
    ts = np.full(4, START_NS + 90 * MINUTE_NS)
    plain = cost.round_trip(np.array(symbols), sides, prices, ts)
    for given_symbols in (
        pl.Series("symbol", symbols),
        pl.Series("symbol", symbols, dtype=pl.Enum(["C", "B", "A"])),
    ):
        np.testing.assert_array_equal(cost.round_trip(given_symbols, sides, prices, ts), plain)
    qty = np.maximum(1.0, np.round(10_000.0 / prices))
    by_row = [
        model.forecast_slippage(s, "buy", q, p, int(t)) + model.forecast_slippage(s, "sell", q, p, int(t))
        for s, q, p, t in zip(symbols, qty, prices, ts, strict=True)
    ]
    np.testing.assert_allclose(plain, np.array(by_row) / 1e4, rtol=1e-12)
    # The entry leg on the trade's side, the exit on the other: +1 buys first, -1 sells first.
    recorder = SideBlind()
    out = SlippageCost(recorder, notional=10_000.0).round_trip(np.array(symbols), sides, prices, ts)
    assert recorder.calls == [(symbols, [1, -1, -1, 1]), (symbols, [-1, 1, 1, -1])]
    np.testing.assert_allclose(out, (2 * qty / 100.0 + 0.5) / 1e4)
