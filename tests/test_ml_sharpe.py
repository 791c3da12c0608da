"""PSR / DSR / MinTRL against hand computation, the published example and Monte Carlo; backtest; gates."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest
from hybridtrader.config import GatesConfig
from hybridtrader.ml.backtest import BacktestResult, Periods, backtest, max_drawdown
from hybridtrader.ml.gates import all_passed, evaluate_gates
from hybridtrader.ml.sharpe import (
    deflated_sharpe_ratio,
    expected_max_sharpe,
    min_track_record_length,
    probabilistic_sharpe_ratio,
    return_moments,
)
from scipy import stats


def test_psr_hand_computed() -> None:
    # SR 0.1, T 100, skew -0.5, kurtosis 4: z = 0.1 * sqrt(99) / sqrt(1 + 0.05 + 0.75 * 0.01)
    z = 0.1 * math.sqrt(99) / math.sqrt(1 + 0.05 + 0.0075)
    assert probabilistic_sharpe_ratio(0.1, 0.0, 100, -0.5, 4.0) == pytest.approx(stats.norm.cdf(z), abs=1e-12)
    assert probabilistic_sharpe_ratio(0.1, 0.1, 100, 0.0, 3.0) == pytest.approx(0.5)


def test_dsr_published_example() -> None:
    """Bailey & López de Prado (2014): 100 trials, V[SR] 0.5 and best SR 2.5 (annualised), 1250 daily
    returns, skew -3, kurtosis 10 -> SR0 0.1132 per day and DSR 0.9004, as published."""
    assert expected_max_sharpe(100, 0.5 / 250) == pytest.approx(0.1132, abs=5e-5)
    dsr = deflated_sharpe_ratio(2.5 / math.sqrt(250), 1250, -3.0, 10.0, 100, 0.5 / 250)
    assert dsr == pytest.approx(0.9004, abs=5e-5)
    assert expected_max_sharpe(1, 0.3) == 0.0


def test_expected_max_sharpe_matches_monte_carlo() -> None:
    rng = np.random.default_rng(0)
    for n in (10, 100):
        draws = rng.normal(0.0, 0.2, size=(20_000, n)).max(axis=1)
        assert expected_max_sharpe(n, 0.04) == pytest.approx(draws.mean(), rel=0.03)


def test_min_track_record_length_is_where_psr_reaches_confidence() -> None:
    sr, skew, kurt = 0.08, -0.4, 5.0
    n = min_track_record_length(sr, 0.0, skew, kurt, alpha=0.05)
    assert probabilistic_sharpe_ratio(sr, 0.0, n, skew, kurt) == pytest.approx(0.95, abs=1e-9)
    assert min_track_record_length(0.0, 0.1, 0.0, 3.0) == math.inf


def test_dsr_is_calibrated_on_noise() -> None:
    """Best of N zero-skill strategies: the DSR passes 0.95 about 5% of the time (not 100% like PSR)."""
    rng = np.random.default_rng(1)
    passed_dsr = passed_psr = 0
    runs, n_trials, t = 300, 20, 250
    for _ in range(runs):
        r = rng.normal(0.0, 0.01, size=(n_trials, t))
        srs = r.mean(axis=1) / r.std(axis=1, ddof=1)
        best = r[int(np.argmax(srs))]
        m = return_moments(best)
        passed_psr += probabilistic_sharpe_ratio(m.sharpe, 0.0, t, m.skew, m.kurtosis) > 0.95
        passed_dsr += deflated_sharpe_ratio(m.sharpe, t, m.skew, m.kurtosis, n_trials, srs.var(ddof=1)) > 0.95
    assert passed_psr / runs > 0.4
    assert passed_dsr / runs < 0.1


def test_return_moments() -> None:
    r = np.array([0.01, -0.02, 0.03, 0.0, 0.015])
    m = return_moments(r)
    assert m.sharpe == pytest.approx(r.mean() / r.std(ddof=1))
    assert m.skew == pytest.approx(stats.skew(r, bias=False))
    assert m.kurtosis == pytest.approx(stats.kurtosis(r, fisher=False, bias=False))
    assert return_moments(np.zeros(5)).sharpe == 0.0


# ------------------------------------------------------------------------------------- backtest
OPEN = datetime(2024, 1, 2, 14, 30, tzinfo=UTC)


def test_backtest_hand_computed() -> None:
    t1 = [OPEN + timedelta(minutes=m) for m in (10, 20, 70, 130, 140)]
    events = pl.DataFrame({"t1": t1, "ret_net": [0.01, -0.02, 0.03, 0.04, -0.01]}).with_columns(
        pl.col("t1").cast(pl.Datetime("ns", "UTC"))
    )
    prob = np.array([0.7, 0.8, 0.4, 0.9, 0.65])
    bars_ts = pl.Series([OPEN + timedelta(minutes=m) for m in range(0, 390)]).cast(pl.Datetime("ns", "UTC"))
    periods = Periods.from_bars(bars_ts, 60, 252)
    assert len(periods.all) == 7  # 14:00, 15:00 ... 20:00 UTC hour buckets of a 09:30-16:00 session
    assert periods.per_year == pytest.approx(252 * 7)
    span = periods.span(events["t1"], events["t1"])
    res = backtest(events, prob, 0.6, 0.5, periods, span)
    # Taken: 0.01, -0.02 (hour 14), 0.04, -0.01 (hour 16); hour 15 is flat. Weight 0.5.
    rets = np.array([(0.01 - 0.02) * 0.5, 0.0, (0.04 - 0.01) * 0.5])
    np.testing.assert_allclose(res.equity["ret"].to_numpy(), rets)
    assert res.n_trades == 4 and res.win_rate == 0.5
    assert res.sharpe_per_period == pytest.approx(rets.mean() / rets.std(ddof=1))
    assert res.sharpe == pytest.approx(res.sharpe_per_period * math.sqrt(252 * 7))
    assert res.total_return == pytest.approx(np.prod(1 + rets) - 1)
    assert res.max_drawdown == pytest.approx(0.005)
    with pytest.raises(ValueError, match="prob"):
        backtest(events, prob[:2], 0.6, 0.5, periods, span)


def test_max_drawdown() -> None:
    assert max_drawdown(np.array([1.1, 0.99, 1.2, 0.6, 0.9])) == pytest.approx(0.5)
    assert max_drawdown(np.array([0.9, 1.0])) == pytest.approx(0.1)
    assert max_drawdown(np.array([1.0, 1.1])) == 0.0


def result(**kw: float) -> BacktestResult:
    base = dict(
        sharpe=2.0,
        sharpe_per_period=0.2,
        skew=0.0,
        kurtosis=3.0,
        n_periods=100,
        max_drawdown=0.05,
        n_trades=200,
        win_rate=0.55,
        total_return=0.1,
        psr=0.99,
        equity=pl.DataFrame(),
    )
    base.update(kw)
    return BacktestResult(**base)  # type: ignore[arg-type]


def test_gates_need_every_one() -> None:
    cfg = GatesConfig()
    gates = evaluate_gates(result(), 0.97, cfg)
    assert all_passed(gates)
    assert [g.name for g in gates] == ["sharpe", "max_drawdown", "trades", "win_rate", "deflated_sharpe"]
    assert {g.name: g.threshold for g in gates} == {
        "sharpe": 1.0,
        "max_drawdown": 0.2,
        "trades": 50,
        "win_rate": 0.5,
        "deflated_sharpe": 0.95,
    }
    for bad, dsr in [
        ({"sharpe": 0.9}, 0.97),
        ({"max_drawdown": 0.25}, 0.97),
        ({"n_trades": 49}, 0.97),
        ({"win_rate": 0.49}, 0.97),
        ({}, 0.94),
    ]:
        gates = evaluate_gates(result(**bad), dsr, cfg)
        assert not all_passed(gates)
        assert sum(not g.passed for g in gates) == 1
    edge = evaluate_gates(result(sharpe=1.0, max_drawdown=0.2, n_trades=50, win_rate=0.5), 0.95, cfg)
    assert all_passed(edge)  # thresholds are inclusive
