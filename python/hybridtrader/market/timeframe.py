"""Bar timeframes as Alpaca spells them (`1Min`, `5Min`, `1Hour`, `1Day`, `1Week`, `1Month`)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from hybridtrader.errors import ConfigError, DataError
from hybridtrader.market.timeconv import NS_PER_DAY, NS_PER_HOUR, NS_PER_MINUTE

_TIMEFRAME = re.compile(r"^(\d+)(Min|T|Hour|H|Day|D|Week|W|Month|M)$")
_UNITS = {"Min": "Min", "T": "Min", "Hour": "Hour", "H": "Hour", "Day": "Day", "D": "Day",
          "Week": "Week", "W": "Week", "Month": "Month", "M": "Month"}
_NS = {"Min": NS_PER_MINUTE, "Hour": NS_PER_HOUR, "Day": NS_PER_DAY, "Week": 7 * NS_PER_DAY,
       "Month": 30 * NS_PER_DAY}
_POLARS = {"Min": "m", "Hour": "h", "Day": "d", "Week": "w", "Month": "mo"}
# Bars per regular session: 390 minutes, 7 hourly bars (the first is the half hour from 9:30).
_PER_SESSION = {"Min": 390.0, "Hour": 7.0, "Day": 1.0, "Week": 0.2, "Month": 1 / 21}


@dataclass(frozen=True)
class Timeframe:
    """An Alpaca timeframe such as 5Min or 1Day, validated like Alpaca validates it."""

    amount: int
    unit: str  # Min | Hour | Day | Week | Month

    @classmethod
    def parse(cls, text: str) -> Timeframe:
        m = _TIMEFRAME.match(text.strip()) if isinstance(text, str) else None
        if not m:
            raise DataError(f"timeframe: invalid value {text!r} (expected e.g. 1Min, 5Min, 1Hour, 1Day)")
        amount, unit = int(m.group(1)), _UNITS[m.group(2)]
        ok = {
            "Min": 1 <= amount <= 59,
            "Hour": 1 <= amount <= 23,
            "Day": amount == 1,
            "Week": amount == 1,
            "Month": amount in (1, 2, 3, 4, 6, 12),
        }[unit]
        if not ok:
            raise DataError(f"timeframe: invalid value {text!r} (amount {amount} not allowed for {unit})")
        return cls(amount, unit)

    @property
    def value(self) -> str:
        return f"{self.amount}{self.unit}"

    @property
    def polars_every(self) -> str:
        return f"{self.amount}{_POLARS[self.unit]}"

    @property
    def nominal_ns(self) -> int:
        """Length of one bar (a month counts 30 days)."""
        return self.amount * _NS[self.unit]

    @property
    def bars_per_session(self) -> float:
        """About how many bars of this timeframe one regular session has."""
        return _PER_SESSION[self.unit] / self.amount

    @property
    def intraday(self) -> bool:
        return self.unit in ("Min", "Hour")


_EVERY_UNITS = {"m": "Min", "h": "Hour"}


def parse_every(every: str) -> tuple[int, str]:
    """'1m' -> (60e9 ns, '1Min'): a streaming bar interval (minutes or hours, as our bars spell it) and
    its Alpaca timeframe (used for backfill)."""
    unit = _EVERY_UNITS.get(every[-1:]) if isinstance(every, str) else None
    if unit is None or not every[:-1].isdigit():
        raise ConfigError(f"every: expected minutes or hours such as '1m', '5m', '1h', got {every!r}")
    try:
        tf = Timeframe.parse(every[:-1] + unit)
    except DataError:
        raise ConfigError(f"every: {every!r} has no Alpaca timeframe (1-59m or 1-23h)") from None
    return tf.nominal_ns, tf.value
