"""Real-time market data: Alpaca and Polygon websockets into Rust-built bars (`StreamingAdapter`)."""

from hybridtrader.market.timeframe import parse_every
from hybridtrader.stream.adapter import StreamingAdapter
from hybridtrader.stream.messages import Frame, FrameParser
from hybridtrader.stream.providers import AuthError, ConnectionLimitError, StreamError

__all__ = [
    "AuthError",
    "ConnectionLimitError",
    "Frame",
    "FrameParser",
    "StreamError",
    "StreamingAdapter",
    "parse_every",
]
