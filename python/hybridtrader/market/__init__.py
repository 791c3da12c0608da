"""Market data: calendar, ticks into bars."""

from hybridtrader.market.bars import aggregate_quotes, aggregate_trades, push_frame

__all__ = ["aggregate_quotes", "aggregate_trades", "push_frame"]
