"""Market data: calendar, ticks into bars."""

from hybridtrader.market.bars import aggregate_quotes, aggregate_trades

__all__ = ["aggregate_quotes", "aggregate_trades"]
