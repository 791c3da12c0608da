"""The rotated universe in a backtest (`portfolio.universe.in_engine`): each session trades only the
symbols selected from the bar store's daily bars up to the previous session. The reference selection is
computed here from the daily bars with Polars (top `max_symbols` by average close x volume over the
lookback window); opening fills are replayed from the fills table."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import polars as pl
import pytest
from hybridtrader.backtest.run import run_backtest, write_outputs
from hybridtrader.config import Config, with_overrides
from hybridtrader.data.bar_store import BarStore
from hybridtrader.errors import ConfigError
from hybridtrader.market.calendar import NEW_YORK, previous_session
from hybridtrader.market.synth import generate_market
from hybridtrader.strategy.examples.ema_cross import EmaCross
from hybridtrader.strategy.mean_reversion import IntradayMeanReversion

LOOKBACK, KEEP = 5, 3


def _config(tmp_path: Path, store: Path) -> Config:
    return with_overrides(
        Config(data_dir=str(tmp_path), strategies={"ema_cross": {}}),
        [
            "execution.enable_time_slicing=false",
            "backtest.use_models=false",
            "backtest.data=store",
            f"backtest.store={store}",
            "portfolio.universe.in_engine=true",
            f"portfolio.universe.lookback_sessions={LOOKBACK}",
            f"portfolio.universe.max_symbols={KEEP}",
            "portfolio.universe.min_dollar_volume=0",
            "portfolio.universe.min_price=0",
            "portfolio.universe.rotation_schedule=daily",
            "portfolio.universe.min_retention_sessions=0",
        ],
    )


def _reference(daily: pl.DataFrame, session: date) -> set[str]:
    """Top KEEP symbols by mean close x volume over the LOOKBACK sessions ending the session before."""
    days = [previous_session(session)]
    while len(days) < LOOKBACK:
        days.append(previous_session(days[-1]))
    window = daily.filter(pl.col("ts").dt.convert_time_zone(str(NEW_YORK)).dt.date().is_in(days))
    adv = window.group_by("symbol").agg((pl.col("close") * pl.col("volume")).mean().alias("adv"))
    return set(adv.sort("adv", descending=True)["symbol"].head(KEEP))


def test_backtest_trades_only_its_universe(tmp_path: Path) -> None:
    market = generate_market(8, 10, seed=5, ticks=False, mean_reversion=0.3)
    store = BarStore(tmp_path / "bars")
    store.upsert(market.bars_1m, "1Min")
    store.upsert(market.bars_1d, "1Day")
    sessions = sorted(set(market.bars_1d["ts"].dt.convert_time_zone(str(NEW_YORK)).dt.date()))
    cfg = _config(tmp_path, tmp_path / "bars")
    bt = run_backtest(
        cfg, start=sessions[-3], end=sessions[-1], strategies=[IntradayMeanReversion(cfg), EmaCross(cfg)]
    )
    table = bt.tables["universe"]
    assert table["session"].to_list() == sessions[-3:]
    universe = {r["session"]: set(r["symbols"].split(",")) for r in table.iter_rows(named=True)}
    for session, symbols in universe.items():
        assert symbols == _reference(market.bars_1d, session), session
    assert table["turnover"][0] == 1.0
    held: dict[tuple[str, str], float] = {}
    opened = 0
    for row in bt.result.fills.iter_rows(named=True):
        key = (row["strategy"], row["symbol"])
        before = held.get(key, 0.0)
        after = before + (row["qty"] if row["side"] == "buy" else -row["qty"])
        held[key] = after
        if abs(after) > abs(before) and before * after >= 0:  # opens or adds
            opened += 1
            assert row["symbol"] in universe[row["ts"].astimezone(NEW_YORK).date()], row
    assert opened > 0
    assert bt.result.skipped.get("not in the universe", 0) > 0  # the other symbols were wanted and refused
    write_outputs(bt, tmp_path / "out")
    assert "Universe turnover" in (tmp_path / "out" / "tearsheet.html").read_text()


def test_universe_needs_the_store(tmp_path: Path) -> None:
    cfg = with_overrides(Config(data_dir=str(tmp_path)), ["portfolio.universe.in_engine=true"])
    with pytest.raises(ConfigError, match=r"portfolio\.universe\.in_engine: needs backtest\.data=store"):
        run_backtest(cfg)
