"""Strategies: the `Strategy` base, the seed's two strategies (each defined once, on the rules of
`ml.labels`), the examples, and the loader `--strategy` uses.

Import arrow: strategy/ composes ml/ (features, label rules, models, registry); ml/ never imports
strategy/, so training and trading read one definition of each rule.
"""

from hybridtrader.strategy.base import Context, Strategy

__all__ = ["Context", "Strategy"]
