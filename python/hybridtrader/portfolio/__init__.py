"""Portfolio: the ledger (positions, cash, P&L from fills), capital allocation across strategies, universe
selection and rotation."""
