"""Universe selection: chained filters over the bar store and the data caches, each reporting what it
removed and why.

    selection = select_universe(BarStore(root), config, asof="2024-03-01", shorts=True,
                                shortability=ShortabilityCache(...), earnings=EarningsBlackout(...))
    selection.symbols        # what passed every filter
    selection.steps          # [FilterStep(name, removed={symbol: reason}, skipped)] in order
    selection.metrics        # per candidate: dollar_volume, last_close, sessions_with_bars (+ "reason")

Window: the last `lookback_sessions` NYSE sessions up to and including `asof` (default: the session of the
latest stored bar of the candidates), bars of `portfolio.universe.timeframe`. Filters, in order:
1. data: no bar in the window.
2. quality: `check_data_quality` on the symbol's window finds duplicates, NaN/null values, non-positive
   prices or OHLC inconsistencies, or more than `max_missing_share` of the window's expected bars (NYSE
   calendar) are missing (outlier jumps are reported in the metrics, not removed: earnings moves are jumps).
3. price: last close outside [min_price, max_price].
4. liquidity: average daily dollar volume = sum(close x volume) over the window / its sessions (a session
   without bars counts as zero) below `min_dollar_volume`.
5. shortability (only with shorts=True): not shortable, or not easy to borrow when `require_easy_to_borrow`.
6. earnings: inside an earnings blackout on `asof` (skipped, and reported so, without an EarningsBlackout or
   when it is disabled).
7. rank: beyond the `max_symbols` most liquid.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from hybridtrader.config import Config, UniverseConfig, as_config
from hybridtrader.data.bar_store import BarStore, expected_bar_starts
from hybridtrader.data.quality import check_data_quality
from hybridtrader.errors import ConfigError, DataError
from hybridtrader.market import calendar
from hybridtrader.market.schema import normalize_symbols
from hybridtrader.market.timeconv import epoch_ns
from hybridtrader.market.timeframe import Timeframe
from hybridtrader.portfolio.schedule import market_date

if TYPE_CHECKING:  # the caches pull in alpaca-py and requests; only their methods are used here
    from hybridtrader.data.earnings_cache import EarningsBlackout
    from hybridtrader.data.shortability_cache import ShortabilityCache


@dataclass(frozen=True)
class FilterStep:
    name: str
    removed: dict[str, str] = field(default_factory=dict)  # symbol -> why
    skipped: str | None = None  # why the filter did not run


@dataclass(frozen=True)
class UniverseSelection:
    asof: date
    candidates: list[str]
    symbols: list[str]
    steps: list[FilterStep]
    metrics: dict[str, dict[str, Any]]  # per candidate; removed ones carry their "reason"

    @property
    def removed(self) -> dict[str, str]:
        return {s: r for step in self.steps for s, r in step.removed.items()}


@dataclass
class _Context:
    settings: UniverseConfig
    asof: date
    sessions: list[date]
    bars: dict[str, pl.DataFrame]
    metrics: dict[str, dict[str, Any]]
    timeframe: str
    expected: np.ndarray  # UTC ns starts of the bars a complete feed has in the window


Filter = Callable[[list[str], _Context], dict[str, str]]


def _data(symbols: list[str], ctx: _Context) -> dict[str, str]:
    return {s: f"no bars in the {len(ctx.sessions)} sessions to {ctx.asof}" for s in symbols
            if ctx.bars.get(s) is None}


def _quality(symbols: list[str], ctx: _Context) -> dict[str, str]:
    out = {}
    limit = ctx.settings.max_missing_share
    for s in symbols:
        rep = check_data_quality(ctx.bars[s], timeframe=ctx.timeframe)
        have = epoch_ns(ctx.bars[s]["ts"])
        missing = 1.0 - np.isin(ctx.expected, have).sum() / ctx.expected.size if ctx.expected.size else 0.0
        ctx.metrics[s].update(missing_share=float(missing), jumps=rep.jumps)
        faults = [i for i in rep.issues if not i.startswith(("missing bars", "outlier jumps"))]
        if missing > limit:
            faults.append(f"{missing:.1%} of the window's bars missing > max_missing_share {limit:.1%}")
        if faults:
            out[s] = "; ".join(faults)
    return out


def _price(symbols: list[str], ctx: _Context) -> dict[str, str]:
    lo, hi = ctx.settings.min_price, ctx.settings.max_price
    out = {}
    for s in symbols:
        px = ctx.metrics[s]["last_close"]
        if px < lo:
            out[s] = f"last close {px:.2f} < min_price {lo:g}"
        elif hi is not None and px > hi:
            out[s] = f"last close {px:.2f} > max_price {hi:g}"
    return out


def _liquidity(symbols: list[str], ctx: _Context) -> dict[str, str]:
    floor = ctx.settings.min_dollar_volume
    return {s: f"average daily dollar volume {ctx.metrics[s]['dollar_volume']:,.0f} < min_dollar_volume "
               f"{floor:,.0f}" for s in symbols if ctx.metrics[s]["dollar_volume"] < floor}


def select_universe(
    store: BarStore,
    config: Config | dict[str, Any] | None = None,
    *,
    asof: datetime | date | str | None = None,
    candidates: Iterable[str] | None = None,
    shorts: bool = False,
    shortability: ShortabilityCache | None = None,
    earnings: EarningsBlackout | None = None,
) -> UniverseSelection:
    """Run the filters over `candidates` (default: every symbol in the store at the configured timeframe)."""
    settings = as_config(config).portfolio.universe
    try:
        tf = Timeframe.parse(settings.timeframe)
    except ValueError as e:
        raise ConfigError(f"portfolio.universe.timeframe: {e}") from None
    names = normalize_symbols(list(candidates)) if candidates is not None else store.symbols(tf)
    if not names:
        raise DataError(f"universe: no candidate symbols (the store at {store.root} has no {tf.value} bars)")
    if shorts and shortability is None:
        raise ConfigError("universe: shorts=True needs a ShortabilityCache for the shortability filter")
    day = _asof(store, tf, names, asof)
    sessions = _window(day, settings.lookback_sessions)
    start = datetime.combine(sessions[0], time(0), calendar.NEW_YORK)
    end = datetime.combine(day, time(23, 59, 59), calendar.NEW_YORK)
    frame = store.read(names, tf, start, end)
    bars = {str(k[0]): part for k, part in frame.group_by("symbol")}
    metrics: dict[str, dict[str, Any]] = {s: {} for s in names}
    for s, part in bars.items():
        days = part["ts"].dt.convert_time_zone(calendar.NEW_YORK.key).dt.date().n_unique()
        metrics[s].update(last_close=float(part["close"][-1]), sessions_with_bars=days,
                          dollar_volume=float((part["close"] * part["volume"]).sum()) / len(sessions))
    ctx = _Context(settings, day, sessions, bars, metrics, tf.value, expected_bar_starts(tf, start, end))

    chain: list[tuple[str, Filter | None, str | None]] = [
        ("data", _data, None), ("quality", _quality, None), ("price", _price, None),
        ("liquidity", _liquidity, None),
        ("shortability", _shortable(shortability, settings.require_easy_to_borrow) if shorts else None,
         "strategies do not short"),
        ("earnings", _blackout(earnings) if earnings is not None and earnings.enabled else None,
         "no earnings calendar (EarningsBlackout not given or disabled)"),
        ("rank", _rank if settings.max_symbols is not None else None, "max_symbols not set"),
    ]
    kept, steps = list(names), []
    for name, fn, why_not in chain:
        if fn is None:
            steps.append(FilterStep(name, skipped=why_not))
            continue
        removed = fn(kept, ctx)
        for s, reason in removed.items():
            metrics[s]["reason"] = f"{name}: {reason}"
        kept = [s for s in kept if s not in removed]
        steps.append(FilterStep(name, removed))
    return UniverseSelection(day, names, kept, steps, metrics)


def _shortable(cache: ShortabilityCache | None, easy: bool) -> Filter:
    def run(symbols: list[str], ctx: _Context) -> dict[str, str]:
        assert cache is not None
        found = cache.get_many(symbols) if symbols else {}
        out = {}
        for s in symbols:
            if not found[s].shortable:
                out[s] = "not shortable"
            elif easy and not found[s].easy_to_borrow:
                out[s] = "not easy to borrow (require_easy_to_borrow)"
        return out
    return run


def _blackout(cal: EarningsBlackout) -> Filter:
    def run(symbols: list[str], ctx: _Context) -> dict[str, str]:
        if symbols:
            cal.prefetch(symbols)
        out = {}
        for s in symbols:
            hits = [(a, b) for a, b in cal.blackout_ranges(s) if a <= ctx.asof <= b]
            if hits:
                out[s] = f"earnings blackout {hits[0][0]}..{hits[0][1]}"
        return out
    return run


def _rank(symbols: list[str], ctx: _Context) -> dict[str, str]:
    top = ctx.settings.max_symbols
    assert top is not None
    order = sorted(symbols, key=lambda s: (-ctx.metrics[s]["dollar_volume"], s))
    return {s: f"rank {i + 1} by dollar volume > max_symbols {top}" for i, s in enumerate(order) if i >= top}


def _asof(store: BarStore, tf: Timeframe, names: list[str], asof: datetime | date | str | None) -> date:
    if asof is not None:
        day = market_date(asof)
    else:
        last = store.scan(names, tf).select(pl.col("ts").max()).collect().item()
        if last is None:
            raise DataError(f"universe: no {tf.value} bars stored for {', '.join(names[:5])}...")
        day = market_date(last)
    return day if calendar.is_session(day) else calendar.previous_session(day)


def _window(day: date, n: int) -> list[date]:
    """The n sessions ending with `day` (a session)."""
    out = [day]
    while len(out) < n:
        out.append(calendar.previous_session(out[-1]))
    return out[::-1]
