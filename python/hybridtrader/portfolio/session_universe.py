"""The universe the engine trades (`portfolio.universe.in_engine`), in a backtest and in the live node: at
each session open, when the rotation tracker says a rotation is due, the filters run on the bar store as of
the previous session (no look-ahead) and the tracker takes the selection; the engine trades the tracker's
universe. Every session's universe is recorded with its turnover = (added + removed) / size of the universe
before (1 at the first)."""

from __future__ import annotations

from datetime import date

import polars as pl

from hybridtrader.config import Config
from hybridtrader.data.bar_store import BarStore
from hybridtrader.market.calendar import previous_session
from hybridtrader.portfolio.universe import select_universe
from hybridtrader.portfolio.universe_rotation import UniverseRotationTracker

UNIVERSE_SCHEMA = {
    "session": pl.Date,
    "size": pl.Int64,
    "added": pl.Int64,
    "removed": pl.Int64,
    "turnover": pl.Float64,
    "rotated": pl.Boolean,
    "symbols": pl.String,  # comma-separated
}


class SessionUniverse:
    """Callable as the Trader's `universe`: the symbols a session may trade. persist=False (a backtest)
    keeps the rotation history in memory, never touching the live history file."""

    def __init__(
        self, store: BarStore, config: Config, candidates: list[str], *, persist: bool = False
    ) -> None:
        self.store, self.config, self.candidates = store, config, candidates
        self.tracker = UniverseRotationTracker(config, persist=persist)
        self.rows: list[tuple[object, ...]] = []

    def __call__(self, session: date) -> set[str]:
        before = self.tracker.universe
        added = removed = 0
        rotated = bool(self.tracker.should_rotate(session))
        if rotated:
            sel = select_universe(
                self.store, self.config, asof=previous_session(session), candidates=self.candidates
            )
            result = self.tracker.update_universe(sel.symbols, sel.metrics, now=session)
            added, removed = len(result.added), len(result.removed)
        now = self.tracker.universe
        turnover = (added + removed) / len(before) if before else float(bool(now))
        self.rows.append((session, len(now), added, removed, turnover, rotated, ",".join(now)))
        return set(now)

    def frame(self) -> pl.DataFrame:
        return pl.DataFrame(self.rows, schema=UNIVERSE_SCHEMA, orient="row")
