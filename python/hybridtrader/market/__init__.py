"""Market data: NYSE calendar, synthetic market."""

from hybridtrader.market.synth import SyntheticMarket, generate_market

__all__ = ["SyntheticMarket", "generate_market"]
