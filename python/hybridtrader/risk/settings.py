"""The `risk` configuration section from whatever a caller holds (the seed passes `config` around)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from hybridtrader.config import Config, RiskConfig, config_from_dict, load_config

ConfigLike = Config | RiskConfig | Mapping[str, Any] | str | os.PathLike[str] | None


def risk_settings(config: ConfigLike) -> RiskConfig:
    """`RiskConfig` from a `Config`, a `RiskConfig`, a config mapping (full, or just the risk section), a
    YAML path or None (defaults). Errors name the key path (`risk.exposure...`)."""
    if config is None:
        return Config().risk
    if isinstance(config, RiskConfig):
        return config
    if isinstance(config, Config):
        return config.risk
    if isinstance(config, Mapping):
        # Only the risk section is validated here (other sections belong to their users): a full config
        # mapping, or the risk section itself when every key is a risk key.
        if "risk" in config:
            section = config["risk"] or {}
        elif config and set(config) <= set(RiskConfig.model_fields):
            section = config
        else:
            section = {}
        return config_from_dict({"risk": dict(section)}).risk
    if isinstance(config, str | os.PathLike):
        return load_config(config).risk
    kind = type(config).__name__
    raise TypeError(f"config must be a Config, RiskConfig, mapping, path or None, got {kind}")
