"""`CapitalAllocator`: splits account equity between strategies from their daily returns.

Usage (the seed's API; the engine calls the same at each session boundary):

    allocator = CapitalAllocator(config)
    allocator.update_strategy_performance("swing_trend_following", {"2024-01-02": 0.004, ...})
    allocations = allocator.allocate_capital(equity, strategy_metrics)   # {strategy: capital}

`strategy_metrics` maps each strategy to allocate to a dict (None: every enabled strategy of the config);
its one key, optional, is `"returns"`: new daily returns of that strategy (a `{date: return}` mapping or
a Polars frame with `date` and `return` columns), recorded as by `update_strategy_performance` before the
allocation. A daily return is the strategy's P&L of the session divided by the capital it was given.

Estimates: EWMA mean and covariance (`allocation.ewma_moments`, half-life `ewma_half_life_days`) over the
dates every seasoned strategy reported; the last `max_history_days` returns of each strategy are kept, and
reporting a date again replaces its return (a replayed session never counts twice).

Too little history (stated rule): a strategy is on probation while it has fewer than `min_history_days`
returns, or fewer than that many dates in common with the strategies with longer histories (taken longest
first). Each strategy on probation gets an equal share 1/n of the book (n = strategies allocated); the
seasoned k share the remaining k/n by the method (Kelly: their fractional Kelly fractions scaled by k/n);
the vol-target overlay applies only when no strategy is on probation. Equal weight needs no estimates.
Who is on probation, and why, is reported in `Allocation.probation`.

Then bounds, vol target and the leverage cap (`allocation.build_book`), and the turnover limit against the
last allocation (not applied to the first allocation, or when the last one is outside today's bounds).
State (returns, last weights, equity and rebalance date) is saved atomically with a format version after
every change; a corrupt or foreign file is a StateError.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from hybridtrader.config import Config, as_config
from hybridtrader.data.atomic import write_state
from hybridtrader.errors import ConfigError, DataError
from hybridtrader.portfolio import allocation as alloc
from hybridtrader.portfolio.schedule import Decision, market_date, schedule_due
from hybridtrader.portfolio.state_file import load_state

FORMAT_VERSION = 1
METRIC_KEYS = ("returns",)
ESTIMATED = ("inverse_volatility", "risk_parity", "kelly")  # methods that need return estimates
_EPS = 1e-12

Returns = Mapping[date | str, float] | pl.DataFrame


@dataclass(frozen=True)
class Allocation:
    """One allocation: weights (shares of equity) and capital per strategy, and how they came about."""

    equity: float
    method: str
    weights: dict[str, float]
    capital: dict[str, float]
    probation: dict[str, str] = field(default_factory=dict)  # strategy -> why it has no estimates
    notes: list[str] = field(default_factory=list)
    turnover: float = 0.0  # sum |weight - last weight|, after the turnover limit


def _as_day(strategy: str, key: date | str) -> date:
    if isinstance(key, datetime):
        return key.date()
    if isinstance(key, date):
        return key
    try:
        return date.fromisoformat(str(key))
    except ValueError:
        raise DataError(f"returns of {strategy}: {key!r} is not an ISO date") from None


def _returns_items(strategy: str, returns: Returns) -> list[tuple[int, float]]:
    """(date ordinal, return) pairs; DataError for a bad date or a NaN / infinite return."""
    if isinstance(returns, pl.DataFrame):
        missing = {"date", "return"} - set(returns.columns)
        if missing:
            raise DataError(
                f"returns of {strategy}: frame lacks columns {sorted(missing)} (need date, return)")
        pairs: Iterable[tuple[Any, Any]] = zip(returns["date"].to_list(), returns["return"].to_list(),
                                              strict=True)
    elif isinstance(returns, Mapping):
        pairs = returns.items()
    else:
        raise DataError(f"returns of {strategy}: expected a {{date: return}} mapping or a frame with date "
                        f"and return columns, got {type(returns).__name__}")
    out = []
    for key, value in pairs:
        day = _as_day(strategy, key)
        try:
            r = float(value)
        except (TypeError, ValueError):
            raise DataError(f"returns of {strategy} on {day}: {value!r} is not a number") from None
        if not math.isfinite(r):
            raise DataError(f"returns of {strategy} on {day}: {r} (NaN or infinite)")
        out.append((day.toordinal(), r))
    return out


def _merge(old: tuple[np.ndarray, np.ndarray] | None, items: list[tuple[int, float]]
           ) -> tuple[np.ndarray, np.ndarray]:
    """(days, returns) ascending by day with `items` added; an item replaces a day already there."""
    new_days = np.array([d for d, _ in items], dtype=np.int64)
    new_values = np.array([r for _, r in items], dtype=np.float64)
    if old is not None:  # new first: np.unique keeps the first occurrence of each day
        new_days, new_values = np.concatenate([new_days, old[0]]), np.concatenate([new_values, old[1]])
    days, first = np.unique(new_days, return_index=True)
    return days, new_values[first]


def _common(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The days of sorted unique `a` that are in sorted unique `b`."""
    if a.size == b.size and np.array_equal(a, b):  # the usual case: every strategy reports every session
        return a
    pos = np.minimum(np.searchsorted(b, a), b.size - 1)
    return a[b[pos] == a]


class CapitalAllocator:
    def __init__(self, config: Config | dict[str, Any] | None = None, *, state_path: str | Path | None = None,
                 persist: bool = True) -> None:
        """persist=False keeps everything in memory (what-if runs); otherwise state lives at `state_path`,
        else `portfolio.allocation.state_path`, else `<data_dir>/portfolio/allocator.json`."""
        self.config = as_config(config)
        self.settings = self.config.portfolio.allocation
        self.strategies = [n for n, s in self.config.strategies.items() if s.enabled]
        for name in self.settings.bounds:
            if name not in self.config.strategies:
                raise ConfigError(f"portfolio.allocation.bounds.{name}: unknown strategy "
                                  f"(configured: {', '.join(self.config.strategies)})")
        default = Path(self.config.data_dir) / "portfolio" / "allocator.json"
        self.path = Path(state_path or self.settings.state_path or default) if persist else None
        # strategy -> (date ordinals, strictly ascending; daily returns)
        self.history: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.weights: dict[str, float] = {}  # the last allocation
        self.equity: float | None = None
        self.last_rebalance: date | None = None
        self.last: Allocation | None = None  # the last allocation made by this object
        load_state(self.path, FORMAT_VERSION, self._restore)

    # ------------------------------------------------------------------------------ state
    def _restore(self, state: dict[str, Any]) -> None:
        self.history = {name: _merge(None, [(date.fromisoformat(d).toordinal(), float(r))
                                            for d, r in series.items()])
                        for name, series in state["history"].items()}
        self.weights = {str(k): float(v) for k, v in state["weights"].items()}
        self.equity = None if state["equity"] is None else float(state["equity"])
        last = state["last_rebalance"]
        self.last_rebalance = None if last is None else date.fromisoformat(last)

    def save(self) -> None:
        if self.path is None:
            return
        write_state(self.path, FORMAT_VERSION, {
            "history": {name: {date.fromordinal(d).isoformat(): r
                               for d, r in zip(days.tolist(), values.tolist(), strict=True)}
                        for name, (days, values) in self.history.items()},
            "weights": self.weights,
            "equity": self.equity,
            "last_rebalance": None if self.last_rebalance is None else self.last_rebalance.isoformat(),
        })

    # ------------------------------------------------------------------------------ input
    def _known(self, strategy: str, where: str) -> str:
        if strategy not in self.config.strategies:
            raise ConfigError(f"{where}: unknown strategy {strategy!r} "
                              f"(configured: {', '.join(self.config.strategies)})")
        return strategy

    def update_strategy_performance(self, strategy: str, returns: Returns) -> int:
        """Record daily returns of `strategy`; returns how many it now has. A date already recorded is
        replaced. Only the last `max_history_days` are kept."""
        self._known(strategy, "update_strategy_performance")
        items = _returns_items(strategy, returns)
        days, values = _merge(self.history.get(strategy), items)
        keep = self.settings.max_history_days
        self.history[strategy] = (days[-keep:], values[-keep:])
        self.save()
        return self.history_length(strategy)

    def history_length(self, strategy: str) -> int:
        series = self.history.get(strategy)
        return 0 if series is None else int(series[0].size)

    def _names(self, strategy_metrics: Mapping[str, Mapping[str, Any] | None] | None) -> list[str]:
        if strategy_metrics is None:
            return list(self.strategies)
        if not isinstance(strategy_metrics, Mapping):
            raise DataError(f"strategy_metrics: expected a mapping of strategy -> metrics, got "
                            f"{type(strategy_metrics).__name__}")
        for name, metrics in strategy_metrics.items():
            self._known(name, "strategy_metrics")
            if not self.config.strategies[name].enabled:
                raise ConfigError(
                    f"strategy_metrics: strategy {name!r} is disabled (strategies.{name}.enabled)")
            unknown = set(metrics or {}) - set(METRIC_KEYS)
            if unknown:
                raise DataError(f"strategy_metrics[{name!r}]: unknown keys {sorted(unknown)} "
                                f"(allowed: {', '.join(METRIC_KEYS)})")
        for name, metrics in strategy_metrics.items():
            if metrics and metrics.get("returns") is not None:
                self.update_strategy_performance(name, metrics["returns"])
        return list(strategy_metrics)

    # ------------------------------------------------------------------------------ estimates
    def _sample(self, names: list[str]) -> tuple[list[str], np.ndarray, dict[str, str]]:
        """(seasoned strategies, their returns on common dates (T x k, oldest first), probation reasons)."""
        need = self.settings.min_history_days
        probation: dict[str, str] = {}
        seasoned: list[str] = []
        common: np.ndarray | None = None
        for name in sorted(names, key=lambda n: (-self.history_length(n), n)):
            have = self.history_length(name)
            if have < need:
                probation[name] = f"{have} daily returns < min_history_days {need}"
                continue
            days = self.history[name][0]
            shared = days if common is None else _common(common, days)
            if shared.size < need:
                probation[name] = (f"{shared.size} dates in common with {', '.join(seasoned)} "
                                   f"< min_history_days {need}")
                continue
            seasoned.append(name)
            common = shared
        if common is None:
            return [], np.empty((0, 0)), probation
        common = np.sort(common)[-self.settings.max_history_days:]
        columns = []
        for name in seasoned:
            days, values = self.history[name]
            same = days.size == common.size and np.array_equal(days, common)
            columns.append(values if same else values[np.searchsorted(days, common)])
        matrix = np.column_stack(columns)
        return seasoned, matrix, probation

    def estimates(self, names: list[str]) -> tuple[list[str], np.ndarray, np.ndarray, dict[str, str]]:
        """(seasoned strategies, EWMA mean, EWMA covariance, probation reasons) from the recorded returns."""
        seasoned, matrix, probation = self._sample(names)
        if not seasoned:
            return [], np.empty(0), np.empty((0, 0)), probation
        mu, cov = alloc.ewma_moments(matrix, self.settings.ewma_half_life_days)
        return seasoned, mu, cov, probation

    # ------------------------------------------------------------------------------ allocation
    def _bounds(self, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
        s = self.settings
        lo = np.array([s.bounds[n].min_weight if n in s.bounds else s.min_weight for n in names])
        hi = np.array([s.bounds[n].max_weight if n in s.bounds else s.max_weight for n in names])
        return lo, hi

    def plan(self, equity: float, strategy_metrics: Mapping[str, Mapping[str, Any] | None] | None = None
             ) -> Allocation:
        """The allocation `allocate_capital` would make now, without recording it (returns given in
        `strategy_metrics` are recorded: they are performance, not allocation)."""
        try:
            eq = float(equity)
        except (TypeError, ValueError):
            raise DataError(f"equity: expected a number, got {equity!r}") from None
        if not math.isfinite(eq) or eq < 0:
            raise DataError(f"equity: must be a finite number >= 0, got {equity!r}")
        names = self._names(strategy_metrics)
        if not names:
            raise DataError("strategy_metrics: no strategy to allocate to")
        s = self.settings
        n = len(names)
        lo, hi = self._bounds(names)
        raw = np.full(n, 1.0 / n)
        probation: dict[str, str] = {}
        cov_all: np.ndarray | None = None
        if s.method in ESTIMATED:
            seasoned, mu, cov, probation = self.estimates(names)
            if seasoned:
                cov = alloc.check_covariance(cov, seasoned)
                base = alloc.base_weights(s.method, mu, cov, kelly_fraction=s.kelly_fraction,
                                          risk_free=s.risk_free_rate / s.periods_per_year, tol=s.tolerance)
                idx = [names.index(x) for x in seasoned]
                raw[idx] = base * (len(seasoned) / n)
                if not probation:
                    cov_all = np.empty((n, n))
                    cov_all[np.ix_(idx, idx)] = cov
        book = alloc.build_book(raw, lo, hi, budget=s.method != "kelly", leverage_cap=s.leverage_cap,
                                cov=cov_all, vol_target=s.vol_target, periods_per_year=s.periods_per_year)
        notes = list(book.notes)
        if probation and s.vol_target is not None:
            notes.append("vol target not applied: some strategies are on probation")
        target = book.weights
        current = np.array([self.weights.get(x, 0.0) for x in names])
        if not self.weights:
            notes.append("first allocation: no turnover limit")
        elif not self._within(current, lo, hi):
            notes.append("last allocation is outside today's bounds or strategies: no turnover limit")
        else:
            target, share = alloc.limit_turnover(current, target, s.max_turnover)
            if share < 1.0:
                notes.append(f"turnover limited to {s.max_turnover:g}: moved {share:.1%} of the way")
        dropped = sorted(set(self.weights) - set(names))
        if dropped:
            notes.append(f"no longer allocated: {', '.join(dropped)}")
        weights = {x: float(w) for x, w in zip(names, target, strict=True)}
        turnover = float(np.abs(target - current).sum()) + sum(self.weights[x] for x in dropped)
        return Allocation(eq, s.method, weights, {x: w * eq for x, w in weights.items()}, probation, notes,
                          turnover)

    def _within(self, current: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> bool:
        total = current.sum()
        cap = min(self.settings.leverage_cap, hi.sum())
        return bool(np.all(current >= lo - _EPS) and np.all(current <= hi + _EPS)
                    and lo.sum() - _EPS <= total <= cap + _EPS)

    def allocate_capital(self, equity: float,
                         strategy_metrics: Mapping[str, Mapping[str, Any] | None] | None = None, *,
                         now: datetime | date | str | None = None) -> dict[str, float]:
        """{strategy: capital} for `equity` (account currency); records it as the current allocation and
        `now` (default: the wall clock) as the rebalance date. See the module docstring for the rules."""
        result = self.plan(equity, strategy_metrics)
        self.weights = dict(result.weights)
        self.equity = result.equity
        self.last_rebalance = market_date(now)
        self.save()
        self.last = result
        return dict(result.capital)

    # ------------------------------------------------------------------------------ rebalancing
    def rebalance_needed(self, current: Mapping[str, float], target: Mapping[str, float], *,
                         now: datetime | date | str | None = None, equity: float | None = None) -> Decision:
        """Whether to rebalance from `current` to `target` capital ({strategy: capital}), and why.

        Drift: |current_i - target_i| / equity above `rebalance_band` for any strategy (equity: the given
        one, else the sum of `current`). Schedule: a new `rebalance_schedule` period since the last
        allocation (`schedule.schedule_due`). Drift is checked first."""
        for where, book in (("current", current), ("target", target)):
            for name, cap in book.items():
                self._known(name, f"rebalance_needed {where}")
                if not (isinstance(cap, int | float) and math.isfinite(cap) and cap >= 0):
                    raise DataError(f"rebalance_needed {where}[{name!r}]: capital must be a finite number "
                                    f">= 0, got {cap!r}")
        base = float(equity) if equity is not None else float(sum(current.values()))
        if not (math.isfinite(base) and base > 0):
            raise DataError(f"rebalance_needed: equity must be > 0, got {base!r}")
        band = self.settings.rebalance_band
        drift = {n: abs(current.get(n, 0.0) - target.get(n, 0.0)) / base for n in {*current, *target}}
        worst = max(sorted(drift), key=lambda n: drift[n]) if drift else None
        if worst is not None and drift[worst] > band:
            now_w, target_w = current.get(worst, 0.0) / base, target.get(worst, 0.0) / base
            return Decision(True, f"{worst}: {now_w:.2%} of equity vs target {target_w:.2%} "
                                  f"(drift {drift[worst]:.2%} > band {band:.2%})")
        due = schedule_due(self.settings.rebalance_schedule, self.last_rebalance, market_date(now),
                           "rebalance")
        if due:
            return due
        within = f"max drift {drift[worst]:.2%} ({worst})" if worst is not None else "no strategies"
        return Decision(False, f"within band {band:.2%} ({within}); {due.reason}")

