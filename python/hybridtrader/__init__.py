"""hybridtrader: algorithmic trading for US equities with Rust hot paths and Polars orchestration."""

from hybridtrader._core import BarAggregator, __version__
from hybridtrader.execution.rate_limiter import RateLimiter, RateLimitError
from hybridtrader.execution.slippage_model import SlippageModel
from hybridtrader.risk import DynamicSizer, ExposureManager

__all__ = [
    "BarAggregator",
    "DynamicSizer",
    "EnhancedAlertManager",
    "ExposureManager",
    "MLPipeline",
    "RateLimitError",
    "RateLimiter",
    "SlippageModel",
    "__version__",
]

# Imported on first use: the ML stack (scipy.stats, LightGBM, MLflow) is heavy and most commands skip it.
_LAZY = {"MLPipeline": "hybridtrader.ml.pipeline", "EnhancedAlertManager": "hybridtrader.monitoring.alerts"}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'hybridtrader' has no attribute {name!r}")
