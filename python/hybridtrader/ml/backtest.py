"""Vectorised out-of-sample backtest of labelled events traded on a model's probabilities.

A trade is an event whose out-of-sample probability reaches the threshold; it earns the event's net
return (costs included, the same number the label was made from). Sizing is fixed so that gross exposure
never exceeds equity: each trade gets 1 / (n_symbols x horizon_bars) of equity, since a symbol can have at
most `horizon_bars` overlapping trades open. P&L is booked in the period in which the trade exits; every
period of the evaluated span counts, flat ones included. Periods are `Periods.minutes` buckets of UTC
time with intraday bars and one session (New York date) with daily bars. Sharpe, PSR and drawdown are
computed on that per-period return series and annualised with the observed periods per session.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from hybridtrader.ml.labels import NY
from hybridtrader.ml.sharpe import probabilistic_sharpe_ratio, return_moments


@dataclass(frozen=True)
class Periods:
    """How a timestamp maps to a P&L period, and every period of the data (flat ones included)."""

    minutes: int | None  # None: one period per session (New York date)
    all: pl.Series  # sorted distinct period keys of the bars (Datetime or Date)
    per_year: float

    @classmethod
    def from_bars(cls, ts: pl.Series, minutes: int | None, sessions_per_year: int) -> Periods:
        sessions = session_of(ts).n_unique()
        keys = period_of(ts, minutes).unique().sort()
        return cls(minutes, keys, sessions_per_year * len(keys) / max(sessions, 1))

    def key(self, ts: pl.Series) -> pl.Series:
        return period_of(ts, self.minutes)

    def span(self, first_ts: pl.Series, last_ts: pl.Series) -> pl.Series:
        lo, hi = self.key(first_ts).min(), self.key(last_ts).max()
        return self.all.filter((self.all >= lo) & (self.all <= hi))


def session_of(ts: pl.Series) -> pl.Series:
    return ts.dt.convert_time_zone(NY).dt.date()


def period_of(ts: pl.Series, minutes: int | None) -> pl.Series:
    return session_of(ts) if minutes is None else ts.dt.truncate(f"{minutes}m")


@dataclass(frozen=True)
class BacktestResult:
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


def backtest(
    events: pl.DataFrame,
    prob: np.ndarray,
    threshold: float,
    weight: float,
    periods: Periods,
    span: pl.Series,
) -> BacktestResult:
    """`events` has t1 and ret_net (one row per event, aligned with `prob`); `span` lists every period
    key of the evaluated stretch (see `Periods.span`)."""
    if len(prob) != events.height:
        raise ValueError(f"prob: {len(prob)} values for {events.height} events")
    if not 0.0 < weight <= 1.0:
        raise ValueError(f"weight must be in (0, 1], got {weight}")
    taken = events.filter(pl.Series(np.asarray(prob) >= threshold))
    booked = (
        pl.DataFrame({"period": periods.key(taken["t1"]), "pnl": taken["ret_net"] * weight})
        .group_by("period")
        .agg(pl.col("pnl").sum())
    )
    frame = (
        pl.DataFrame({"period": span})
        .join(booked, on="period", how="left")
        .with_columns(ret=pl.col("pnl").fill_null(0.0))
        .drop("pnl")
    )
    outside = booked.join(frame, on="period", how="anti")
    if outside.height:
        raise ValueError(f"span: trades exit in periods outside it: {outside['period'].head(3).to_list()}")
    rets = frame["ret"].to_numpy()
    equity = np.cumprod(1.0 + rets)
    m = return_moments(rets)
    net = taken["ret_net"].to_numpy()
    return BacktestResult(
        sharpe=m.sharpe * math.sqrt(periods.per_year),
        sharpe_per_period=m.sharpe,
        skew=m.skew,
        kurtosis=m.kurtosis,
        n_periods=m.n,
        max_drawdown=max_drawdown(equity),
        n_trades=taken.height,
        win_rate=float((net > 0).mean()) if len(net) else 0.0,
        total_return=float(equity[-1] - 1.0) if len(equity) else 0.0,
        psr=probabilistic_sharpe_ratio(m.sharpe, 0.0, m.n, m.skew, m.kurtosis) if m.n >= 2 else 0.5,
        equity=frame.with_columns(equity=pl.Series(equity)),
    )
