"""Strategies: the seed's two strategies (each defined once, on the rules of `ml.labels`), the examples, and
the loader `--strategy` uses. `Strategy` and `Context` are defined by the engine that runs them
(`engine/strategy.py`) and re-exported here.

Import arrows: strategy/ stands on the engine and composes ml/ (features, label rules, models, registry);
neither imports strategy/, so training and trading read one definition of each rule.
"""

from hybridtrader.engine.strategy import Context, Strategy

__all__ = ["Context", "Strategy"]
