"""A file that sets one key under a default entry keeps the entry's other keys and the other entries."""

from __future__ import annotations

from pathlib import Path

import pytest
from hybridtrader.cli import main
from hybridtrader.config import Config, ConfigError, config_from_dict, with_overrides
from hybridtrader.errors import HybridTraderError


def test_one_ml_model_key_keeps_the_rest() -> None:
    defaults = Config()
    override = {"intraday_mean_reversion": {"ml_model": {"model_type": "xgboost"}}}
    cfg = config_from_dict({"strategies": override})
    mr = cfg.strategies["intraday_mean_reversion"].ml_model
    assert mr.model_type == "xgboost"
    assert mr.features == defaults.strategies["intraday_mean_reversion"].ml_model.features
    assert cfg.strategies["swing_trend_following"] == defaults.strategies["swing_trend_following"]


def test_lists_replace_and_new_strategies_add() -> None:
    cfg = config_from_dict({"strategies": {"intraday_mean_reversion": {"ml_model": {"features": ["rsi"]}},
                                           "mine": {"ml_model": {"label": "mean_reversion"}}}})
    assert cfg.strategies["intraday_mean_reversion"].ml_model.features == ["rsi"]
    assert set(cfg.strategies) == {"intraday_mean_reversion", "swing_trend_following", "mine"}


def test_command_line_overrides_are_validated_with_key_paths() -> None:
    cfg = with_overrides(Config(), {"venue": {"port": 8080, "market": {"seed": 3}}})
    assert (cfg.venue.port, cfg.venue.market.seed, cfg.venue.market.symbols) == (8080, 3, 10)
    with pytest.raises(ConfigError, match=r"venue\.port") as e:
        with_overrides(cfg, {"venue": {"port": 99999}})
    assert isinstance(e.value, HybridTraderError)


def test_train_accepts_what_config_check_accepts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("strategies:\n  swing_trend_following:\n    ml_model:\n      enabled: false\n"
                   "  intraday_mean_reversion:\n    ml_model:\n      market_neutral: true\n")
    assert main(["config", "check", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "config OK" in out and "- zscore" in out  # the seed features survived the override
