"""hybridtrader: algorithmic trading for US equities with Rust hot paths and Polars orchestration."""

from importlib import import_module
from typing import Any

from hybridtrader._core import BarAggregator, __version__
from hybridtrader.execution.rate_limiter import RateLimiter, RateLimitError
from hybridtrader.execution.slippage_model import SlippageModel
from hybridtrader.risk import DynamicSizer, ExposureManager

# Imported on first use: these pull in alpaca-py and aiohttp (about a second), or the ML stack (scipy.stats,
# LightGBM, MLflow), which most commands skip.
_LAZY = {
    "AlpacaClient": "hybridtrader.data.alpaca_client",
    "BarStore": "hybridtrader.data.bar_store",
    "EarningsBlackout": "hybridtrader.data.earnings_cache",
    "ShortabilityCache": "hybridtrader.data.shortability_cache",
    "StreamingAdapter": "hybridtrader.stream",
    "Venue": "hybridtrader.venue",
    "check_data_quality": "hybridtrader.data.quality",
    "EnhancedAlertManager": "hybridtrader.monitoring.alerts",
    "MLPipeline": "hybridtrader.ml.pipeline",
    "CapitalAllocator": "hybridtrader.portfolio.capital_allocator",
    "UniverseRotationTracker": "hybridtrader.portfolio.universe_rotation",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'hybridtrader' has no attribute {name!r}")


__all__ = [
    "BarAggregator",
    "DynamicSizer",
    "ExposureManager",
    "RateLimitError",
    "RateLimiter",
    "SlippageModel",
    "__version__",
    *_LAZY,
]
