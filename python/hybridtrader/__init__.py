"""hybridtrader: algorithmic trading for US equities with Rust hot paths and Polars orchestration."""

from hybridtrader._core import __version__
from hybridtrader.execution.rate_limiter import RateLimiter, RateLimitError

__all__ = ["RateLimitError", "RateLimiter", "__version__"]
