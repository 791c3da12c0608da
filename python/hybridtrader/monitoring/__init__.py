"""Monitoring: feature drift, performance anomalies and data-quality alerts with pluggable sinks."""
