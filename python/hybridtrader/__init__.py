"""hybridtrader: algorithmic trading for US equities with Rust hot paths and Polars orchestration."""

from hybridtrader._core import __version__
from hybridtrader.execution.rate_limiter import RateLimiter, RateLimitError
from hybridtrader.risk import DynamicSizer, ExposureManager

__all__ = ["DynamicSizer", "ExposureManager", "RateLimitError", "RateLimiter", "__version__"]
