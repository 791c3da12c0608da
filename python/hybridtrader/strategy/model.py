"""A strategy's model: the MLflow champion and its threshold, or none (rules only)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hybridtrader.config import Config
from hybridtrader.errors import ModelError
from hybridtrader.ml.models import Fitted, predict
from hybridtrader.ml.registry import CHAMPION, tracking_uri


@dataclass(frozen=True)
class Champion:
    """A promoted model: takes an event when its probability ("this trade pays net of costs") reaches
    `threshold`."""

    strategy: str
    version: str
    model: Any
    threshold: float
    features: list[str]

    def probability(self, x: np.ndarray) -> np.ndarray:
        return predict(Fitted(self.model, 0, 0.0, np.empty(0)), x.astype(np.float64), self.features)


def load_champion(config: Config, strategy: str) -> Champion | None:
    """The champion of `strategy` in the configured registry; None when the registry has none (a local
    store that does not exist yet has none: MLflow is not even imported then)."""
    uri = tracking_uri(config)
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).exists():
        return None
    from hybridtrader.ml.registry import ModelRegistry

    try:
        reg = ModelRegistry(config)
        version = reg.alias_version(strategy, CHAMPION)
        if version is None:
            return None
        model, threshold = reg.load_version(strategy, version)
    except (OSError, KeyError, RuntimeError) as e:
        raise ModelError(f"{strategy}: cannot load the champion from {uri}: {e}") from e
    return Champion(strategy, version, model, threshold, list(config.strategies[strategy].ml_model.features))
