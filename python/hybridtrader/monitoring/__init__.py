"""Monitoring: counters and gauges (`metrics`), drift and alerts."""
