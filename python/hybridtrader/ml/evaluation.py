"""Vectorised, marked-to-market out-of-sample evaluation of labelled events traded on a model's probabilities
(the evaluation inside training; the event-driven engine's backtest is elsewhere).

A trade is an event whose out-of-sample probability reaches the threshold; over its life it earns exactly
the event's net return (the number its label was made from): in every period it is open it books
side x (price at the period's end - price at the previous mark) / entry price, the last mark being the exit
price, and the round-trip cost is booked when it exits. Marking to market matters: booking a multi-period
trade's whole return on its exit period makes neighbouring periods share most of their P&L and inflates
the Sharpe ratio by about the square root of the holding time.

Sizing is fixed so that gross exposure never exceeds equity: each trade gets 1 / (n_symbols x horizon_bars)
of equity, since a symbol can have at most `horizon_bars` overlapping trades open. Periods are
`minutes`-long buckets of UTC time with intraday bars and one session (New York date) with daily bars;
every period of the evaluated span counts, flat ones included. Sharpe, PSR and drawdown come from that
per-period return series, annualised with the observed number of periods per session.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
import polars as pl

from hybridtrader.errors import DataError
from hybridtrader.ml.features import out_of_order, symbol_runs
from hybridtrader.ml.labels import session_of, time_slots
from hybridtrader.ml.sharpe import probabilistic_sharpe_ratio, return_moments


def basket_relative(
    bars: pl.DataFrame, column: str = "pnl_close", slots: np.ndarray | None = None
) -> pl.DataFrame:
    """`bars` with `column` = close / M(ts): M is the equal-weighted basket of all symbols (the mean of
    the symbols' 1-bar log returns at each bar time, compounded). A position in this price is the stock
    hedged with the same notional of the basket. `slots`: each row's position among the sorted distinct
    bar times (`labels.time_slots`) when the caller holds them; the rows are then in (symbol, ts) order."""
    order = None
    if slots is None:
        slots = time_slots(bars["ts"], bars["ts"].unique().sort())
        if bars.select(out_of_order()).item():  # usually sorted
            order = bars.select(pl.int_range(pl.len()).sort_by("symbol", "ts")).to_series().to_numpy()
    ordered, ordered_slots = (bars, slots) if order is None else (bars[order], slots[order])
    # In (symbol, ts) order a 1-bar difference within a symbol is elementwise: the symbol's first row masked.
    same = pl.col("symbol") == pl.col("symbol").shift(1)
    lr = ordered.select(pl.when(same).then(pl.col("close").log().diff())).to_series()
    # Each time's mean over the symbols with a return there (none: 0): summed in row order as Polars' group
    # mean sums, bit for bit, without grouping by the timestamps.
    total = np.bincount(ordered_slots, weights=lr.fill_null(0.0).to_numpy())
    count = np.bincount(ordered_slots, weights=lr.is_not_null().to_numpy())
    mean = np.divide(total, count, out=np.zeros_like(total), where=count > 0)
    level = pl.Series(np.cumsum(mean)).exp().to_numpy()  # Polars' exp, as before (numpy's may differ)
    return bars.with_columns((pl.col("close") / pl.Series(level[slots])).alias(column))


def period_of(ts: pl.Series, minutes: int | None) -> pl.Series:
    return session_of(ts) if minutes is None else ts.dt.truncate(f"{minutes}m")


@dataclass(frozen=True)
class Periods:
    """The P&L periods of a bar set: their keys, and each symbol's last price (`price` column) at or before
    each period's end (carried forward over periods in which the symbol has no bar; NaN before its first)."""

    minutes: int | None  # None: one period per session (New York date)
    keys: pl.Series  # sorted distinct period keys (Datetime or Date); a period's index is its position
    per_year: float
    symbols: list[str] = field(repr=False)  # sorted distinct symbols
    marks: np.ndarray = field(repr=False)  # [symbol index, period index] -> last price
    # Each (symbol, period) with bars: the row of its last bar in the frame, its symbol and period index.
    cells: tuple[np.ndarray, np.ndarray, np.ndarray] = field(repr=False)

    @classmethod
    def from_bars(
        cls,
        bars: pl.DataFrame,
        minutes: int | None,
        sessions_per_year: int,
        price: str = "close",
        distinct: pl.Series | None = None,
        slots: np.ndarray | None = None,
    ) -> Periods:
        """`distinct` (`bars["ts"].unique().sort()`) and `slots` (`labels.time_slots(bars["ts"], distinct)`)
        when the caller holds them; the rows are then in (symbol, ts) order. Bars of many symbols share
        their times: periods and sessions are found once per distinct time and mapped back by position."""
        ordered = distinct is not None and slots is not None
        if distinct is None or slots is None:
            distinct = bars["ts"].unique().sort()
            slots = time_slots(bars["ts"], distinct)
        period = period_of(distinct, minutes)
        keys = period.unique().sort()
        per_year = sessions_per_year * len(keys) / max(session_of(distinct).n_unique(), 1)
        pi = np.searchsorted(keys.to_physical().to_numpy(), period.to_physical().to_numpy())[slots]
        frame = bars.select("symbol", "ts", pi=pl.Series(pi.astype(np.int64)), row=pl.int_range(pl.len()))
        if not ordered and frame.select(out_of_order()).item():
            frame = frame.sort("symbol", "ts")
        # In (symbol, ts) order a period's rows of a symbol are contiguous: its last row is its mark.
        sym, pi_col = pl.col("symbol"), pl.col("pi")
        ends = (sym != sym.shift(-1)) | (pi_col != pi_col.shift(-1))
        last = frame.filter(ends.fill_null(True)).select(symbol_runs().alias("si"), "symbol", "pi", "row")
        symbols = last["symbol"].unique(maintain_order=True).to_list()  # sorted: rows in symbol order
        cells = (last["row"].to_numpy(), last["si"].to_numpy(), last["pi"].to_numpy())
        return cls(minutes, keys, per_year, symbols, np.empty((0, 0)), cells).marked_by(bars[price])

    def marked_by(self, price: pl.Series) -> Periods:
        """These periods marked by `price`, a column of the bars they were made from (row for row): the
        periods of another price of the same bars without recomputing them."""
        rows, si, col = self.cells
        mark = price.gather(rows)
        # Every symbol's mark on every period, the last price carried forward over periods without one (as
        # numpy arrays: a grid of symbols x periods is what a cross join, a join and a sort built before).
        grid = np.full((len(self.symbols), len(self.keys)), np.nan)
        grid[si, col] = mark.cast(pl.Float64).to_numpy()
        source = np.full(grid.shape, -1)
        source[si, col] = np.where(mark.is_null().to_numpy(), -1, col)
        np.maximum.accumulate(source, axis=1, out=source)  # the period whose price each cell carries
        marks = np.where(source >= 0, np.take_along_axis(grid, np.maximum(source, 0), axis=1), np.nan)
        return replace(self, marks=marks)

    def index(self, ts: pl.Series) -> pl.Series:
        """Period index of each timestamp (its period must be one of the keys)."""
        k = period_of(ts, self.minutes).to_physical().to_numpy()
        keys = self.keys.to_physical().to_numpy()
        pos = np.searchsorted(keys, k)
        if len(k) and (pos.max() >= len(keys) or not np.array_equal(keys[pos], k)):
            raise DataError("timestamps fall in periods that are not in the bar data")
        return pl.Series(pos.astype(np.int64))


@dataclass(frozen=True)
class EvaluationResult:
    sharpe: float  # annualised
    sharpe_per_period: float
    skew: float
    kurtosis: float
    n_periods: int
    max_drawdown: float  # share of peak equity
    n_trades: int
    win_rate: float
    total_return: float
    psr: float  # probability that the true Sharpe is above 0
    equity: pl.DataFrame = field(repr=False)  # period, ret, equity

    def metrics(self) -> dict[str, float]:
        return {
            "sharpe": self.sharpe,
            "sharpe_per_period": self.sharpe_per_period,
            "max_drawdown": self.max_drawdown,
            "n_trades": float(self.n_trades),
            "win_rate": self.win_rate,
            "total_return": self.total_return,
            "psr": self.psr,
            "n_periods": float(self.n_periods),
        }


def max_drawdown(equity: np.ndarray) -> float:
    """Largest fall from a running peak as a share of that peak; starts from an equity of 1."""
    curve = np.concatenate([[1.0], equity])
    peak = np.maximum.accumulate(curve)
    return float(np.max(1.0 - curve / peak))


def trade_pnl(trades: pl.DataFrame, periods: Periods) -> pl.DataFrame:
    """Per (trade, period) P&L as a share of the trade's notional: columns trade, pi, pnl, ordered by trade
    and period. Each period marks the trade at the symbol's last price (the exit price in its last period)
    against the previous mark (the entry price in its first); the round-trip cost is booked on exit."""
    i0 = periods.index(trades["t0"]).to_numpy()
    i1 = periods.index(trades["t1"]).to_numpy()
    sym = trades["symbol"].cast(pl.Enum(periods.symbols)).to_physical().to_numpy().astype(np.int64)
    lengths = i1 - i0 + 1
    trade = np.repeat(np.arange(len(i0)), lengths)  # one row per (trade, period), as arrays: no join
    first = np.cumsum(lengths) - lengths  # row of each trade's first period
    pi = i0[trade] + np.arange(len(trade)) - first[trade]
    last = pi == i1[trade]
    exit_price, price = trades["exit_price"].to_numpy(), trades["price"].to_numpy()
    mark = np.where(last, exit_price[trade], periods.marks[sym[trade], pi])
    prev = np.roll(mark, 1)
    prev[first] = price
    side = trades["side"].to_numpy().astype(float)
    cost = np.where(last, trades["cost"].to_numpy()[trade], 0.0)
    pnl = side[trade] * (mark - prev) / price[trade] - cost
    return pl.DataFrame({"trade": trade, "pi": pi.astype(np.int64), "pnl": pnl})


@dataclass(frozen=True)
class Marks:
    """`trade_pnl` of a set of events as arrays (event row, period index, P&L): computed once and shared
    by every threshold's evaluation of those events."""

    trade: np.ndarray
    pi: np.ndarray
    pnl: np.ndarray

    @classmethod
    def of(cls, events: pl.DataFrame, periods: Periods) -> Marks:
        rows = trade_pnl(events, periods)
        return cls(rows["trade"].to_numpy(), rows["pi"].to_numpy(), rows["pnl"].to_numpy())

    def subset(self, rows: np.ndarray, n_events: int) -> Marks:
        """The marks of events `rows` (ascending positions among the `n_events` marked events), renumbered
        0..len(rows)-1: the same arrays, in the same order, as `Marks.of(events[rows], periods)`."""
        if len(rows) > 1 and not np.all(np.diff(rows) > 0):
            raise DataError("rows must be strictly ascending")
        new = np.full(n_events, -1, dtype=np.int64)
        new[rows] = np.arange(len(rows))
        trade = new[self.trade]
        keep = trade >= 0
        return Marks(trade[keep], self.pi[keep], self.pnl[keep])


def evaluate_events(
    events: pl.DataFrame,
    prob: np.ndarray,
    threshold: float,
    weight: float,
    periods: Periods,
    span: tuple[int, int],
    marks: Marks | None = None,
) -> EvaluationResult:
    """`events` (labels: symbol, t0, t1, side, price, exit_price, cost, ret_net) aligned with `prob`;
    `span` is the (first, last) period index of the evaluated stretch, every period in it counts;
    `marks`: `Marks.of(events, periods)` when the caller already has it."""
    if len(prob) != events.height:
        raise DataError(f"prob: {len(prob)} values for {events.height} events")
    if not 0.0 < weight <= 1.0:
        raise DataError(f"weight must be in (0, 1], got {weight}")
    taken = np.asarray(prob) >= threshold
    marks = marks if marks is not None else Marks.of(events, periods)
    sel = taken[marks.trade]
    lo, hi = span
    pi = marks.pi[sel]
    if len(pi) and (pi.min() < lo or pi.max() > hi):
        raise DataError(f"span: trades are open outside the periods {lo}..{hi}")
    rets = np.bincount(pi - lo, weights=marks.pnl[sel] * weight, minlength=hi - lo + 1)
    equity = np.cumprod(1.0 + rets)
    m = return_moments(rets)
    net = events["ret_net"].to_numpy()[taken]
    return EvaluationResult(
        sharpe=m.sharpe * math.sqrt(periods.per_year),
        sharpe_per_period=m.sharpe,
        skew=m.skew,
        kurtosis=m.kurtosis,
        n_periods=m.n,
        max_drawdown=max_drawdown(equity),
        n_trades=int(taken.sum()),
        win_rate=float((net > 0).mean()) if len(net) else 0.0,
        total_return=float(equity[-1] - 1.0) if len(equity) else 0.0,
        psr=probabilistic_sharpe_ratio(m.sharpe, 0.0, m.n, m.skew, m.kurtosis) if m.n >= 2 else 0.5,
        equity=pl.DataFrame({"period": periods.keys.slice(lo, hi - lo + 1), "ret": rets, "equity": equity}),
    )
