"""The independent reference the bar tests compare the Rust engine with: OHLCV aggregations in Polars."""

from __future__ import annotations

import polars as pl


def ohlcv() -> list[pl.Expr]:
    """Trade-bar columns of a group of trades in arrival order (``price``, ``size``)."""
    return [
        pl.col("price").first().alias("open"),
        pl.col("price").max().alias("high"),
        pl.col("price").min().alias("low"),
        pl.col("price").last().alias("close"),
        pl.col("size").sum().alias("volume"),
        ((pl.col("price") * pl.col("size")).sum() / pl.col("size").sum()).alias("vwap"),
        pl.len().cast(pl.Int64).alias("trades"),
    ]
