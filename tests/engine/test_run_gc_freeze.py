"""`Trader.run` freezes the garbage collector's view of the objects made before the run (a full collection
during it then scans only the run's own objects) and gives them back after, even when the run fails; a
process that froze its own objects first keeps exactly those frozen."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
from hybridtrader.backtest.broker import SimBroker
from hybridtrader.backtest.clock import SimClock
from hybridtrader.backtest.feed import FrameFeed
from hybridtrader.config import Config, with_overrides
from hybridtrader.engine.trader import Trader
from hybridtrader.execution.fills import FillSettings, FillSimulator
from hybridtrader.market.synth import generate_market
from hybridtrader.strategy import Context, Strategy


class FreezeWatcher(Strategy):
    """Records the frozen-object count at each bar time; fails at bar time `fail_at` when given."""

    name = "freeze_watcher"
    book = "swing"

    def __init__(self, config: Config, fail_at: int | None = None) -> None:
        super().__init__(config)
        self.seen: list[int] = []
        self.fail_at = fail_at

    def on_bars(self, ctx: Context, bars: pl.DataFrame) -> None:
        if len(self.seen) == self.fail_at:
            raise RuntimeError("strategy failed")
        self.seen.append(gc.get_freeze_count())


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()


def _run(strategy: FreezeWatcher) -> None:
    bars = generate_market(2, 1, seed=3, ticks=False).bars_1m
    sim = FillSimulator(FillSettings.from_config(strategy.config))
    Trader(strategy.config, [strategy], FrameFeed(bars), SimBroker(sim), SimClock(), cash=1e6).run()


def _config(tmp_path: Path) -> Config:
    return with_overrides(Config(data_dir=tmp_path), ["execution.enable_toxic_time_filtering=false"])


def test_the_run_freezes_what_came_before_and_unfreezes_after(tmp_path: Path, unfrozen: None) -> None:
    before = [object() for _ in range(10)]  # noqa: F841 (kept alive: objects made before the run)
    watcher = FreezeWatcher(_config(tmp_path))
    _run(watcher)
    assert watcher.seen and min(watcher.seen) > 0
    assert gc.get_freeze_count() == 0


def test_a_failed_run_unfreezes_too(tmp_path: Path, unfrozen: None) -> None:
    watcher = FreezeWatcher(_config(tmp_path), fail_at=3)
    with pytest.raises(RuntimeError, match="strategy failed"):
        _run(watcher)
    assert len(watcher.seen) == 3 and min(watcher.seen) > 0
    assert gc.get_freeze_count() == 0


def test_a_process_that_froze_its_objects_keeps_them_frozen(tmp_path: Path, unfrozen: None) -> None:
    config = _config(tmp_path)
    gc.freeze()
    frozen = gc.get_freeze_count()
    watcher = FreezeWatcher(config)
    _run(watcher)
    # not unfrozen (frozen objects freed meanwhile leave the count), not frozen again with the run's objects
    assert watcher.seen and all(0 < n <= frozen for n in watcher.seen)
    assert 0 < gc.get_freeze_count() <= frozen
