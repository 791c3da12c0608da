"""Execution: the fill simulator (fills), rate limiting and retries for broker/data API calls, slippage
forecasts, order slicing and toxic-time filtering."""
