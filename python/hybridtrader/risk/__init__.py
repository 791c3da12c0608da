"""Risk: exposure caps and circuit breaker (Rust core), dynamic position sizing."""

from hybridtrader.risk.dynamic_sizing import DynamicSizer
from hybridtrader.risk.exposure_manager import ExposureManager

__all__ = ["DynamicSizer", "ExposureManager"]
