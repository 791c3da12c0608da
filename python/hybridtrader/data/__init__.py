"""Data layer: stores, clients and checks for market data."""
