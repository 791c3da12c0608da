"""Exposure manager: per-book caps, trading state, circuit breaker and end-of-day flattening.

The caps, the running sums and the state machine live in Rust (`hybridtrader._core.ExposureCore`, see
`rust/src/exposure.rs` for the exact rules); `ExposureManager` subclasses it, so the hot-path methods
(`check_order`, `max_allowed_qty`, `update_position`, `apply_fill`, `mark_price`, `mark_row`, `set_equity`)
are the Rust methods themselves with no Python frame in between. This module adds construction from the
config, the seed's stateless `check_exposure_limits`, the calendar-aware `should_flatten_intraday` /
`should_emergency_flatten`, and the column-oriented `check_orders`.

Units: quantities in shares (signed for positions: negative is short), prices and notionals in account
currency, caps in percent of account equity. Books default to `intraday` and `swing`
(`risk.exposure.books` adds more). Symbols are shortable unless marked otherwise with `set_shortable`
(default from `risk.exposure.default_shortable`); symbols without a sector (`set_sector(s)`) are not subject
to the sector cap.

Trading state: ACTIVE (caps apply), REDUCING (only risk-reducing orders: |position| shrinks without changing
sign) and HALTED (only orders that flatten a position exactly to zero, whatever the caps). Risk-reducing
orders skip the order-notional, shortability and open-positions checks and pass even when the book is over
its caps; they are refused only when they would take a cap that held past it (covering a short in a
net-long book raises net exposure; an order priced far from the last mark revalues the position). No allowed
order outside HALTED takes a metric that was within its cap past it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import polars as pl

from hybridtrader._core import ExposureCore
from hybridtrader.config import ConfigLike, RiskConfig, config_section
from hybridtrader.errors import ConfigError
from hybridtrader.market.calendar import NEW_YORK, is_session, session_bounds
from hybridtrader.market.schema import encode_symbols, side_signs
from hybridtrader.market.timeconv import from_utc_ns, utc_ns

BREAKER_STATE_FORMAT = 1
_BREAKER_KEYS = ("session", "session_start_equity", "peak_equity", "state", "state_reason", "state_since_ns")
REASON_CODES: list[str] = list(ExposureCore.reason_codes)
_REASONS = pl.Series("reason", REASON_CODES, dtype=pl.Enum(REASON_CODES))


def _utc(now: datetime | int | None, name: str = "now") -> datetime:
    """An aware UTC datetime from an aware datetime, UTC epoch nanoseconds (int) or None (the wall clock)."""
    return datetime.now(UTC) if now is None else from_utc_ns(utc_ns(now, name))


def _encode(core: ExposureCore, values: Any, name: str) -> tuple[list[str], np.ndarray]:
    """Dictionary-encode a string column: (distinct values, uint32 codes). Numpy arrays and lists go to the
    core's Rust encoder (a numpy unicode array is read in place: 20-40x faster than building a Series)."""
    if isinstance(values, pl.Series):
        return encode_symbols(values, name=name)
    if isinstance(values, np.ndarray):
        if values.ndim != 1:
            raise ConfigError(f"{name} must be one-dimensional, got shape {values.shape}")
        if values.dtype.kind == "S":
            values = values.astype(str)
        if values.dtype.kind == "U":
            width = values.dtype.itemsize // 4
            if width == 0:
                values = values.astype("<U1")
                width = 1
            view = np.ascontiguousarray(values).view(np.uint32).reshape(len(values), width)
            return core.encode_symbols(view)
        if values.dtype.kind == "O":
            return core.encode_symbols(values.tolist())
        raise ConfigError(f"{name} must hold strings, got dtype {values.dtype}")
    return core.encode_symbols(values)


def _floats(values: Any, name: str) -> np.ndarray:
    if isinstance(values, pl.Series):
        values = values.to_numpy()
    arr = np.ascontiguousarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ConfigError(f"{name} must be one-dimensional, got shape {arr.shape}")
    return arr


def _market_value(item: Any, where: str) -> float:
    if isinstance(item, Mapping):
        if "market_value" in item:
            return float(item["market_value"])
        if "qty" in item and "price" in item:
            return float(item["qty"]) * float(item["price"])
        keys = ", ".join(map(str, item))
        raise ConfigError(f"{where} needs 'market_value' or 'qty' and 'price' (keys: {keys})")
    try:
        return float(item)
    except (TypeError, ValueError):
        raise ConfigError(f"{where} must be a market value, got {item!r}") from None


def _market_values(positions: Any) -> tuple[list[Any], list[float]]:
    """(symbols or None per position, signed market values) from the accepted position layouts."""
    if positions is None:
        return [], []
    if isinstance(positions, pl.DataFrame):
        positions = positions.to_dicts()
    if isinstance(positions, Mapping):
        keys = list(positions)
        return keys, [_market_value(positions[k], f"positions[{k!r}]") for k in keys]
    rows = list(positions)
    keys = [r.get("symbol") if isinstance(r, Mapping) else None for r in rows]
    return keys, [_market_value(r, f"positions[{i}]") for i, r in enumerate(rows)]


class ExposureManager(ExposureCore):
    """Exposure caps per book, trading state and circuit breaker, built from the `risk` config section.

    Hot path (Rust, O(1), thread-safe): `check_order(symbol, side, qty, price, book="intraday") ->
    (allowed, reason)`, `refusal(...)` (the same check as the engine counts a refusal: None, or
    "exposure: " and the reason's first two words), `max_allowed_qty(symbol, side, qty, price, book)` (the
    largest whole quantity <= qty that `check_order` allows, by a binary search: exact for an order that
    opens or adds to a position), `update_position(book, symbol, qty, price)` (absolute signed qty),
    `apply_fill(book, symbol, side, qty, price)`, `mark_price(symbol, price)`, `mark_row(closes)` (the
    symbols given to `hold(symbols, columns)`, at their columns), `set_equity(equity)`.
    Reference data: `set_sector`, `set_sectors`, `set_shortable`. Introspection: `position`, `positions`,
    `metrics`, `sector_exposure`, `state`, `state_reason`, `state_since_ns`.

    Equity starts at 0, which refuses every order that adds risk: call `set_equity` (or
    `should_emergency_flatten`, which records equity) first. All methods are thread-safe; `check_orders`
    releases the GIL while it works (other threads' calls wait for it to finish).
    """

    __slots__ = ("config",)
    config: RiskConfig

    def __new__(cls, config: ConfigLike = None) -> ExposureManager:
        risk: RiskConfig = config_section(config, "risk")
        books = [
            (
                name,
                risk.gross_cap_pct(name),
                caps.max_net_exposure_pct,
                caps.max_symbol_exposure_pct,
                caps.max_sector_exposure_pct,
                caps.max_order_notional,
                caps.max_open_positions,
            )
            for name, caps in risk.exposure.books.items()
        ]
        cb = risk.circuit_breaker
        self = super().__new__(
            cls,
            books,
            cb.max_daily_loss_pct,
            cb.max_drawdown_pct,
            cb.reduce_daily_loss_pct,
            cb.reduce_drawdown_pct,
            risk.exposure.default_shortable,
        )
        self.config = risk
        return self

    # ------------------------------------------------------------------------- seed API
    def check_exposure_limits(
        self,
        equity: float,
        positions: Mapping[str, Any] | Sequence[Any] | pl.DataFrame | None,
        order_value: float,
        book: str = "intraday",
        symbol: str | None = None,
    ) -> tuple[bool, str]:
        """Stateless check of one order against `book`'s caps (and the trading state).

        `positions` are the book's current positions as signed market values (long > 0, short < 0):
        a mapping symbol -> value, a sequence of values, or rows (a list of dicts or a Polars frame) with
        `market_value`, or `qty` (signed) and `price`, and optionally `symbol`; a mapping's values may
        also be such dicts. `order_value` is the order's signed notional: positive buys, negative sells
        (a positive value is therefore a buy). With `symbol` naming one of the positions, the order adds
        to it (so it may reduce risk, and the per-symbol cap applies to the combined value); otherwise it
        opens a new position. Checked: order notional, open positions, per-symbol, gross and net caps;
        the manager's own positions, sectors and shortability are not used.
        """
        keys, values = _market_values(positions)
        existing = keys.index(symbol) if symbol is not None and symbol in keys else None
        label = symbol or "(order)"
        return self.check_exposure_values(book, float(equity), values, existing, float(order_value), label)

    def should_flatten_intraday(self, now: datetime | int | None = None) -> bool:
        """True from `risk.exposure.flatten_minutes_before_close` minutes before today's NYSE close until
        the close (early closes at 13:00 ET count). False outside regular hours (before the window, after
        the close) and on weekends and holidays. `now`: a timezone-aware datetime or UTC epoch nanoseconds
        (default: the wall clock)."""
        ts = _utc(now)
        day = ts.astimezone(NEW_YORK).date()
        if not is_session(day):
            return False
        _, close = session_bounds(day)
        start = close - timedelta(minutes=self.config.exposure.flatten_minutes_before_close)
        return start <= ts < close

    def should_emergency_flatten(self, equity: float, now: datetime | int | None = None) -> bool:
        """Record `equity` and evaluate the circuit breaker; True when the manager is HALTED.

        The first call on a new NYSE session date (New York calendar date of `now`) starts a session: its
        equity becomes the daily-loss reference and the state returns to ACTIVE. (The very first call
        starts one whatever the date; calls on weekends and holidays belong to the previous session.)
        Within a session, a daily loss of `circuit_breaker.max_daily_loss_pct` or a drawdown from the peak
        equity of `max_drawdown_pct` (both reached or exceeded) halts the manager until the next session or
        `reset()`; the optional `reduce_*` levels move it to REDUCING first."""
        ts = _utc(now)
        day = ts.astimezone(NEW_YORK).date()
        current = self.session_day
        # A new session date starts a session; so does the very first call, even on a closed day.
        if current is None or (is_session(day) and current != day.toordinal()):
            self.start_session_day(day.toordinal(), float(equity), utc_ns(ts))
        return self.update_breaker(float(equity), utc_ns(ts))

    def update_equity(self, equity: float, ts_ns: int) -> bool:
        """The circuit breaker's step within the current session (no calendar work, for a loop that marks
        equity every bar): record `equity` at `ts_ns` and return True when HALTED. Call
        `should_emergency_flatten` at each session's start so the session references roll over."""
        return self.update_breaker(float(equity), int(ts_ns))

    def set_positions(self, book: str, positions: pl.DataFrame) -> None:
        """Make `book` hold exactly `positions` (columns `symbol`, `qty` signed, `price`), e.g. the broker's
        positions at start-up; positions of the book not in the frame are closed."""
        missing = {"symbol", "qty", "price"} - set(positions.columns)
        if missing:
            raise ConfigError(f"positions frame needs columns {sorted(missing)} (has {positions.columns})")
        if positions["symbol"].n_unique() != positions.height:
            raise ConfigError("positions frame has duplicate symbols")
        rows = positions.select("symbol", "qty", "price").rows()
        for i, (sym, qty, price) in enumerate(rows):
            if sym is None or qty is None or price is None:
                raise ConfigError(f"positions frame row {i} has nulls: {(sym, qty, price)}")
        held = {sym for sym, _, _ in self.positions(book)}
        for sym in held - {row[0] for row in rows}:
            self.update_position(book, sym, 0.0, 1.0)
        for sym, qty, price in rows:
            self.update_position(book, sym, float(qty), float(price))

    def load_symbols(self, symbols: pl.DataFrame) -> None:
        """Sectors and shortability from a reference frame with a `symbol` column and optional `sector`
        (null: no sector) and `shortable` (Boolean) columns - e.g. `SyntheticMarket.symbols`."""
        if "symbol" not in symbols.columns:
            raise ConfigError(
                f"symbols frame needs a 'symbol' column (columns: {', '.join(symbols.columns)})"
            )
        if symbols["symbol"].null_count():
            raise ConfigError("symbols frame has null symbols")
        if "sector" in symbols.columns:
            self.set_sectors(dict(zip(symbols["symbol"].to_list(), symbols["sector"].to_list(), strict=True)))
        if "shortable" in symbols.columns:
            for sym, ok in zip(symbols["symbol"].to_list(), symbols["shortable"].to_list(), strict=True):
                if ok is None:
                    raise ConfigError(f"symbols frame: shortable is null for {sym}")
                self.set_shortable(sym, bool(ok))

    # ----------------------------------------------------------------------- state / session
    def start_session(self, equity: float, session: date | None = None, now: datetime | None = None) -> None:
        """Start a session by hand (default: today's New York date): equity becomes the daily-loss
        reference and the state returns to ACTIVE."""
        ts = _utc(now)
        day = session or ts.astimezone(NEW_YORK).date()
        self.start_session_day(day.toordinal(), float(equity), utc_ns(ts))

    @property
    def session(self) -> date | None:
        """The current session date (None before the first one)."""
        d = self.session_day
        return None if d is None else date.fromordinal(d)

    def reset(self, now: datetime | None = None) -> None:
        """Back to ACTIVE; the daily-loss and drawdown references restart from the current equity."""
        self.reset_at(utc_ns(_utc(now)))

    def breaker_state(self) -> dict[str, Any]:
        """The circuit breaker and trading state as plain JSON-able data, for the live runner to persist
        (atomically) so that a restart cannot silently lift a halt or forget the peak equity."""
        session = self.session

        def number(v: float) -> float | None:
            return None if v != v else v  # NaN (no session yet) -> null

        return {
            "format": BREAKER_STATE_FORMAT,
            "session": None if session is None else session.isoformat(),
            "session_start_equity": number(self.session_start_equity),
            "peak_equity": number(self.peak_equity),
            "state": self.state,
            "state_reason": self.state_reason,
            "state_since_ns": self.state_since_ns,
        }

    def restore_breaker_state(self, saved: Mapping[str, Any]) -> None:
        """Restore what `breaker_state` returned; ValueError naming the bad key (unknown format included)."""
        if not isinstance(saved, Mapping):
            raise ConfigError(f"breaker state must be a mapping, got {type(saved).__name__}")
        if saved.get("format") != BREAKER_STATE_FORMAT:
            got, want = saved.get("format"), BREAKER_STATE_FORMAT
            raise ConfigError(f"breaker state format {got!r} is not supported (expected {want})")
        missing = sorted(set(_BREAKER_KEYS) - set(saved))
        if missing:
            raise ConfigError(f"breaker state is missing {', '.join(missing)}")
        try:
            day = None if saved["session"] is None else date.fromisoformat(saved["session"]).toordinal()
        except (TypeError, ValueError):
            got = saved["session"]
            raise ConfigError(f"breaker state: session must be an ISO date or null, got {got!r}") from None
        nums = {}
        for key in ("session_start_equity", "peak_equity"):
            v = saved[key]
            if v is not None and (isinstance(v, bool) or not isinstance(v, int | float)):
                raise ConfigError(f"breaker state: {key} must be a number or null, got {v!r}")
            nums[key] = float("nan") if v is None else float(v)
        since = saved["state_since_ns"]
        if isinstance(since, bool) or not isinstance(since, int):
            raise ConfigError(f"breaker state: state_since_ns must be an integer, got {since!r}")
        if not isinstance(saved["state_reason"], str):
            raise ConfigError(f"breaker state: state_reason must be a str, got {saved['state_reason']!r}")
        start, peak = nums["session_start_equity"], nums["peak_equity"]
        self.restore_breaker(day, start, peak, saved["state"], saved["state_reason"], since)

    @property
    def state_since(self) -> datetime:
        """When the current state was entered (UTC)."""
        return from_utc_ns(self.state_since_ns)

    # ---------------------------------------------------------------------------- batch
    def check_orders(
        self,
        symbols: Any,
        sides: Any,
        qtys: Any,
        prices: Any,
        book: str = "intraday",
        sequential: bool = False,
    ) -> pl.DataFrame:
        """Check many orders of one book; a frame with `allowed` (Boolean) and `reason` (Enum of
        `REASON_CODES`: "ok", "gross", "net", "symbol", "sector", "order_notional", "open_positions",
        "not_shortable", "reducing", "halted", "equity"), one row per order.

        Columns are numpy arrays, Polars Series or lists: symbols as strings, sides as "buy"/"sell"
        strings or integers +1/-1, qtys (> 0) and prices (> 0) as floats. With `sequential=False` (default)
        every order is checked independently against the current state (nothing changes: the answer for
        order i is exactly `check_order` for it). With `sequential=True` orders are checked in turn and each
        allowed one is applied as a fill at its price before the next is checked (state changes). The work
        runs in Rust with the GIL released. Invalid values raise ValueError naming the first bad order."""
        names, codes = _encode(self, symbols, "symbols")
        signs = side_signs(sides, encode=lambda v: _encode(self, v, "sides"))
        q, p = _floats(qtys, "qtys"), _floats(prices, "prices")
        allowed, reason = self.check_batch_codes(book, names, codes, signs, q, p, sequential)
        return pl.DataFrame(
            [pl.Series("allowed", allowed), _REASONS.gather(reason).alias("reason")]
        )

__all__ = ["BREAKER_STATE_FORMAT", "REASON_CODES", "ExposureManager"]
