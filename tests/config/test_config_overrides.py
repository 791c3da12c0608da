"""`--set key.path=value` overrides: values parsed as YAML, bad paths and values named in one line."""

from __future__ import annotations

import pytest
from hybridtrader.config import Config, ConfigError, with_overrides


def test_overrides_set_nested_values() -> None:
    cfg = with_overrides(
        Config(),
        [
            "risk.sizing.risk_per_trade_pct=0.5",
            "backtest.strategies=[a, b]",
            "execution.enable_time_slicing=false",
        ],
    )
    assert cfg.risk.sizing.risk_per_trade_pct == 0.5
    assert cfg.backtest.strategies == ["a", "b"]
    assert cfg.execution.enable_time_slicing is False
    assert Config().risk.sizing.risk_per_trade_pct == 1.0  # the original is untouched


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("risk.sizing.nope=1", "config error at risk.sizing.nope: unknown key"),
        ("risk.nothere.x=1", "config error at risk.nothere: unknown key"),
        ("risk.sizing.risk_per_trade_pct=-1", "config error at risk.sizing.risk_per_trade_pct"),
        ("noequals", "expected key.path=value"),
        ("backtest.cash=[1", "not valid YAML"),
    ],
)
def test_bad_overrides_are_one_clear_line(item: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as e:
        with_overrides(Config(), [item])
    assert "\n" not in str(e.value)
