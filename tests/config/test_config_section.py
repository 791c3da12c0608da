"""`config_section`: one resolver for every form a caller may hold a config in."""

import pytest
from hybridtrader.config import (
    Config,
    ExecutionConfig,
    SlippageConfig,
    as_config,
    config_from_dict,
    config_section,
)
from hybridtrader.errors import ConfigError


def test_every_form_gives_the_same_section(tmp_path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("execution:\n  slippage:\n    impact_exponent: 0.7\n")
    data = {"execution": {"slippage": {"impact_exponent": 0.7}}}
    cfg = config_from_dict(data)
    forms = (cfg, cfg.execution, cfg.execution.slippage, data, {"impact_exponent": 0.7}, path, str(path))
    for form in forms:
        got = config_section(form, "execution.slippage")
        assert isinstance(got, SlippageConfig) and got.impact_exponent == 0.7
    assert config_section(None, "execution.slippage") == SlippageConfig()
    assert config_section({"trading": {"seed": 1}}, "execution") == ExecutionConfig()  # not its section
    assert as_config(None) == Config() and as_config(cfg) is cfg


def test_bad_forms() -> None:
    with pytest.raises(ConfigError, match=r"execution\.slippage\.impact_exponent"):
        config_section({"impact_exponent": "steep"}, "execution.slippage")
    with pytest.raises(ConfigError, match="trading"):
        as_config({"trading": {}})  # the whole config is validated
    with pytest.raises(TypeError, match="config must be a Config, SlippageConfig, mapping, path or None"):
        config_section(42, "execution.slippage")  # type: ignore[arg-type]
