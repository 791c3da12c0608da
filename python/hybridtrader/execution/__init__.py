"""Execution: slippage forecasts, order slicing, toxic-time filtering."""
