"""DynamicSizer: hand-checked sizing formulas, regimes, volatility targeting, Kelly, caps, heat, reduction
rules and input validation."""

from __future__ import annotations

import math

import hybridtrader
import polars as pl
import pytest
from hybridtrader.config import ConfigError, config_from_dict
from hybridtrader.risk.dynamic_sizing import DynamicSizer
from hypothesis import given, settings
from hypothesis import strategies as st

# max_position_pct 50 keeps the position cap out of the way of the risk-budget cases below.
WIDE = {"risk": {"sizing": {"max_position_pct": 50}}}


def test_seed_unit_test() -> None:
    sizer = hybridtrader.DynamicSizer({})
    qty = sizer.calculate_position_size(100000, 150.0, 3.5, "AAPL")
    assert qty > 0
    assert isinstance(qty, int)


def test_default_config_hand_computed() -> None:
    # risk 1% of 100k = 1000 over 2 x 3.5 = 7 -> 142.86 shares, but the 20% position cap allows
    # 20,000 / 150 = 133.33 -> 133
    assert DynamicSizer().calculate_position_size(100_000, 150.0, 3.5, "AAPL") == 133
    assert DynamicSizer(WIDE).calculate_position_size(100_000, 150.0, 3.5, "AAPL") == 142


@pytest.mark.parametrize(
    ("regime", "expected"),
    [(None, 142), ("normal", 142), ("trending", 142), ("ranging", 107), ("high_volatility", 71),
     ("crisis", 35)],
)
def test_regime_multipliers(regime: str | None, expected: int) -> None:
    # 142.857 x {1, 1, 0.75, 0.5, 0.25}
    assert DynamicSizer(WIDE).calculate_position_size(100_000, 150.0, 3.5, "AAPL", regime) == expected


def test_unknown_regime_lists_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown regime 'bull' \(known: crisis, high_volatility, normal, "
                                         r"ranging, trending\)"):
        DynamicSizer().calculate_position_size(100_000, 150.0, 3.5, "AAPL", "bull")
    assert DynamicSizer(WIDE).calculate_position_size(100_000, 150.0, 3.5, "AAPL", "High-Volatility") == 71
    custom = DynamicSizer({"risk": {"sizing": {"regime_multipliers": {"Bull": 1.5}, "max_position_pct": 50}}})
    assert custom.calculate_position_size(100_000, 150.0, 3.5, "AAPL", "bull") == 214  # 142.857 x 1.5


def test_volatility_targeting() -> None:
    s = DynamicSizer(WIDE)
    # target 15% / realised 30% = 0.5 -> 71.43
    assert s.calculate_position_size(100_000, 150.0, 3.5, "AAPL", realized_vol=0.30) == 71
    # 15% / 5% = 3 capped at 2 -> 285.7; position cap 50k / 150 = 333
    assert s.calculate_position_size(100_000, 150.0, 3.5, "AAPL", realized_vol=0.05) == 285
    # regime and volatility multiply: 142.857 x 0.75 x 0.5 = 53.57
    assert s.calculate_position_size(100_000, 150.0, 3.5, "AAPL", "ranging", realized_vol=0.30) == 53


def test_fractional_kelly() -> None:
    s = DynamicSizer(WIDE)
    # w = 0.34, R = 2: kelly = 0.34 - 0.66 / 2 = 0.01, half Kelly 0.005 < 1% -> 500 / 7 = 71.4
    assert s.calculate_position_size(100_000, 150.0, 3.5, "X", win_rate=0.34, payoff_ratio=2.0) == 71
    # a strong edge never raises risk above the configured 1%
    assert s.calculate_position_size(100_000, 150.0, 3.5, "X", win_rate=0.6, payoff_ratio=2.0) == 142
    # no edge (kelly = 0.4 - 0.6 / 1.2 = -0.1): no trade, never a negative size
    assert s.calculate_position_size(100_000, 150.0, 3.5, "X", win_rate=0.4, payoff_ratio=1.2) == 0
    full = DynamicSizer({"risk": {"sizing": {"kelly_fraction": 1.0, "max_position_pct": 50}}})
    assert full.calculate_position_size(100_000, 150.0, 3.5, "X", win_rate=0.34, payoff_ratio=2.0) == 142
    quarter = DynamicSizer({"risk": {"sizing": {"kelly_fraction": 0.25, "max_position_pct": 50}}})
    # 0.25 x 0.01 = 0.0025 -> 250 / 7 = 35.7
    assert quarter.calculate_position_size(100_000, 150.0, 3.5, "X", win_rate=0.34, payoff_ratio=2.0) == 35


def test_caps_and_symbol_multiplier() -> None:
    s = DynamicSizer(WIDE)
    assert s.calculate_position_size(100_000, 150.0, 3.5, "AAPL", buying_power=5_000) == 33  # 5000 / 150
    assert s.calculate_position_size(100_000, 150.0, 3.5, "AAPL", buying_power=0) == 0
    # tight ATR: 1000 / (2 x 0.01) = 50,000 shares; the 50% cap gives 50,000 / 150 = 333
    assert s.calculate_position_size(100_000, 150.0, 0.01, "AAPL") == 333
    half = DynamicSizer(
        {"risk": {"sizing": {"symbol_risk_multipliers": {"TSLA": 0.5}, "max_position_pct": 50}}}
    )
    assert half.calculate_position_size(100_000, 150.0, 3.5, "TSLA") == 71
    assert half.calculate_position_size(100_000, 150.0, 3.5, "AAPL") == 142
    # an exact quotient is not floored one short: 100,000 x 1% / (2 x 2.5) = 200
    assert s.calculate_position_size(100_000, 10.0, 2.5, "X") == 200


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"equity": float("nan")}, "equity must be finite"),
        ({"equity": -1.0}, "equity must be > 0"),
        ({"equity": 0.0}, "equity must be > 0"),
        ({"price": float("inf")}, "price must be finite"),
        ({"price": 0.0}, "price must be > 0"),
        ({"atr": -3.5}, "atr must be > 0"),
        ({"atr": float("nan")}, "atr must be finite"),
        ({"atr": "wide"}, "atr must be a number"),
        ({"atr": "3.5"}, "atr must be a number"),
        ({"equity": True}, "equity must be a number"),
        ({"price": None}, "price must be a number"),
        ({"symbol": ""}, "symbol must be a non-empty str"),
        ({"realized_vol": 0.0}, "realized_vol must be > 0"),
        ({"win_rate": 1.5, "payoff_ratio": 2.0}, r"win_rate must be in \[0, 1\]"),
        ({"win_rate": 0.5, "payoff_ratio": 0.0}, "payoff_ratio must be > 0"),
        ({"win_rate": 0.5}, "win_rate and payoff_ratio must be given together"),
        ({"buying_power": -1.0}, "buying_power must be >= 0"),
    ],
)
def test_invalid_inputs_raise(kwargs: dict, match: str) -> None:
    args = {"equity": 100_000.0, "price": 150.0, "atr": 3.5, "symbol": "AAPL"} | kwargs
    with pytest.raises(ValueError, match=match):
        DynamicSizer().calculate_position_size(**args)


@settings(max_examples=200, deadline=None)
@given(
    equity=st.floats(1_000, 1e8),
    price=st.floats(0.5, 5_000),
    atr=st.floats(0.01, 200),
    vol=st.one_of(st.none(), st.floats(0.01, 2.0)),
    power=st.one_of(st.none(), st.floats(0, 1e8)),
)
def test_size_respects_every_cap(equity: float, price: float, atr: float, vol: float | None,
                                 power: float | None) -> None:
    s = DynamicSizer()
    c = s.config
    n = s.calculate_position_size(equity, price, atr, "X", "trending", realized_vol=vol, buying_power=power)
    assert n >= 0
    slack = 1 + 1e-9
    assert n * price <= equity * c.max_position_pct / 100 * slack
    assert n * price <= (equity if power is None else power) * slack
    vol_scale = 1.0 if vol is None else min(c.target_volatility / vol, c.max_volatility_scale)
    assert n * c.atr_multiple * atr <= equity * c.risk_per_trade_pct / 100 * vol_scale * slack
    # and it is the largest such integer (one more share breaks a cap)
    m = n + 1
    assert (m * price > equity * c.max_position_pct / 100
            or m * price > (equity if power is None else power)
            or m * c.atr_multiple * atr > equity * c.risk_per_trade_pct / 100 * vol_scale)


# ---------------------------------------------------------------------------------------------- heat
def test_portfolio_heat_hand_computed() -> None:
    s = DynamicSizer()
    positions = [
        {"symbol": "A", "qty": 100, "entry_price": 50.0, "stop_price": 48.0},  # 200
        {"symbol": "B", "qty": -50, "entry_price": 20.0, "stop_price": 21.0},  # short: 50
        {"symbol": "C", "qty": 10, "entry": 30.0, "stop": 27.5},  # 25
        {"symbol": "D", "qty": 40, "entry_price": 10.0, "stop_price": 9.0, "side": "sell"},  # see below
        {"symbol": "E", "qty": 30, "entry_price": 10.0, "stop_price": 10.5, "side": "sell"},  # 15
    ]
    # D: a short whose stop is below entry locks a gain -> contributes 0
    assert s.calculate_portfolio_heat(positions, 10_000.0) == pytest.approx((200 + 50 + 25 + 15) / 10_000)
    frame = pl.DataFrame(
        {"qty": [100, -50], "entry_price": [50.0, 20.0], "stop_price": [48.0, 21.0]}
    )
    assert s.calculate_portfolio_heat(frame, 10_000.0) == pytest.approx(0.025)
    assert s.calculate_portfolio_heat([], 10_000.0) == 0.0
    assert s.calculate_portfolio_heat(pl.DataFrame(schema={"qty": pl.Int64}), 10_000.0) == 0.0


@pytest.mark.parametrize(
    ("positions", "equity", "match"),
    [
        ([{"qty": 1, "entry_price": 10.0, "stop_price": float("nan")}], 1e4, r"positions\[0\].stop_price"),
        ([{"qty": 1, "entry_price": 10.0}], 1e4, r"positions\[0\] has no 'stop_price'"),
        ([{"qty": 1, "entry_price": -10.0, "stop_price": 9.0}], 1e4, r"positions\[0\].entry_price must be >"),
        ([{"qty": 1, "entry_price": 10.0, "stop_price": 9.0, "side": "long"}], 1e4, "side must be"),
        ([], 0.0, "equity must be > 0"),
        ([], float("nan"), "equity must be finite"),
    ],
)
def test_portfolio_heat_invalid(positions: list, equity: float, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        DynamicSizer().calculate_portfolio_heat(positions, equity)


# ------------------------------------------------------------------------------------ reduce sizing
def test_should_reduce_sizing_rules() -> None:
    s = DynamicSizer()
    assert s.should_reduce_sizing() == (False, 1.0, "ok")
    calm = s.should_reduce_sizing(heat=0.03, drawdown=0.01, recent_pnls=[5.0, -1.0, 2.0])
    assert calm == (False, 1.0, "ok")
    assert s.should_reduce_sizing(heat=0.065) == (True, 0.0, "portfolio heat 6.50% >= cap 6.00%")
    assert s.should_reduce_sizing(heat=0.05) == (True, 0.5, "portfolio heat 5.00% >= warn 4.50%")
    assert s.should_reduce_sizing(drawdown=0.07) == (True, 0.5, "drawdown 7.00% >= 5.00%")
    assert s.should_reduce_sizing(drawdown=0.12) == (True, 0.25, "drawdown 12.00% >= 10.00%")
    assert s.should_reduce_sizing(recent_pnls=[10.0, -1.0, -1.0, -1.0]) == (
        True, 0.5, "losing streak 3 >= 3"
    )
    # rolling: the last 20 trades sum to -1 (the early +100 is outside the window)
    pnls = [100.0] + [1.0] * 9 + [-1.0] * 10 + [2.0, -3.0]
    reduce, factor, reason = s.should_reduce_sizing(recent_pnls=pnls)
    assert (reduce, factor) == (True, 0.75)
    assert reason == f"rolling PnL {sum(pnls[-20:]):.2f} < 0 over 20 trades"
    # the most restrictive factor applies; reasons are all listed
    reduce, factor, reason = s.should_reduce_sizing(heat=0.05, drawdown=0.11, recent_pnls=[-1.0] * 3)
    assert (reduce, factor) == (True, 0.25)
    assert reason.split("; ") == [
        "portfolio heat 5.00% >= warn 4.50%",
        "drawdown 11.00% >= 10.00%",
        "losing streak 3 >= 3",
        "rolling PnL -3.00 < 0 over 3 trades",
    ]


def test_should_reduce_sizing_uses_heat_from_positions() -> None:
    s = DynamicSizer()
    heat = s.calculate_portfolio_heat([{"qty": 1000, "entry_price": 50.0, "stop_price": 47.0}], 50_000.0)
    assert heat == pytest.approx(0.06)
    assert s.should_reduce_sizing(heat=heat)[1] == 0.0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"heat": -0.1}, "heat must be >= 0"),
        ({"heat": float("nan")}, "heat must be finite"),
        ({"drawdown": 5.0}, r"drawdown must be a fraction in \[0, 1\]"),
        ({"drawdown": -0.1}, r"drawdown must be a fraction in \[0, 1\]"),
        ({"recent_pnls": [1.0, math.inf]}, r"recent_pnls\[1\] must be finite"),
    ],
)
def test_should_reduce_sizing_invalid(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        DynamicSizer().should_reduce_sizing(**kwargs)


def test_sizing_config_validation() -> None:
    with pytest.raises(ConfigError, match=r"risk\.sizing\.risk_per_trade_pct"):
        config_from_dict({"risk": {"sizing": {"risk_per_trade_pct": 0}}})
    with pytest.raises(ConfigError, match="multiplier for 'crisis' must be finite and >= 0"):
        config_from_dict({"risk": {"sizing": {"regime_multipliers": {"crisis": -1}}}})
    with pytest.raises(ConfigError, match=r"heat_warn_pct 7\.0 > max_heat_pct 6\.0"):
        config_from_dict({"risk": {"sizing": {"heat_warn_pct": 7}}})
    with pytest.raises(ConfigError, match="unknown key"):
        config_from_dict({"risk": {"sizing": {"risk_pct": 1}}})
