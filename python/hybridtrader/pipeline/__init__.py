"""End-to-end pipeline of `hybridtrader run`: local venue -> fetched bars -> trained models -> one traded
session, each stage using the real parts (venue, data layer, ML pipeline, risk, execution)."""
