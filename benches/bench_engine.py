"""The trading engine end to end (feed -> batch features -> strategy callbacks per bar time -> orders ->
fill simulator -> ledger/exposure/slippage), measured in bars (or ticks) per second.

- mean reversion: the seed's intraday_mean_reversion (rules only) on 1-minute bars of the synthetic
  market, 50 symbols x 252 sessions (about 4.9M bars) in full mode; target >= 1M bars/s.
- EMA 10/30 crossover (strategy/examples/ema_cross.py) flipping 100 shares with market orders: on 1-minute
  bars (50 symbols x 20 sessions) and from trade ticks aggregated to 1-minute bars in Rust (one symbol,
  about 1M ticks; 10 symbols x 100k).
The peers (NautilusTrader, vectorbt, backtrader) run the same workloads in the peer benchmark beside these.

Quick by default (small sizes, for CI); HYBRIDTRADER_BENCH=full for the sizes above.
"""

from __future__ import annotations

import os
import time
from typing import Any

import polars as pl
import pytest
from hybridtrader.backtest.feed import FrameFeed, TickFeed
from hybridtrader.backtest.run import run_backtest
from hybridtrader.config import Config, with_overrides
from hybridtrader.market.synth import generate_market
from hybridtrader.strategy.examples.ema_cross import EmaCross
from hybridtrader.strategy.mean_reversion import IntradayMeanReversion

FULL = os.environ.get("HYBRIDTRADER_BENCH") == "full"
MR_SYMBOLS, MR_SESSIONS = (50, 252) if FULL else (10, 5)
EMA_SYMBOLS, EMA_SESSIONS = (50, 20) if FULL else (10, 3)
TICK_CASES = [(1, 1_000_000), (10, 100_000)] if FULL else [(1, 50_000), (4, 20_000)]


def engine_config(*sets: str) -> Config:
    """Fast paths on: no time slicing (one child per order), no toxic-time calendar work per entry."""
    return with_overrides(
        Config(data_dir="/tmp/hybridtrader-bench"),
        [
            "execution.enable_time_slicing=false",
            "execution.enable_toxic_time_filtering=false",
            "backtest.use_models=false",
            *sets,
        ],
    )


def ema_config() -> Config:
    """Room for every flip: the peers' EMA strategy has no risk caps, so ours must not refuse an order."""
    return engine_config(
        "backtest.cash=10000000",
        "risk.exposure.books.swing.max_open_positions=100000",
        "risk.exposure.books.swing.max_order_notional=1000000000",
    )


def _run(
    benchmark: Any,
    cfg: Config,
    feed_factory: Any,
    strategy_factory: Any,
    units: int,
    what: str,
    refusals_ok: bool = False,
) -> None:
    cpu: list[float] = []

    def once() -> Any:
        start = time.process_time()
        out = run_backtest(cfg, feed=feed_factory(), strategies=[strategy_factory(cfg)])
        cpu.append(time.process_time() - start)
        return out

    bt = benchmark.pedantic(once, rounds=1, iterations=1)
    assert refusals_ok or not bt.result.skipped, bt.result.skipped  # the same orders as the peers
    seconds = benchmark.stats.stats.mean
    # CPU seconds of this process (all its threads) beside the wall time: on a shared machine the wall
    # time also counts the time other processes had the cores
    benchmark.extra_info.update(
        {
            what: units,
            f"{what}_per_s": units / seconds,
            f"{what}_per_cpu_s": units / cpu[0],
            "orders": bt.result.orders.height,
            "fills": bt.result.fills.height,
        }
    )
    print(
        f"\n{benchmark.name}: {units:,} {what} in {seconds:.2f}s = {units / seconds:,.0f} {what}/s "
        f"({units / cpu[0]:,.0f} per CPU second), {bt.result.orders.height:,} orders"
    )


@pytest.fixture(scope="module")
def mr_bars() -> pl.DataFrame:
    return generate_market(MR_SYMBOLS, MR_SESSIONS, seed=0, ticks=False, mean_reversion=0.3).bars_1m


@pytest.fixture(scope="module")
def ema_bars() -> pl.DataFrame:
    return generate_market(EMA_SYMBOLS, EMA_SESSIONS, seed=1, ticks=False).bars_1m


def test_mean_reversion_bars(benchmark: Any, mr_bars: pl.DataFrame) -> None:
    _run(
        benchmark,
        engine_config(),
        lambda: FrameFeed(mr_bars),
        IntradayMeanReversion,
        mr_bars.height,
        "bars",
        True,
    )


def test_ema_cross_bars(benchmark: Any, ema_bars: pl.DataFrame) -> None:
    _run(benchmark, ema_config(), lambda: FrameFeed(ema_bars), EmaCross, ema_bars.height, "bars")


@pytest.mark.parametrize(("symbols", "ticks"), TICK_CASES)
def test_ema_cross_ticks(benchmark: Any, symbols: int, ticks: int) -> None:
    sessions = 1
    per_minute = ticks / symbols / 390 / sessions
    while per_minute > 60:  # keep a realistic trade rate: spread the ticks over more sessions
        sessions += 1
        per_minute = ticks / symbols / 390 / sessions
    trades = generate_market(
        symbols, sessions, seed=2, trades_per_minute=per_minute, quotes_per_trade=0
    ).trades
    _run(benchmark, ema_config(), lambda: TickFeed(trades), EmaCross, trades.height, "ticks")
