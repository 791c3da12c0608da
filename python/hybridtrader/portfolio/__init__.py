"""Portfolio: capital allocation across strategies, universe selection and rotation (and the ledger)."""
