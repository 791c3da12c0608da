"""Local simulated venue: Alpaca data/trading/stream, Polygon stream and Finnhub over a replayed market."""

from hybridtrader.market.timeframe import Timeframe
from hybridtrader.venue.auth import LOCAL_FINNHUB_TOKEN, LOCAL_KEY, LOCAL_SECRET
from hybridtrader.venue.market import ReplayMarket
from hybridtrader.venue.replay import ReplayClock
from hybridtrader.venue.server import Venue, load_market

__all__ = [
    "LOCAL_FINNHUB_TOKEN",
    "LOCAL_KEY",
    "LOCAL_SECRET",
    "ReplayClock",
    "ReplayMarket",
    "Timeframe",
    "Venue",
    "load_market",
]
