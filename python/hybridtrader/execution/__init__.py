"""Execution: rate limiting and retries for broker/data API calls, order slicing and timing helpers."""
