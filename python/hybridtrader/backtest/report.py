"""What a backtest reports: summary statistics, per-strategy and per-symbol tables, monthly returns and the
daily series a tear sheet plots. Pure functions of the engine's result frames, which they read lazily (a
spilled run's rows stay on disk) except for the few columns a sum runs over: a float sum is summed in one
piece, as the engine's frames in memory are, so that a spilled run reports the same bits.

Daily returns are session-to-session changes of the equity at each session's last bar time (the first
against the starting cash); Sharpe = mean / std (ddof 1) x sqrt(252); drawdown = 1 - equity / running peak
(on every bar time); turnover = traded notional / mean equity, per session.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import polars as pl

from hybridtrader.engine.trader import TraderResult

SESSIONS_PER_YEAR = 252


def daily_equity(equity: pl.LazyFrame, start_cash: float) -> pl.DataFrame:
    """One row per session: its New York date, closing equity, return and gross exposure at the close."""
    day = pl.col("ts").dt.convert_time_zone("America/New_York").dt.date().alias("session")
    daily = (
        equity.group_by(day, maintain_order=True)
        .agg(
            pl.col("equity").last(),
            pl.col("gross_exposure").last(),
            pl.col("gross_exposure").max().alias("max_gross"),
        )
        .collect()
    )
    prev = daily["equity"].shift(1).fill_null(start_cash)
    return daily.with_columns(ret=pl.col("equity") / prev - 1.0)


_DRAWDOWN = (1.0 - pl.col("equity") / pl.col("equity").cum_max()).alias("drawdown")


def equity_table(equity: pl.LazyFrame) -> pl.LazyFrame:
    """The equity rows with the drawdown (share of the running peak) after the equity, on every bar time."""
    return equity.select("ts", "equity", _DRAWDOWN, pl.exclude("ts", "equity"))


def monthly_returns(daily: pl.DataFrame) -> pl.DataFrame:
    """Compounded return per calendar month (year, month, ret)."""
    return (
        daily.group_by(
            pl.col("session").dt.year().alias("year"),
            pl.col("session").dt.month().alias("month"),
            maintain_order=True,
        )
        .agg(ret=(pl.col("ret") + 1.0).product() - 1.0)
        .sort("year", "month")
    )


def _pnl_by(positions: pl.DataFrame, key: str) -> pl.DataFrame:
    return positions.group_by(key).agg(
        pl.col("realized_pnl").sum(),
        pl.col("unrealized_pnl").sum(),
        pl.col("fees").sum(),
        (pl.col("bought") + pl.col("sold")).sum().alias("traded_notional"),
    )


_NET = (pl.col("realized_pnl") + pl.col("unrealized_pnl") - pl.col("fees")).alias("net_pnl")


def fill_costs(result: TraderResult) -> pl.DataFrame:
    """The columns of the fills the slippage statistics read, in one piece (see the module docstring)."""
    columns = ("strategy", "symbol", "qty", "forecast_bps", "realized_bps")
    return result.scan("fills").select(columns).collect().rechunk()


def per_strategy(result: TraderResult, fills: pl.DataFrame) -> pl.DataFrame:
    """Orders, fills, P&L, fees, traded notional and forecast vs realised slippage per strategy (`fills`:
    `fill_costs(result)`)."""
    orders = (
        result.scan("orders")
        .group_by("strategy")
        .agg(pl.len().alias("orders"), (pl.col("filled_qty") > 0).sum().alias("filled_orders"))
        .collect()
    )
    return (
        orders.join(_pnl_by(result.positions, "strategy"), on="strategy", how="left")
        .join(_slippage(fills, "strategy"), on="strategy", how="left")
        .with_columns(_NET)
        .sort("strategy")
    )


def per_symbol(result: TraderResult, fills: pl.DataFrame) -> pl.DataFrame:
    """P&L, fees, traded notional and forecast vs realised slippage per symbol (`fills`:
    `fill_costs(result)`)."""
    return (
        _pnl_by(result.positions, "symbol")
        .join(_slippage(fills, "symbol"), on="symbol", how="left")
        .with_columns(_NET)
        .sort("symbol")
    )


def _slippage(fills: pl.DataFrame, by: str) -> pl.DataFrame:
    """Fills and share-weighted forecast vs realised slippage (bps) per group."""
    w = pl.col("qty")
    return fills.group_by(by).agg(
        pl.len().alias("fills"),
        ((pl.col("forecast_bps") * w).sum() / w.sum()).alias("forecast_bps"),
        ((pl.col("realized_bps") * w).sum() / w.sum()).alias("realized_bps"),
    )


def summary(
    result: TraderResult, start_cash: float, daily: pl.DataFrame, fills: pl.DataFrame
) -> dict[str, Any]:
    """The headline numbers (plain JSON values; NaN becomes None); `daily` is `daily_equity` of the
    result, `fills` its `fill_costs`."""
    equity = result.scan("equity").select("equity").collect().to_series().rechunk()
    rets = daily["ret"].to_numpy()
    end = float(equity[-1]) if equity.len() else start_cash
    sd = float(np.std(rets, ddof=1)) if len(rets) > 1 else math.nan
    sharpe = float(np.mean(rets)) / sd * math.sqrt(SESSIONS_PER_YEAR) if sd > 0 else math.nan
    dd = equity.to_frame().select(_DRAWDOWN)["drawdown"].max() if equity.len() else 0.0
    traded = float((result.positions["bought"] + result.positions["sold"]).sum())
    mean_equity = float(equity.mean()) if equity.len() else start_cash  # type: ignore[arg-type]
    slip = _slippage(fills.with_columns(all=pl.lit("all")), "all")
    out = {
        "start_cash": start_cash,
        "end_equity": end,
        "total_return": end / start_cash - 1.0,
        "sharpe": sharpe,
        "max_drawdown": float(dd or 0.0),
        "sessions": result.sessions,
        "bars": result.bars,
        "orders": result.scan("orders").select(pl.len()).collect().item(),
        "fills": fills.height,
        "fees": float(result.positions["fees"].sum()),
        "realized_pnl": float(result.positions["realized_pnl"].sum()),
        "unrealized_pnl": float(result.positions["unrealized_pnl"].sum()),
        "turnover_per_session": traded / mean_equity / max(result.sessions, 1),
        "forecast_slippage_bps": float(slip["forecast_bps"][0]) if slip.height else math.nan,
        "realized_slippage_bps": float(slip["realized_bps"][0]) if slip.height else math.nan,
        "skipped": result.skipped,
        "events": result.events,
    }
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in out.items()}
