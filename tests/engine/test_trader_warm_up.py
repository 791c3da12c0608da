"""`Trader.warm_up`: bars from before the run become the strategies' history, so a run that starts at a
session computes the same features there as a run that came through the sessions before it (what
`hybridtrader run` relies on when the live node trades only the last session)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
from hybridtrader.backtest.broker import SimBroker
from hybridtrader.backtest.clock import SimClock
from hybridtrader.backtest.feed import FrameFeed
from hybridtrader.config import Config
from hybridtrader.engine.trader import Trader
from hybridtrader.execution.fills import FillSettings, FillSimulator
from hybridtrader.market import calendar
from hybridtrader.market.synth import generate_market
from hybridtrader.strategy.mean_reversion import IntradayMeanReversion


class Recording(IntradayMeanReversion):
    """The seed mean-reversion strategy, keeping every frame `prepare` gave the engine and the bars it got."""

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.got: list[pl.DataFrame] = []
        self.prepared: list[pl.DataFrame] = []

    def prepare(self, bars: pl.DataFrame, session_rows: int) -> pl.DataFrame:
        self.got.append(bars)
        frame = super().prepare(bars, session_rows)
        self.prepared.append(frame)
        return frame


def _trader(cfg: Config, strategy: Recording, bars: pl.DataFrame) -> Trader:
    sim = FillSimulator(FillSettings.from_config(cfg))
    return Trader(cfg, [strategy], FrameFeed(bars), SimBroker(sim), SimClock(), cash=1e6)


def test_warm_up_gives_the_features_of_a_longer_run(tmp_path: Path) -> None:
    cfg = Config(data_dir=tmp_path)
    bars = generate_market(3, 2, seed=5, ticks=False).bars_1m
    second = calendar.session_bounds(sorted(FrameFeed(bars).days)[1])[0]
    before, last = bars.filter(pl.col("ts") < second), bars.filter(pl.col("ts") >= second)

    through = Recording(cfg)
    _trader(cfg, through, bars).run()  # both sessions

    warm = Recording(cfg)
    trader = _trader(cfg, warm, last)
    trader.warm_up(before.sort("ts", "symbol"))
    assert trader.n_bars == 0 and trader.ledger.equity() == 1e6 and not trader.sent  # nothing traded
    trader.run()

    # the history in front of the last session's batch: the last history_bars bars of each symbol
    history = warm.got[0].head(warm.got[0].height - last.height)
    expected = before.sort("ts", "symbol").filter(
        pl.int_range(pl.len()).reverse().over("symbol") < warm.history_bars
    )
    assert history.equals(expected)
    assert history.group_by("symbol").len()["len"].to_list() == [warm.history_bars] * 3
    # and the features there are those of the run through both sessions
    assert warm.prepared[0].equals(through.prepared[1])


def test_without_warm_up_the_first_session_starts_cold(tmp_path: Path) -> None:
    cfg = Config(data_dir=tmp_path)
    bars = generate_market(2, 1, seed=5, ticks=False).bars_1m
    cold = Recording(cfg)
    _trader(cfg, cold, bars).run()
    assert cold.got[0].height == bars.height  # no history in front
