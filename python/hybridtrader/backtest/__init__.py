"""Backtesting: parameter sweeps over a backtest function (the engine's SimBroker backtest plugs in)."""
