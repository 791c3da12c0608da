"""CapitalAllocator: the seed API, the too-little-history rule, persistence, rebalancing and bad input."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hybridtrader.config import config_from_dict
from hybridtrader.errors import ConfigError, DataError, StateError
from hybridtrader.portfolio.allocation import ewma_moments, risk_parity_weights
from hybridtrader.portfolio.capital_allocator import CapitalAllocator

MR, SW = "intraday_mean_reversion", "swing_trend_following"
DAYS = [date(2024, 1, 2) + timedelta(days=i) for i in range(80)]


def _config(tmp_path: Path, **allocation: object) -> dict:
    return {"data_dir": str(tmp_path), "portfolio": {"allocation": allocation}}


def _returns(seed: int, vol: float, days: list[date] = DAYS) -> dict[date, float]:
    rng = np.random.default_rng(seed)
    return dict(zip(days, rng.normal(0.0004, vol, len(days)).tolist(), strict=True))


def test_seed_snippet_runs_as_written(tmp_path: Path) -> None:
    config = config_from_dict(_config(tmp_path))
    equity = 100_000.0
    strategy_metrics = {MR: {"returns": _returns(1, 0.01)}, SW: {"returns": _returns(2, 0.02)}}
    allocator = CapitalAllocator(config)
    allocations = allocator.allocate_capital(equity, strategy_metrics)
    assert set(allocations) == {MR, SW}
    assert sum(allocations.values()) == pytest.approx(equity, rel=1e-12)
    # risk parity of the EWMA covariance of exactly the returns given
    r = np.column_stack([list(strategy_metrics[n]["returns"].values()) for n in (MR, SW)])
    expected = risk_parity_weights(ewma_moments(r, 30.0)[1])
    assert allocations[MR] / equity == pytest.approx(expected[0], abs=1e-12)
    assert allocations[MR] > allocations[SW]  # the quieter strategy gets more capital


def test_probation_rule_is_applied_and_reported(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    cfg["strategies"] = {"a": {}, "b": {}, "c": {}}
    allocator = CapitalAllocator(cfg)
    allocator.update_strategy_performance("a", _returns(1, 0.01))
    allocator.update_strategy_performance("b", _returns(2, 0.03))
    allocator.update_strategy_performance("c", _returns(3, 0.01, DAYS[:5]))  # 5 < min_history_days 20
    plan = allocator.plan(90_000.0)
    assert plan.weights["c"] == pytest.approx(1 / 3)  # on probation: an equal share
    assert "5 daily returns < min_history_days 20" in plan.probation["c"]
    assert set(plan.probation) == {"c"}
    # a and b share the remaining 2/3 by risk parity (two strategies: inverse volatility)
    cov = ewma_moments(np.column_stack([list(_returns(s, v).values()) for s, v in ((1, 0.01), (2, 0.03))]),
                       30.0)[1]
    inv = 1 / np.sqrt(np.diag(cov))
    assert plan.weights["a"] == pytest.approx(2 / 3 * inv[0] / inv.sum(), rel=1e-10)


def test_disjoint_histories_put_the_shorter_on_probation(tmp_path: Path) -> None:
    allocator = CapitalAllocator(_config(tmp_path))
    allocator.update_strategy_performance(MR, _returns(1, 0.01, DAYS[:40]))
    allocator.update_strategy_performance(SW, _returns(2, 0.01, DAYS[30:]))  # 50 days, 10 in common
    plan = allocator.plan(1.0)
    # the longer history (SW) is taken first; MR shares too few of its dates
    assert plan.probation == {MR: f"10 dates in common with {SW} < min_history_days 20"}


def test_state_round_trip_and_replayed_dates_count_once(tmp_path: Path) -> None:
    allocator = CapitalAllocator(_config(tmp_path))
    allocator.update_strategy_performance(MR, _returns(1, 0.01))
    n = allocator.update_strategy_performance(MR, _returns(1, 0.01))  # the same sessions again
    assert n == len(DAYS)
    allocator.update_strategy_performance(
        SW, pl.DataFrame({"date": DAYS, "return": list(_returns(2, 0.02).values())}))
    first = allocator.allocate_capital(50_000.0, now=date(2024, 3, 1))
    again = CapitalAllocator(_config(tmp_path))
    assert again.weights == allocator.weights and again.equity == 50_000.0
    assert again.last_rebalance == date(2024, 3, 1)
    assert again.plan(50_000.0).capital == pytest.approx(first)


def test_corrupt_and_foreign_state_files_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "portfolio" / "allocator.json"
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    with pytest.raises(StateError, match="corrupt"):
        CapitalAllocator(_config(tmp_path))
    path.write_text('{"format_version": 99, "history": {}}')
    with pytest.raises(StateError, match="format_version 99, expected 1"):
        CapitalAllocator(_config(tmp_path))
    path.write_text('{"format_version": 1, "history": {"x": {"not-a-date": 0.1}}}')
    with pytest.raises(StateError, match="malformed"):
        CapitalAllocator(_config(tmp_path))
    assert path.read_text() == '{"format_version": 1, "history": {"x": {"not-a-date": 0.1}}}'  # untouched


def test_bad_input_gets_one_clear_error(tmp_path: Path) -> None:
    allocator = CapitalAllocator(_config(tmp_path))
    with pytest.raises(DataError, match=r"returns of intraday_mean_reversion on 2024-01-03: nan"):
        allocator.update_strategy_performance(MR, {"2024-01-02": 0.01, "2024-01-03": float("nan")})
    with pytest.raises(DataError, match="equity: must be a finite number >= 0, got -1"):
        allocator.allocate_capital(-1.0)
    with pytest.raises(ConfigError, match="unknown strategy 'nope'"):
        allocator.allocate_capital(1.0, {"nope": {}})
    with pytest.raises(DataError, match=r"unknown keys \['sharpe'\]"):
        allocator.allocate_capital(1.0, {MR: {"sharpe": 1.2}})
    with pytest.raises(ConfigError, match=r"portfolio.allocation.bounds.zz: unknown strategy"):
        CapitalAllocator(_config(tmp_path, bounds={"zz": {"max_weight": 0.5}}))
    with pytest.raises(ValueError, match=r"min_weight 0\.6 > max_weight 0\.5"):  # config.py's ConfigError
        config_from_dict(_config(tmp_path, min_weight=0.6, max_weight=0.5))
    assert allocator.history_length(MR) == 0  # the bad batch recorded nothing


def test_identical_strategies_give_a_singular_covariance_error(tmp_path: Path) -> None:
    allocator = CapitalAllocator(_config(tmp_path))
    same = _returns(1, 0.01)
    with pytest.raises(DataError, match=r"covariance: singular .*intraday_mean_reversion, swing_trend"):
        allocator.allocate_capital(1.0, {MR: {"returns": same}, SW: {"returns": same}})


def test_turnover_limit_and_bounds_through_the_allocator(tmp_path: Path) -> None:
    allocator = CapitalAllocator(_config(tmp_path, max_turnover=0.1, bounds={SW: {"max_weight": 0.3}}))
    first = allocator.allocate_capital(100.0)  # both on probation: equal shares, then SW capped at 0.3
    assert first == pytest.approx({MR: 70.0, SW: 30.0})
    allocator.update_strategy_performance(MR, _returns(1, 0.04))
    allocator.update_strategy_performance(SW, _returns(2, 0.005))  # SW now wants far more than 0.3
    second = allocator.allocate_capital(100.0)
    assert second[SW] == pytest.approx(30.0)  # held by its bound; MR capped too (sum stays 100)
    assert second[MR] == pytest.approx(70.0)


def test_kelly_through_the_allocator_uses_daily_excess_return(tmp_path: Path) -> None:
    allocator = CapitalAllocator(_config(tmp_path, method="kelly", kelly_fraction=0.5, leverage_cap=5.0,
                                         risk_free_rate=0.0252, max_weight=5.0))
    for name, seed in ((MR, 1), (SW, 2)):
        allocator.update_strategy_performance(name, _returns(seed, 0.01))
    r = np.column_stack([list(_returns(s, 0.01).values()) for s in (1, 2)])
    mu, cov = ewma_moments(r, 30.0)
    f = 0.5 * np.linalg.solve(cov, mu - 0.0252 / 252)
    plan = allocator.plan(1.0)
    expected = np.maximum(f, 0)
    expected *= min(expected.sum(), 5.0) / expected.sum()
    assert [plan.weights[MR], plan.weights[SW]] == pytest.approx(expected.tolist(), rel=1e-10)


def test_rebalance_needed_reports_drift_then_schedule(tmp_path: Path) -> None:
    allocator = CapitalAllocator(_config(tmp_path, rebalance_band=0.05, rebalance_schedule="weekly"))
    target = allocator.allocate_capital(100.0, now=date(2024, 1, 3))  # a Wednesday
    drifted = {MR: 58.0, SW: 42.0}
    d = allocator.rebalance_needed(drifted, target, now=date(2024, 1, 4))
    assert d and "drift 8.00% > band 5.00%" in d.reason
    near = {MR: 52.0, SW: 48.0}
    d = allocator.rebalance_needed(near, target, now=date(2024, 1, 5))
    assert not d and "within band" in d.reason
    d = allocator.rebalance_needed(near, target, now=date(2024, 1, 8))  # the next ISO week
    assert d and "weekly rebalance due" in d.reason
    with pytest.raises(DataError, match=r"current\['swing_trend_following'\]: capital must be"):
        allocator.rebalance_needed({MR: 1.0, SW: -2.0}, target)
    with pytest.raises(ConfigError, match="unknown strategy 'x'"):
        allocator.rebalance_needed({"x": 1.0}, target)
