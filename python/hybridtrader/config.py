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
from typing import Any, Literal

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
class SlippageConfig(Section):
    """`execution.slippage`: the slippage model (hybridtrader.SlippageModel)."""

    max_slippage_bps: float = Field(20.0, gt=0)
    # 0.6: Almgren et al. (2005); 0.5: the square-root law.
    impact_exponent: float = Field(0.6, gt=0, le=1)
    prior_impact_coef: float = Field(0.5, ge=0)
    prior_spread_bps: float = Field(5.0, gt=0)
    prior_adv_shares: float = Field(1_000_000.0, gt=0)
    prior_daily_vol_bps: float = Field(200.0, gt=0)
    # Forgetting rate of the impact regression per fill: memory of about 1 / learning_rate fills.
    learning_rate: float = Field(0.01, gt=0, le=1)
    prior_strength_fills: float = Field(5.0, gt=0)
    spread_learning_rate: float = Field(0.05, gt=0, le=1)
    bucket_minutes: int = Field(30, ge=1, le=390)
    daily_window: int = Field(20, ge=2)
    state_path: Path | None = None  # loaded at start when it exists; the default target of save()


class TimeSlicingConfig(Section):
    """`execution.time_slicing`: how a parent order is split when `enable_time_slicing` is on."""

    window_minutes: float = Field(30.0, gt=0)
    slices: int = Field(6, ge=1)
    max_participation: float = Field(0.05, gt=0, le=1)
    # Ratio of the volume density at the open and the close to the one at midday (U shape).
    volume_u_shape: float = Field(3.0, ge=1)


class ToxicTimeConfig(Section):
    """`execution.toxic_time`: windows without new entries when `enable_toxic_time_filtering` is on."""

    open_minutes: float = Field(15.0, ge=0)
    close_minutes: float = Field(10.0, ge=0)
    halt_buffer_minutes: float = Field(5.0, ge=0)
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
    slippage: SlippageConfig = Field(default_factory=SlippageConfig)
    time_slicing: TimeSlicingConfig = Field(default_factory=TimeSlicingConfig)
    toxic_time: ToxicTimeConfig = Field(default_factory=ToxicTimeConfig)


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
def _substitute(node: Any, path: str, unset: list[str]) -> Any:
    """Replace ${VAR} and ${VAR:-default} in every string; a whole-value unset variable becomes None."""
    if isinstance(node, dict):
        return {k: _substitute(v, f"{path}.{k}" if path else str(k), unset) for k, v in node.items()}
    if isinstance(node, list):
        return [_substitute(v, f"{path}[{i}]", unset) for i, v in enumerate(node)]
    if not isinstance(node, str) or "${" not in node:
        return node
    whole = _VAR.fullmatch(node)
    if whole and whole.group(1) not in os.environ and whole.group(2) is None:
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


def _format(err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        where = ".".join(str(p) for p in e["loc"]) or "<root>"
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
        lines.append(f"config error at {where}: {msg} (got {e.get('input')!r})")
    return "\n".join(lines)


def config_from_dict(raw: dict[str, Any] | None) -> Config:
    """Validate already-parsed configuration data (after substitution) into a `Config`."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"config error at <root>: expected a mapping, got {type(raw).__name__}")
    unset: list[str] = []
    data = _substitute(raw, "", unset)
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
