"""The `risk` configuration section from whatever a caller holds (the seed passes `config` around)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from hybridtrader.config import Config, RiskConfig, config_from_dict, load_config

ConfigLike = Config | RiskConfig | Mapping[str, Any] | str | os.PathLike[str] | None


def risk_settings(config: ConfigLike) -> RiskConfig:
    """`RiskConfig` from a `Config`, a `RiskConfig`, a full-config mapping, a YAML path or None (defaults)."""
    if config is None:
        return Config().risk
    if isinstance(config, RiskConfig):
        return config
    if isinstance(config, Config):
        return config.risk
    if isinstance(config, Mapping):
        return config_from_dict(dict(config)).risk
    if isinstance(config, str | os.PathLike):
        return load_config(config).risk
    kind = type(config).__name__
    raise TypeError(f"config must be a Config, RiskConfig, mapping, path or None, got {kind}")
