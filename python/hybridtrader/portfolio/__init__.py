"""Portfolio accounting and allocation."""
