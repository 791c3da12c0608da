"""Calendar schedules shared by rebalancing and universe rotation: is a new period due, and why.

A schedule's periods are New York calendar days, ISO weeks or months; an action recorded in one period is
due again from the first moment of the next (a weekly rebalance done on Wednesday is due on Monday).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

from hybridtrader.config import Schedule
from hybridtrader.market.calendar import NEW_YORK
from hybridtrader.market.timeconv import to_utc


@dataclass(frozen=True)
class Decision:
    """A yes/no answer with the reason a person reads (`bool(decision)` is the answer)."""

    due: bool
    reason: str

    def __bool__(self) -> bool:
        return self.due


def market_date(when: datetime | date | str | None) -> date:
    """The New York date of a time (naive datetimes are UTC); a date is taken as is; None: now."""
    if when is None:
        return datetime.now(UTC).astimezone(NEW_YORK).date()
    if isinstance(when, date) and not isinstance(when, datetime):
        return when
    return to_utc("now", when).astimezone(NEW_YORK).date()


def period(schedule: Schedule, day: date) -> tuple[int, ...]:
    if schedule == "daily":
        return (day.year, day.month, day.day)
    if schedule == "weekly":
        iso = day.isocalendar()
        return (iso.year, iso.week)
    return (day.year, day.month)


def schedule_due(schedule: Schedule, last: date | None, now: date, what: str) -> Decision:
    """Whether `what` is due under `schedule`, last done on `last` (None: never)."""
    if last is None:
        return Decision(True, f"no {what} recorded yet")
    if period(schedule, now) != period(schedule, last):
        return Decision(True, f"{schedule} {what} due: last on {last.isoformat()}, now {now.isoformat()}")
    return Decision(False, f"{schedule} {what} not due: last on {last.isoformat()}, now {now.isoformat()}")
