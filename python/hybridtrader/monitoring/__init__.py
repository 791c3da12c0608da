"""Monitoring: feature drift (`drift`) and alerts with pluggable sinks (`alerts`: drift, performance
anomalies, data quality). The counters every layer bumps are `hybridtrader.metrics`, below the data layer."""
