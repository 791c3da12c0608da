"""The Trader loop with the real fill simulator behind a SimBroker, on small synthetic markets: decision
timing, fills booked into ledger/exposure/slippage, pending exposure, cancel/replace, end-of-day and
emergency flattening. References are computed from the bars by hand."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest
from hybridtrader.backtest.broker import SimBroker
from hybridtrader.backtest.clock import SimClock
from hybridtrader.backtest.feed import FrameFeed
from hybridtrader.config import Config, with_overrides
from hybridtrader.engine.orders import OrderRequest
from hybridtrader.engine.trader import Trader
from hybridtrader.execution.fills import FillSettings, FillSimulator
from hybridtrader.market.synth import generate_market
from hybridtrader.strategy import Context, Strategy

NS_MIN = 60_000_000_000


@pytest.fixture(scope="module")
def bars() -> pl.DataFrame:
    return generate_market(2, 2, seed=4, ticks=False).bars_1m


def _config(tmp_path: Path, *sets: str) -> Config:
    free = [
        "execution.fills.impact=false",
        "execution.fills.sec_fee_rate=0",
        "execution.fills.taf_per_share=0",
        "execution.fills.bar_participation=1",
        "execution.enable_toxic_time_filtering=false",
    ]
    return with_overrides(Config(data_dir=tmp_path), [*free, *sets])


def _trader(cfg: Config, strategies: list[Strategy], bars: pl.DataFrame) -> Trader:
    sim = FillSimulator(FillSettings.from_config(cfg))
    return Trader(cfg, strategies, FrameFeed(bars), SimBroker(sim), SimClock(), cash=1e6)


class Scripted(Strategy):
    """Sends what `script` says at given bar indexes of the first session; remembers what it saw."""

    name = "scripted"

    def __init__(self, config: Config, script: dict[int, object], book: str = "intraday") -> None:
        super().__init__(config)
        self.script, self.book = script, book
        self.seen: list[tuple[int, int, int]] = []  # (bar index, now, max ts of the bars it got)
        self.ids: dict[str, str | None] = {}
        self.sessions = 0

    def on_bars(self, ctx: Context, bars: pl.DataFrame) -> None:
        self.seen.append((ctx.bar_index, ctx.now_ns, int(bars["ts"].dt.epoch("ns").max())))
        action = self.script.get(ctx.bar_index) if self.sessions == 0 else None
        if callable(action):
            action(self, ctx)

    def on_session_close(self, ctx: Context) -> None:
        self.sessions += 1


@pytest.mark.parametrize(("latency_ms", "bar"), [(0.0, 4), (50.0, 5)])
def test_orders_fill_at_the_next_bar_open_after_latency(
    tmp_path: Path, bars: pl.DataFrame, latency_ms: float, bar: int
) -> None:
    cfg = _config(tmp_path, f"execution.fills.entry_latency_ms={latency_ms}")
    sym = bars["symbol"].min()

    def buy(s: Scripted, ctx: Context) -> None:
        s.ids["buy"] = ctx.submit(OrderRequest(sym, "buy", 10), "b")

    strat = Scripted(cfg, {3: buy}, book="swing")
    trader = _trader(cfg, [strat], bars)
    result = trader.run()
    # decisions only ever see closed bars: now = bar start + 1 minute
    assert all(now == ts + NS_MIN for _, now, ts in strat.seen)
    fill = result.fills.row(0, named=True)
    one = bars.filter(pl.col("symbol") == sym).sort("ts")
    decision_ts = one["ts"][3]
    # decided when bar 3 closes (bar 4's start); active after the latency; trades on the first bar that
    # starts then or later: bar 4 with no latency, bar 5 with any
    next_bar = one.row(bar, named=True)
    assert fill["price"] == pytest.approx(next_bar["open"])
    assert fill["ts"] >= decision_ts + timedelta(minutes=1)
    order = result.orders.row(0, named=True)
    assert order["status"] == "filled" and order["decision_price"] == pytest.approx(one["close"][3])
    assert order["client_order_id"] == strat.ids["buy"]
    assert trader.ledger.position(sym) == 10
    assert trader.exposure.position("swing", sym)[0] == 10  # booked from the fill
    assert trader.slippage.symbol_params(sym)["n_fills"] == 1  # learned from the fill
    # equity = cash + 10 x last close, marked every bar
    last_close = one["close"][-1]
    assert result.equity["equity"][-1] == pytest.approx(1e6 - 10 * next_bar["open"] + 10 * last_close)


def test_open_orders_are_pending_exposure_and_cancel_releases_it(tmp_path: Path, bars: pl.DataFrame) -> None:
    cfg = _config(tmp_path)
    sym = bars["symbol"].min()
    seen: dict[str, float] = {}

    def far_limit(s: Scripted, ctx: Context) -> None:
        s.ids["lim"] = ctx.submit(OrderRequest(sym, "buy", 50, type="limit", limit_price=1.0), "lim")

    def look(s: Scripted, ctx: Context) -> None:
        seen["pending"] = s._trader.exposure.position("intraday", sym)[0]  # type: ignore[attr-defined]
        ctx.cancel(s.ids["lim"])  # type: ignore[arg-type]

    def after(s: Scripted, ctx: Context) -> None:
        seen["after"] = s._trader.exposure.position("intraday", sym)[0]  # type: ignore[attr-defined]

    strat = Scripted(cfg, {1: far_limit, 5: look, 8: after})
    trader = _trader(cfg, [strat], bars)
    strat._trader = trader  # type: ignore[attr-defined]
    result = trader.run()
    assert seen == {"pending": 50.0, "after": 0.0}
    assert result.orders["status"].to_list() == ["canceled"]
    assert result.fills.height == 0


def test_replace_moves_a_limit_into_the_market(tmp_path: Path, bars: pl.DataFrame) -> None:
    cfg = _config(tmp_path)
    sym = bars["symbol"].min()

    def far_limit(s: Scripted, ctx: Context) -> None:
        s.ids["lim"] = ctx.submit(OrderRequest(sym, "buy", 20, type="limit", limit_price=1.0), "lim")

    def reprice(s: Scripted, ctx: Context) -> None:
        s.ids["new"] = ctx.replace(s.ids["lim"], "lim2", limit_price=ctx.price(sym) * 1.05)  # type: ignore[arg-type]

    strat = Scripted(cfg, {1: far_limit, 4: reprice}, book="swing")
    result = _trader(cfg, [strat], bars).run()
    status = dict(zip(result.orders["client_order_id"], result.orders["status"], strict=True))
    assert status == {strat.ids["lim"]: "replaced", strat.ids["new"]: "filled"}
    assert result.fills["qty"].sum() == 20


def test_intraday_book_is_flattened_before_the_close_and_swing_is_not(
    tmp_path: Path, bars: pl.DataFrame
) -> None:
    cfg = _config(tmp_path, "risk.exposure.flatten_minutes_before_close=10")
    sym = bars["symbol"].min()

    def buy(s: Scripted, ctx: Context) -> None:
        ctx.submit(OrderRequest(sym, "buy", 5), "b")

    intraday = Scripted(cfg, {2: buy})
    swing = Scripted(cfg, {2: buy}, book="swing")
    swing.name = "swing_one"
    trader = _trader(cfg, [intraday, swing], bars)
    result = trader.run()
    assert trader.ledger.position(sym, "scripted") == 0
    assert trader.ledger.position(sym, "swing_one") == 5
    flat = result.orders.filter(pl.col("leg") == "flatten").row(0, named=True)
    close_ny = flat["decision_ts"].astimezone(__import__("zoneinfo").ZoneInfo("America/New_York"))
    assert (close_ny.hour, close_ny.minute) == (15, 50)
    assert any("end of day" in e for e in result.events)


def test_the_breaker_flattens_every_book(tmp_path: Path, bars: pl.DataFrame) -> None:
    # any loss halts: the first adverse mark after buying stops the session and flattens
    cfg = _config(
        tmp_path,
        "risk.circuit_breaker.max_daily_loss_pct=0.0001",
        "risk.circuit_breaker.reduce_daily_loss_pct=null",
    )
    sym = bars["symbol"].min()

    def buy(s: Scripted, ctx: Context) -> None:
        ctx.submit(OrderRequest(sym, "buy", 200), "b")

    strat = Scripted(cfg, {1: buy}, book="swing")
    trader = _trader(cfg, [strat], bars)
    result = trader.run()
    assert any("circuit breaker" in e for e in result.events)
    assert trader.ledger.position(sym) == 0


def test_a_late_first_bar_leaves_the_equity_finite(tmp_path: Path, bars: pl.DataFrame) -> None:
    """Thin names often have no bar in the first minutes; before its first bar a symbol is worth nothing in
    the marks (it cannot be held), not NaN."""
    late, other = sorted(bars["symbol"].unique())
    first = bars["ts"].min()
    thin = bars.filter((pl.col("symbol") != late) | (pl.col("ts") >= first + timedelta(minutes=5)))
    cfg = _config(tmp_path)

    def buy(s: Scripted, ctx: Context) -> None:
        s.ids["buy"] = ctx.submit(OrderRequest(other, "buy", 10), "b")

    result = _trader(cfg, [Scripted(cfg, {1: buy}, book="swing")], thin).run()
    assert result.fills.height == 1
    assert result.equity["equity"].is_finite().all()
    assert result.equity.height == thin["ts"].n_unique()


def test_enter_sends_the_most_the_gross_cap_allows_and_refuses_once_it_is_full(
    tmp_path: Path, bars: pl.DataFrame
) -> None:
    """Sized far above a 3% gross cap (tiny ATR), each entry is cut to what the cap has left, pending
    orders included, restated here by hand: floor(room / price) shares; a third entry finds the cap full
    and is counted once, as the 1-share refusal; the sent entries are not counted by `submit` again."""
    cfg = _config(tmp_path, "risk.max_gross_exposure_pct_intraday=3", "execution.enable_time_slicing=false")
    first, second = sorted(bars["symbol"].unique())
    sent: dict[str, float] = {}
    expected: dict[str, float] = {}

    def enter(s: Scripted, ctx: Context) -> None:
        room = ctx.equity * 0.03
        for sym in (first, second):
            price = ctx.price(sym)
            expected[sym] = float(int(room / price))
            room -= expected[sym] * price
            sent[sym] = ctx.enter(sym, "buy", 0.01)
        sent["again"] = ctx.enter(first, "buy", 0.01)

    strat = Scripted(cfg, {3: enter})
    trader = _trader(cfg, [strat], bars)
    result = trader.run()
    assert sent == {**expected, "again": 0.0} and expected[first] > 0 and expected[second] > 0
    entries = result.orders.filter(pl.col("leg") == "entry").sort("symbol")
    assert entries["qty"].to_list() == [expected[first], expected[second]]
    assert result.skipped == {"exposure: gross exposure": 1}
