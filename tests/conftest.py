"""Shared by the whole suite: the small synthetic market the data, venue and integration tests read.

This file also puts tests/ on the import path (pytest's prepend mode adds a conftest's folder), so test
files in any folder import the shared plain helpers from `helpers.py` and `bar_reference.py`. (Helpers are
not imported from a conftest: every folder's conftest is imported as the module `conftest`, so a test would
get its own folder's.)
"""

from __future__ import annotations

import polars as pl
import pytest
from hybridtrader.market.synth import generate_market
from hybridtrader.venue import ReplayMarket


def small_market(symbols: int = 3, sessions: int = 2, start: str = "2024-01-02", seed: int = 0,
                 trades_per_minute: float = 20.0) -> ReplayMarket:
    """The synthetic market (names S00, S01...) with reference data fixed for the tests: S01 is not
    shortable, only S00 is easy to borrow; S00 reports before the open of the last session, S01 after the
    close of the first. At 20 trades a minute every session minute has a bar."""
    names = [f"S{i:02d}" for i in range(symbols)]
    m = generate_market(symbols=names, sessions=sessions, start=start, seed=seed,
                        trades_per_minute=trades_per_minute)
    days = m.bars_1d["ts"].dt.convert_time_zone("America/New_York").dt.date().unique().sort()
    info = m.symbols.with_columns(shortable=pl.col("symbol") != "S01",
                                  easy_to_borrow=pl.col("symbol") == "S00")
    earnings = pl.DataFrame({"symbol": names[:2], "date": [days[-1], days[0]], "hour": ["bmo", "amc"],
                             "eps_estimate": [1.0, 2.0], "eps_actual": [1.1, 1.9]})
    return ReplayMarket(trades=m.trades, quotes=m.quotes, bars_1m=m.bars_1m, bars_1d=m.bars_1d, symbols=info,
                        earnings=earnings)


@pytest.fixture(scope="session")
def market() -> ReplayMarket:
    return small_market()


