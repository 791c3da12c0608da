"""The backtest's HTML tear sheet: equity and drawdown, exposure over time, monthly returns, per-strategy
and per-symbol statistics, allocations, strategy contributions and universe turnover (when the allocator
and the universe ran), turnover, forecast vs realised slippage and the run's provenance. One self-contained
file (inline SVG, no scripts), made only from the run's tables, so it is as reproducible as they are."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import orjson
import polars as pl

from hybridtrader.ml.report import line_svg

_STYLE = (
    "body{font-family:sans-serif;margin:2em;max-width:1000px}table{border-collapse:collapse;margin:1em 0}"
    "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f4f4f4}"
    "td:first-child,th:first-child{text-align:left}pre{background:#f8f8f8;padding:1em;overflow-x:auto}"
)


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:,.4g}" if abs(v) < 1e4 else f"{v:,.0f}"
    return html.escape(str(v))


def _table(frame: pl.DataFrame, limit: int = 200) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in frame.columns)
    rows = "".join(
        "<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>" for row in frame.head(limit).rows()
    )
    more = f"<p>{frame.height - limit} more rows in the parquet file</p>" if frame.height > limit else ""
    return f"<table><tr>{head}</tr>{rows}</table>{more}"


def _monthly(monthly: pl.DataFrame) -> pl.DataFrame:
    """Years down, months across, returns in percent."""
    if monthly.height == 0:
        return monthly
    wide = monthly.with_columns((pl.col("ret") * 100).round(3)).pivot("month", index="year", values="ret")
    months = sorted((c for c in wide.columns if c != "year"), key=int)
    return wide.select("year", *months)


def _allocations(alloc: pl.DataFrame) -> list[str]:
    """Weights per session (strategies across) and each strategy's contribution: its P&L summed over the
    sessions, and that as a share of all strategies' P&L."""
    weights = alloc.pivot("strategy", index="session", values="weight").sort("session")
    contrib = (
        alloc.group_by("strategy")
        .agg(
            pl.col("weight").mean().alias("mean_weight"),
            pl.col("capital").mean().alias("mean_capital"),
            pl.col("pnl").sum(),
            pl.col("rebalanced").sum().alias("rebalances"),
        )
        .with_columns(share_of_pnl=pl.col("pnl") / pl.col("pnl").sum())
        .sort("strategy")
    )
    return [
        "<h2>Allocations: weight of equity per session</h2>",
        _table(weights),
        "<h2>Strategy contributions</h2>",
        _table(contrib),
    ]


def write_tearsheet(
    tables: dict[str, pl.DataFrame | pl.LazyFrame], summary: dict[str, Any], path: Path
) -> None:
    eq = (
        tables["equity"].lazy().select("ts", "equity", "drawdown", "gross_exposure", "net_exposure").collect()
    )
    start = float(summary["start_cash"])
    charts = [
        line_svg(eq["ts"], eq["equity"].to_numpy() / start, "equity (start = 1)", "equity", reference=1.0),
        line_svg(
            eq["ts"], -eq["drawdown"].to_numpy() * 100, "drawdown from the running peak", "%", reference=0.0
        ),
        line_svg(
            eq["ts"], eq["gross_exposure"].to_numpy() / start, "gross exposure / starting cash", "x", 0.0
        ),
        line_svg(eq["ts"], eq["net_exposure"].to_numpy() / start, "net exposure / starting cash", "x", 0),
    ]
    headline = {
        k: summary[k]
        for k in (
            "total_return",
            "sharpe",
            "max_drawdown",
            "sessions",
            "bars",
            "orders",
            "fills",
            "fees",
            "turnover_per_session",
            "forecast_slippage_bps",
            "realized_slippage_bps",
        )
    }
    provenance = orjson.dumps(
        summary["provenance"], option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS
    ).decode()
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>backtest</title><style>{_STYLE}</style>"
        "</head><body><h1>Backtest</h1>",
        _table(pl.DataFrame({"statistic": list(headline), "value": [_cell(v) for v in headline.values()]})),
        *(c.decode() for c in charts),
        "<h2>Monthly returns (%)</h2>",
        _table(_monthly(tables["monthly"])),
        "<h2>Strategies</h2>",
        _table(tables["strategies"]),
        *(_allocations(tables["allocations"]) if "allocations" in tables else []),
        *(["<h2>Universe turnover</h2>", _table(tables["universe"])] if "universe" in tables else []),
        "<h2>Symbols</h2>",
        _table(tables["symbols"]),
        "<h2>Intents not sent</h2>",
        _table(
            pl.DataFrame(
                {"reason": list(summary["skipped"]), "count": list(summary["skipped"].values())},
                schema={"reason": pl.String, "count": pl.Int64},
            )
        ),
        "<h2>Provenance</h2>",
        f"<pre>{html.escape(provenance)}</pre></body></html>",
    ]
    path.write_text("\n".join(parts))
