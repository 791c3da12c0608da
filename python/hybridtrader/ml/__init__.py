"""Machine learning for the strategies: features, labels, leakage-free validation, gates, registry."""
