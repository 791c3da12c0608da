"""Quiet stretches: a run whose strategies say when they may act (`Strategy.wakes_at`) takes the bar times
where nothing happens in one step (marks, equity rows and breaker steps in numpy and one Rust call). The
reference is the same run with the hook taken away, which runs the full loop body at every bar time: every
result must be identical, bit for bit, including a breaker that trips inside a stretch and a held symbol
without bars in a session."""

from __future__ import annotations

from bisect import bisect_left
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hybridtrader.backtest.broker import SimBroker
from hybridtrader.backtest.clock import SimClock
from hybridtrader.backtest.feed import FrameFeed
from hybridtrader.config import Config, with_overrides
from hybridtrader.engine.orders import OrderRequest
from hybridtrader.engine.trader import Trader, TraderResult
from hybridtrader.execution.fills import FillSettings, FillSimulator
from hybridtrader.market.calendar import NEW_YORK
from hybridtrader.market.synth import generate_market
from hybridtrader.market.timeconv import epoch_ns, from_utc_ns, time_runs
from hybridtrader.risk.exposure_manager import ExposureManager
from hybridtrader.strategy import Context, Strategy
from hybridtrader.strategy.examples.ema_cross import EmaCross
from hybridtrader.strategy.mean_reversion import IntradayMeanReversion
from hybridtrader.strategy.rules import NO_ROW, EventRows
from hybridtrader.strategy.swing_trend import SwingTrendFollowing
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal


class Buys(Strategy):
    """Buys `qty` shares of the first `width` symbols of a bar time at the bar times `plan` (indices in each
    session); holds them for `hold` bar times (None: for good). Records when `on_bars` is called."""

    name = "buys"
    book = "swing"

    def __init__(self, config: Config, plan: set[int], qty: float, width: int, hold: int | None) -> None:
        super().__init__(config)
        self.plan, self.qty, self.width, self.hold = plan, qty, width, hold
        self._open: dict[str, int] = {}  # symbol -> bar times left (hold is not None)
        self._plan_rows: list[int] = []
        self.called_at: list[int] = []  # ctx.now_ns of each on_bars call

    def prepare(self, bars: pl.DataFrame, session_rows: int) -> pl.DataFrame:
        frame = bars.tail(session_rows)
        starts, _ = time_runs(epoch_ns(frame["ts"]))
        self._plan_rows = [int(starts[b]) for b in sorted(self.plan) if b < len(starts)]
        return frame

    def wakes_at(self, row: int) -> int:
        if self._open:
            return row
        k = bisect_left(self._plan_rows, row)
        return self._plan_rows[k] if k < len(self._plan_rows) else NO_ROW

    def on_bars(self, ctx: Context, bars: pl.DataFrame) -> None:
        self.called_at.append(ctx.now_ns)
        for symbol, left in list(self._open.items()):
            if left <= 1:
                ctx.close(symbol)
                del self._open[symbol]
            else:
                self._open[symbol] = left - 1
        if ctx.bar_index in self.plan:
            for symbol in bars["symbol"].to_list()[: self.width]:
                sent = symbol not in self._open and ctx.submit(OrderRequest(symbol, "buy", self.qty), "buy")
                if sent and self.hold is not None:
                    self._open[symbol] = self.hold


def _every_bar_time(strategy: Strategy) -> Strategy:
    """`strategy` without its `wakes_at`: the engine calls it at every bar time."""
    plain = type(f"Every{type(strategy).__name__}", (type(strategy),), {"wakes_at": Strategy.wakes_at})
    strategy.__class__ = plain
    return strategy


def _config(tmp_path: Path, *sets: str) -> Config:
    return with_overrides(
        Config(data_dir=tmp_path),
        ["execution.enable_toxic_time_filtering=false", "execution.enable_time_slicing=false", *sets],
    )


def _run(config: Config, bars: pl.DataFrame, strategies: list[Strategy]) -> tuple[TraderResult, Trader]:
    sim = FillSimulator(FillSettings.from_config(config))
    trader = Trader(config, strategies, FrameFeed(bars), SimBroker(sim), SimClock(), cash=1e6)
    return trader.run(), trader


def _assert_same(got: tuple[TraderResult, Trader], want: tuple[TraderResult, Trader]) -> None:
    (a, ta), (b, tb) = got, want
    for name in ("orders", "fills", "equity", "positions"):
        assert_frame_equal(getattr(a, name), getattr(b, name), check_exact=True)
    assert (a.events, a.skipped, a.bars, a.sessions) == (b.events, b.skipped, b.bars, b.sessions)
    assert ta.exposure.breaker_state() == tb.exposure.breaker_state()
    assert (ta.equity, ta.now_ns, ta.clock.now_ns()) == (tb.equity, tb.now_ns, tb.clock.now_ns())


def _without_session_bars(bars: pl.DataFrame, symbol: str, session: int) -> pl.DataFrame:
    """`bars` without `symbol`'s bars of the `session`-th session (0-based)."""
    day = pl.col("ts").dt.convert_time_zone("America/New_York").dt.date()
    days = bars.select(day.unique().sort()).to_series()
    return bars.filter((pl.col("symbol") != symbol) | (day != days[session]))


def test_breaker_trips_inside_a_stretch_with_a_symbol_held_without_bars(tmp_path: Path) -> None:
    """Bought at the first bar time of each session, held for good: the second session has no bars of one
    held symbol (valued at its last mark), and the daily-loss limit trips between two bar times the
    strategy acts at, inside a stretch."""
    bars = generate_market(3, 3, seed=5, ticks=False).bars_1m
    first = sorted(bars["symbol"].unique().to_list())[0]
    bars = _without_session_bars(bars, first, 1)
    config = _config(tmp_path, "risk.circuit_breaker.max_daily_loss_pct=0.05")
    quiet = Buys(config, {0, 200}, 1_000.0, 3, None)
    got = _run(config, bars, [quiet])
    want = _run(config, bars, [_every_bar_time(Buys(config, {0, 200}, 1_000.0, 3, None))])
    _assert_same(got, want)
    halts = [e[: len("2024-01-03 12:19")] for e in got[0].events if "circuit breaker" in e]
    called = {f"{from_utc_ns(ns).astimezone(NEW_YORK):%Y-%m-%d %H:%M}" for ns in quiet.called_at}
    assert halts and not called & set(halts)  # it tripped at a bar time the strategy was not called at
    assert got[0].positions.filter(pl.col("symbol") == first).height == 1
    assert got[0].equity.height == bars["ts"].n_unique()


@settings(max_examples=12, deadline=None)
@given(
    seed=st.integers(0, 1_000),
    plan=st.sets(st.integers(0, 389), min_size=1, max_size=6),
    hold=st.one_of(st.none(), st.integers(1, 60)),
    width=st.integers(1, 3),
    loss=st.floats(0.02, 1.0),
    drop=st.booleans(),
)
def test_quiet_runs_equal_the_bar_by_bar_loop(
    tmp_path_factory: pytest.TempPathFactory,
    seed: int,
    plan: set[int],
    hold: int | None,
    width: int,
    loss: float,
    drop: bool,
) -> None:
    bars = generate_market(3, 2, seed=seed, ticks=False).bars_1m
    if drop:  # a symbol bought in the first session has no bars in the second
        bars = _without_session_bars(bars, sorted(bars["symbol"].unique().to_list())[0], 1)
    config = _config(tmp_path_factory.mktemp("q"), f"risk.circuit_breaker.max_daily_loss_pct={loss}")
    got = _run(config, bars, [Buys(config, plan, 1_000.0, width, hold)])
    want = _run(config, bars, [_every_bar_time(Buys(config, plan, 1_000.0, width, hold))])
    _assert_same(got, want)


@pytest.mark.parametrize("kind", ["mean_reversion", "swing", "ema"])
def test_seed_strategies_hook_equals_calling_them_at_every_bar_time(tmp_path: Path, kind: str) -> None:
    bars = generate_market(6, 3, seed=2, ticks=False, mean_reversion=0.3).bars_1m
    config = _config(tmp_path, "backtest.use_models=false")

    def make() -> list[Strategy]:
        if kind == "mean_reversion":
            return [IntradayMeanReversion(config)]
        if kind == "swing":
            return [IntradayMeanReversion(config), SwingTrendFollowing(config)]
        return [EmaCross(config)]

    got = _run(config, bars, make())
    want = _run(config, bars, [_every_bar_time(s) for s in make()])
    assert got[0].orders.height > 10
    _assert_same(got, want)


def test_a_strategy_without_the_hook_is_called_at_every_bar_time(tmp_path: Path) -> None:
    bars = generate_market(2, 1, seed=3, ticks=False).bars_1m
    config = _config(tmp_path)
    quiet, plain = Buys(config, {5}, 10.0, 1, None), _every_bar_time(Buys(config, {5}, 10.0, 1, None))
    _run(config, bars, [quiet])
    _run(config, bars, [plain])
    assert len(plain.called_at) == bars["ts"].n_unique()  # type: ignore[attr-defined]
    # its bar time, those its order is open at and the flatten time: full steps
    assert set(quiet.called_at) < set(plain.called_at) and len(quiet.called_at) <= 5


@settings(max_examples=100, deadline=None)
@given(rows=st.lists(st.integers(0, 50), max_size=20), row=st.integers(0, 60))
def test_first_event_row_from(rows: list[int], row: int) -> None:
    events = np.zeros(51, dtype=bool)
    events[rows] = True
    later = [r for r in range(51) if events[r] and r >= row]
    assert EventRows(events).first_from(row) == (later[0] if later else NO_ROW)


@settings(max_examples=100, deadline=None)
@given(
    moves=st.lists(st.floats(-0.02, 0.02), min_size=1, max_size=40),
    stop=st.booleans(),
    reduce=st.booleans(),
)
def test_breaker_path_is_its_step_at_each_point(moves: list[float], stop: bool, reduce: bool) -> None:
    sets = ["risk.circuit_breaker.max_daily_loss_pct=3", "risk.circuit_breaker.max_drawdown_pct=4"]
    if reduce:
        sets.append("risk.circuit_breaker.reduce_daily_loss_pct=1.5")
    config = with_overrides(Config(), sets)
    equities = 1e6 * np.cumprod(1.0 + np.array(moves))
    ts = np.arange(1, len(moves) + 1, dtype=np.int64) * 60_000_000_000
    path, steps = ExposureManager(config), ExposureManager(config)
    for m in (path, steps):
        m.start_session_day(1, 1e6, 0)
    taken = path.update_breaker_path(equities, ts, stop)
    want = len(moves)
    for k, (e, t) in enumerate(zip(equities.tolist(), ts.tolist(), strict=True)):
        if steps.update_breaker(e, t) and stop:
            want = k + 1
            break
    assert taken == want
    assert path.breaker_state() == steps.breaker_state() and path.equity == steps.equity
