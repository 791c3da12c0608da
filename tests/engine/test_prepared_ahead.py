"""A strategy whose `prepare_ahead` took a group of batches (True) is prepared on each batch's bars alone: the
engine neither cuts nor puts history in front. The reference is the mean reversion computing its features
in `prepare` on the history and the batch (no `prepare_ahead`): the same results, bit for bit."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import polars as pl
from hybridtrader.backtest.broker import SimBroker
from hybridtrader.backtest.clock import SimClock
from hybridtrader.backtest.feed import FrameFeed
from hybridtrader.config import Config, with_overrides
from hybridtrader.engine.events import BarBatch
from hybridtrader.engine.trader import Trader, TraderResult
from hybridtrader.execution.fills import FillSettings, FillSimulator
from hybridtrader.market.synth import generate_market
from hybridtrader.strategy.mean_reversion import IntradayMeanReversion
from polars.testing import assert_frame_equal


class Recorded(IntradayMeanReversion):
    """Records the rows each `prepare` is given and what `prepare_ahead` answered."""

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.given: list[tuple[int, int]] = []  # (rows of bars, session rows)
        self.took: list[bool] = []

    def prepare_ahead(self, history: pl.DataFrame | None, batches: Sequence[BarBatch]) -> bool:
        took = super().prepare_ahead(history, batches)
        self.took.append(took)
        return took

    def prepare(self, bars: pl.DataFrame, session_rows: int) -> pl.DataFrame:
        self.given.append((bars.height, session_rows))
        return super().prepare(bars, session_rows)


class OnHistory(Recorded):
    """The reference: features computed in `prepare`, on the history in front of the batch."""

    def prepare_ahead(self, history: pl.DataFrame | None, batches: Sequence[BarBatch]) -> bool:
        self.took.append(False)
        return False


def _run(config: Config, bars: pl.DataFrame, strategy: Recorded) -> TraderResult:
    sim = FillSimulator(FillSettings.from_config(config))
    return Trader(config, [strategy], FrameFeed(bars), SimBroker(sim), SimClock(), cash=1e6).run()


def test_batches_taken_ahead_are_prepared_without_history(tmp_path: Path) -> None:
    bars = generate_market(8, 6, seed=4, ticks=False, mean_reversion=0.3).bars_1m
    config = with_overrides(
        Config(data_dir=tmp_path),
        ["execution.enable_toxic_time_filtering=false", "execution.enable_time_slicing=false"],
    )
    ahead, reference = Recorded(config), OnHistory(config)
    got, want = _run(config, bars, ahead), _run(config, bars, reference)
    assert ahead.took == [True, True] and reference.took == [False, False]  # groups of 4 sessions
    assert all(rows == session for rows, session in ahead.given)
    assert all(rows > session for rows, session in reference.given[1:])  # history in front
    assert want.orders.height > 20
    for name in ("orders", "fills", "equity", "positions"):
        assert_frame_equal(getattr(got, name), getattr(want, name), check_exact=True)
    assert (got.skipped, got.events) == (want.skipped, want.events)
