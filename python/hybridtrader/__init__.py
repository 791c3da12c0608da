"""hybridtrader: algorithmic trading for US equities with Rust hot paths and Polars orchestration."""

from hybridtrader._core import BarAggregator, __version__
from hybridtrader.execution.rate_limiter import RateLimiter, RateLimitError
from hybridtrader.execution.slippage_model import SlippageModel
from hybridtrader.risk import DynamicSizer, ExposureManager

__all__ = [
    "BarAggregator",
    "DynamicSizer",
    "ExposureManager",
    "RateLimitError",
    "RateLimiter",
    "SlippageModel",
    "__version__",
]
