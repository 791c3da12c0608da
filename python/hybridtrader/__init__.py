"""hybridtrader: algorithmic trading for US equities with Rust hot paths and Polars orchestration."""

from hybridtrader._core import BarAggregator, __version__

__all__ = ["BarAggregator", "__version__"]
