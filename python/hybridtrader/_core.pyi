"""Type stubs for the Rust extension `hybridtrader._core`."""

__version__: str
