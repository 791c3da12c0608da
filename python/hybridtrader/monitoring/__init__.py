"""Monitoring: counters and gauges (`metrics`), feature drift (`drift`) and alerts with pluggable sinks
(`alerts`: drift, performance anomalies, data quality)."""
