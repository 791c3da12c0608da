"""Backtests: the `SimBroker` on the Rust fill simulator, historical feeds, the `SimClock`, and the run
that writes a backtest's outputs."""
