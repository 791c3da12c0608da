"""Configuration: one YAML file with ${VAR} / ${VAR:-default} substitution, validated into typed objects.

Every field has a default, so no file means all defaults (the embedded local setup). Unknown keys and bad
values are a `ConfigError` naming the key path, the value and what is allowed. Secrets are `SecretStr`
(masked in every repr); a secret whose environment variable is unset disables its provider with a warning.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

log = logging.getLogger(__name__)

ENV_PATH = "HYBRIDTRADER_CONFIG"
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class ConfigError(ValueError):
    """A configuration file that cannot be used; the message names the key path."""


class Section(BaseModel):
    """Base of every config section: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


# ----------------------------------------------------------------------------------------- ML
class ModelRegistryConfig(Section):
    enabled: bool = True
    backend: Literal["mlflow"] = "mlflow"
    tracking_uri: str | None = None  # None: a local SQLite store under data_dir


class MLTrainingConfig(Section):
    enabled: bool = True
    training_schedule: Literal["daily", "weekly", "monthly"] = "weekly"
    validation_method: Literal["walk_forward", "purged_kfold"] = "walk_forward"
    model_registry: ModelRegistryConfig = Field(default_factory=ModelRegistryConfig)


class MLModelConfig(Section):
    enabled: bool = True
    model_type: Literal["lightgbm", "xgboost"] = "lightgbm"
    features: list[str] = Field(default_factory=list)


class StrategyConfig(Section):
    enabled: bool = True
    ml_model: MLModelConfig = Field(default_factory=MLModelConfig)


def _default_strategies() -> dict[str, StrategyConfig]:
    return {
        "intraday_mean_reversion": StrategyConfig(
            ml_model=MLModelConfig(features=["zscore", "rsi", "atr", "volume_zscore", "spread"])
        ),
        "swing_trend_following": StrategyConfig(
            ml_model=MLModelConfig(features=["ema_slope", "adx", "atr", "volume_zscore", "trend_strength"])
        ),
    }


# ------------------------------------------------------------------------------- execution / risk
class BackoffConfig(Section):
    """Retries of rate-limited (HTTP 429) and, if enabled, transient failures (timeouts, connection, 5xx)."""

    base_seconds: float = Field(0.5, gt=0)  # first backoff ceiling; doubles per retry (full jitter below it)
    cap_seconds: float = Field(30.0, gt=0)  # ceiling of any single backoff
    max_retries: int = Field(5, ge=0)
    max_elapsed_seconds: float = Field(120.0, gt=0)  # give up rather than wait past this since the first try
    # Off by default: retrying a timed-out order submission could send it twice.
    retry_transient: bool = False


class ExecutionConfig(Section):
    max_api_calls_per_minute: int = Field(200, gt=0)
    backoff: BackoffConfig = Field(default_factory=BackoffConfig)
    enable_time_slicing: bool = True
    enable_toxic_time_filtering: bool = True


class RiskConfig(Section):
    max_gross_exposure_pct_intraday: float = Field(50.0, gt=0)
    max_gross_exposure_pct_swing: float = Field(100.0, gt=0)


# ----------------------------------------------------------------------------------- providers
class PolygonConfig(Section):
    api_key: SecretStr | None = None
    stream_url: str | None = None  # None: the local venue

    @property
    def enabled(self) -> bool:
        return self.api_key is not None


class DataSourcesConfig(Section):
    primary: Literal["alpaca", "polygon"] = "alpaca"
    secondary: list[Literal["alpaca", "polygon"]] = Field(default_factory=lambda: ["polygon"])
    polygon: PolygonConfig = Field(default_factory=PolygonConfig)


class AlpacaConfig(Section):
    api_key: SecretStr | None = None
    secret_key: SecretStr | None = None
    paper: bool = True
    feed: Literal["iex", "sip", "delayed_sip", "test"] = "iex"
    # None: the local simulated venue. Real services are one switch away (set the URLs and the keys).
    trading_url: str | None = None
    data_url: str | None = None
    stream_url: str | None = None
    data_sources: DataSourcesConfig = Field(default_factory=DataSourcesConfig)

    @property
    def has_keys(self) -> bool:
        return self.api_key is not None and self.secret_key is not None


class FinnhubConfig(Section):
    api_key: SecretStr | None = None
    url: str | None = None  # None: the local venue

    @property
    def enabled(self) -> bool:
        return self.api_key is not None


class Config(Section):
    data_dir: Path = Path("hybridtrader-data")
    ml_training: MLTrainingConfig = Field(default_factory=MLTrainingConfig)
    strategies: dict[str, StrategyConfig] = Field(default_factory=_default_strategies)
    execution: ExecutionConfig = Field(default_factory=ExecutionConfig)
    risk: RiskConfig = Field(default_factory=RiskConfig)
    alpaca: AlpacaConfig = Field(default_factory=AlpacaConfig)
    finnhub: FinnhubConfig = Field(default_factory=FinnhubConfig)

    def masked(self) -> dict[str, Any]:
        """The resolved configuration as plain data, secrets shown as '**********'."""
        return self.model_dump(mode="json")


# --------------------------------------------------------------------------------------- loading
def _substitute(node: Any, loc: tuple[Any, ...], unset: list[str]) -> Any:
    """Replace ${VAR} and ${VAR:-default} in every string.

    A whole value that is an unset variable without default becomes None where the key accepts None (a
    secret: its provider is then disabled) and is an error elsewhere.
    """
    if isinstance(node, dict):
        return {k: _substitute(v, (*loc, k), unset) for k, v in node.items()}
    if isinstance(node, list):
        return [_substitute(v, (*loc, i), unset) for i, v in enumerate(node)]
    if not isinstance(node, str) or "${" not in node:
        return node
    path = _path(loc)
    whole = _VAR.fullmatch(node)
    if whole and whole.group(1) not in os.environ and whole.group(2) is None:
        annotation = _resolve(loc)[1]
        if annotation is not None and type(None) not in get_args(annotation):  # unknown keys: reported later
            raise ConfigError(f"config error at {path}: environment variable {whole.group(1)} is not set")
        unset.append(f"{path} (${{{whole.group(1)}}})")
        return None

    def value(m: re.Match[str]) -> str:
        name, default = m.group(1), m.group(2)
        if name in os.environ:
            return os.environ[name]
        if default is not None:
            return default
        raise ConfigError(f"config error at {path}: environment variable {name} is not set (in {node!r})")

    return _VAR.sub(value, node)


def _unwrap(annotation: Any) -> Any:
    """`X | None` -> X (the first non-None member of a union)."""
    if get_origin(annotation) in (Union, UnionType):
        return next(a for a in get_args(annotation) if a is not type(None))
    return annotation


def _resolve(loc: tuple[Any, ...]) -> tuple[type[BaseModel] | None, Any]:
    """The section holding the last key of an error location, and that key's annotation (None if unknown)."""
    node: Any = Config
    parent: type[BaseModel] | None = None
    for part in loc:
        node, parent = _unwrap(node), None
        if isinstance(node, type) and issubclass(node, BaseModel):
            parent = node
            field = node.model_fields.get(str(part))
            node = field.annotation if field is not None else None
        elif get_origin(node) in (dict, list):
            node = get_args(node)[-1] if get_args(node) else None
        else:
            return None, None
    return parent, node


def _path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}" if out else str(part)
    return out or "<root>"


def _format(err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        loc = tuple(e["loc"])
        parent, annotation = _resolve(loc)
        got = e.get("input")
        if _unwrap(annotation) is SecretStr:
            got = "**********"  # never echo a secret, even an invalid one
        if e["type"] == "extra_forbidden":
            allowed = ", ".join(parent.model_fields) if parent is not None else "none"
            lines.append(f"config error at {_path(loc)}: unknown key (allowed keys here: {allowed})")
            continue
        lines.append(f"config error at {_path(loc)}: {e['msg']} (got {got!r})")
    return "; ".join(lines)  # one line, as the CLI reports errors


def config_from_dict(raw: dict[str, Any] | None) -> Config:
    """Validate already-parsed configuration data (after substitution) into a `Config`."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"config error at <root>: expected a mapping, got {type(raw).__name__}")
    unset: list[str] = []
    data = _substitute(raw, (), unset)
    try:
        cfg = Config.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_format(e)) from None
    for where in unset:
        log.warning("config: %s is not set; the feature that needs it is disabled", where)
    return cfg


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Load and validate the YAML config at `path` (or $HYBRIDTRADER_CONFIG); no file means all defaults."""
    if path is None:
        path = os.environ.get(ENV_PATH)
    if path is None:
        return Config()
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise ConfigError(f"cannot read config file {p}: {e.strerror}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {p} is not valid YAML: {e}") from None
    return config_from_dict(raw)
