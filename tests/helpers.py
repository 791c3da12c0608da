"""Plain helpers several test files share (import them: `from helpers import MIN, ny`)."""

from __future__ import annotations

from datetime import date, datetime

import polars as pl
from hybridtrader.market.calendar import NEW_YORK

MIN = 60 * 10**9  # one minute in ns, written out (the tests' own reference, not the package's constant)
UTC_NS = pl.Datetime("ns", "UTC")


def ny(d: date, hh: int, mm: int, ss: int = 0) -> datetime:
    """An aware New York wall-clock time on day `d`."""
    return datetime(d.year, d.month, d.day, hh, mm, ss, tzinfo=NEW_YORK)
