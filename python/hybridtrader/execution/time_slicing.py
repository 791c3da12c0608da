"""Time slicing (`execution.enable_time_slicing`): split a parent order into child orders over a window.

TWAP: the window is cut into equal slices and the parent quantity into equal integer parts (the first
`qty % slices` slices take one share more), so the children always sum to the parent. With a participation
cap each child is at most `max_participation x expected volume of its slice`; what a slice cannot take rolls
forward to the next one, and what is left after the last slice is reported as `unfilled` — quantity is never
dropped. Expected volume comes from ADV (the slippage model's) spread over each NYSE session with a U-shaped
intraday profile; time outside regular sessions has no expected volume.

Pure functions shared by the backtester and the live runner.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from hybridtrader.config import ExecutionConfig
from hybridtrader.errors import ConfigError
from hybridtrader.market.calendar import NEW_YORK, is_session, session_at, session_bounds
from hybridtrader.market.timeconv import NS_PER_MINUTE, from_utc_ns, utc_ns

if TYPE_CHECKING:
    from hybridtrader.execution.slippage_model import SlippageModel

SESSION_MINUTES = 390  # a regular (not early-close) session


@dataclass(frozen=True)
class SlicePlan:
    """A parent order's schedule.

    `children` has one row per slice, zero-quantity slices included: `ts` (slice start, Datetime ns UTC),
    `qty` (Int64), `expected_volume` (Float64, shares in the slice) and `cap` (Int64; null when uncapped).
    `children["qty"].sum() + unfilled == requested` always.
    """

    children: pl.DataFrame
    requested: int
    unfilled: int

    @property
    def scheduled(self) -> int:
        return self.requested - self.unfilled


def _u_cdf(u: float, u_shape: float) -> float:
    """Share of a session's volume traded before session fraction u, for the density
    f(u) ∝ 1 + b (2u - 1)^2 with b = u_shape - 1 (so f(0) = f(1) = u_shape x f(1/2))."""
    b = u_shape - 1.0
    return (u + b * ((2.0 * u - 1.0) ** 3 + 1.0) / 6.0) / (1.0 + b / 3.0)


def expected_volume(start_ns: int, end_ns: int, adv_shares: float, u_shape: float = 3.0) -> float:
    """Expected shares traded in [start, end): each session carries ADV x (its minutes / 390), spread with the
    U-shaped profile; early closes therefore count as the shorter days they are."""
    if end_ns <= start_ns:
        return 0.0
    day = from_utc_ns(start_ns).astimezone(NEW_YORK).date()
    last = from_utc_ns(end_ns).astimezone(NEW_YORK).date()
    total = 0.0
    while day <= last:
        if is_session(day):
            o, c = (utc_ns(x) for x in session_bounds(day))
            s, e = max(start_ns, o), min(end_ns, c)
            if e > s:
                length = c - o
                share = _u_cdf((e - o) / length, u_shape) - _u_cdf((s - o) / length, u_shape)
                total += adv_shares * (length / NS_PER_MINUTE / SESSION_MINUTES) * share
        day += timedelta(days=1)
    return total


def _check_qty(qty: int) -> int:
    if isinstance(qty, bool) or not isinstance(qty, int | np.integer) or qty <= 0:
        raise ConfigError(f"qty must be a positive integer number of shares, got {qty!r}")
    return int(qty)


def slice_order(
    qty: int,
    start: datetime | int,
    end: datetime | int,
    *,
    slices: int,
    max_participation: float | None = None,
    adv_shares: float | None = None,
    volume_u_shape: float = 3.0,
) -> SlicePlan:
    """TWAP schedule of `qty` shares over [start, end) in `slices` equal slices, optionally capped at
    `max_participation` of each slice's expected volume (which needs `adv_shares`)."""
    qty = _check_qty(qty)
    start_ns, end_ns = utc_ns(start, "start"), utc_ns(end, "end")
    if end_ns <= start_ns:
        raise ConfigError(f"end must be after start, got start={start!r} end={end!r}")
    if isinstance(slices, bool) or not isinstance(slices, int) or slices < 1:
        raise ConfigError(f"slices must be an integer >= 1, got {slices!r}")
    if max_participation is not None:
        if not 0 < max_participation <= 1:
            raise ConfigError(f"max_participation must be in (0, 1], got {max_participation!r}")
        if adv_shares is None or not adv_shares > 0:
            raise ConfigError(f"a participation cap needs adv_shares > 0, got {adv_shares!r}")
    if volume_u_shape < 1:
        raise ConfigError(f"volume_u_shape must be >= 1, got {volume_u_shape!r}")

    bounds = [start_ns + (end_ns - start_ns) * i // slices for i in range(slices + 1)]
    base, extra = divmod(qty, slices)
    volumes = [
        expected_volume(bounds[i], bounds[i + 1], adv_shares, volume_u_shape) if adv_shares else 0.0
        for i in range(slices)
    ]
    children: list[int] = []
    caps: list[int | None] = []
    carry = 0
    for i in range(slices):
        want = base + (1 if i < extra else 0) + carry
        cap = None if max_participation is None else int(np.floor(max_participation * volumes[i]))
        child = want if cap is None else min(want, cap)
        children.append(child)
        caps.append(cap)
        carry = want - child
    frame = pl.DataFrame(
        {
            "ts": pl.Series(bounds[:-1], dtype=pl.Int64).cast(pl.Datetime("ns", "UTC")),
            "qty": pl.Series(children, dtype=pl.Int64),
            "expected_volume": pl.Series(volumes, dtype=pl.Float64),
            "cap": pl.Series(caps, dtype=pl.Int64),
        }
    )
    return SlicePlan(children=frame, requested=qty, unfilled=carry)


def plan_parent_order(
    qty: int,
    start: datetime | int,
    *,
    config: ExecutionConfig,
    model: SlippageModel | None = None,
    symbol: str | None = None,
    adv_shares: float | None = None,
) -> SlicePlan:
    """The schedule the config asks for: one child at `start` when `enable_time_slicing` is off; otherwise
    `time_slicing.slices` slices over `time_slicing.window_minutes` (cut at the session close), capped at
    `time_slicing.max_participation` of the volume implied by `adv_shares` or by the model's ADV of
    `symbol`. `start` must fall within a regular session."""
    start_ns = utc_ns(start, "start")
    start_dt = from_utc_ns(start_ns)
    session: date | None = session_at(start_dt)
    if session is None:
        raise ConfigError(f"start {start_dt.isoformat()} is outside the regular NYSE session")
    if not config.enable_time_slicing:
        return slice_order(qty, start_ns, start_ns + 1, slices=1)
    ts_cfg = config.time_slicing
    if adv_shares is None:
        if model is None or symbol is None:
            raise ConfigError("time slicing needs adv_shares, or a slippage model and a symbol")
        adv_shares = float(model.symbol_params(symbol)["adv_shares"])
    close_ns = utc_ns(session_bounds(session)[1])
    end_ns = min(start_ns + round(ts_cfg.window_minutes * NS_PER_MINUTE), close_ns)
    return slice_order(
        qty,
        start_ns,
        end_ns,
        slices=ts_cfg.slices,
        max_participation=ts_cfg.max_participation,
        adv_shares=adv_shares,
        volume_u_shape=ts_cfg.volume_u_shape,
    )
