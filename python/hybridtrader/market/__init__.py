"""Market data: NYSE calendar, ticks into bars, synthetic market."""

from hybridtrader.market.bars import BarAggregator, aggregate_quotes, aggregate_trades, push_frame
from hybridtrader.market.synth import SyntheticMarket, generate_market

__all__ = [
    "BarAggregator", "SyntheticMarket", "aggregate_quotes", "aggregate_trades", "generate_market",
    "push_frame",
]
