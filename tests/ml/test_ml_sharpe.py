"""PSR / DSR / MinTRL against hand computation, the published example and Monte Carlo; evaluation; gates."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest
from hybridtrader.config import GatesConfig
from hybridtrader.ml.evaluation import (
    EvaluationResult,
    Marks,
    Periods,
    basket_relative,
    evaluate_events,
    max_drawdown,
    trade_pnl,
)
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


# ----------------------------------------------------------------------------- event evaluation
OPEN = datetime(2024, 1, 2, 14, 30, tzinfo=UTC)


def minute_bars(closes: np.ndarray, symbol: str = "A") -> pl.DataFrame:
    ts = pl.Series([OPEN + timedelta(minutes=m) for m in range(len(closes))]).cast(pl.Datetime("ns", "UTC"))
    return pl.DataFrame({"symbol": symbol, "ts": ts, "close": closes})


def events_frame(rows: list[tuple[str, int, int, int, float, float, float]]) -> pl.DataFrame:
    """(symbol, side, entry minute, exit minute, entry price, exit price, cost) -> label-like events."""
    return pl.DataFrame(
        {
            "symbol": [r[0] for r in rows],
            "side": [r[1] for r in rows],
            "t0": [OPEN + timedelta(minutes=r[2]) for r in rows],
            "t1": [OPEN + timedelta(minutes=r[3]) for r in rows],
            "price": [r[4] for r in rows],
            "exit_price": [r[5] for r in rows],
            "cost": [r[6] for r in rows],
        }
    ).with_columns(
        pl.col("t0", "t1").cast(pl.Datetime("ns", "UTC")),
        ret_net=pl.col("side") * (pl.col("exit_price") / pl.col("price") - 1) - pl.col("cost"),
    )


def test_evaluation_marks_to_market_hand_computed() -> None:
    close = 100 + 0.01 * np.arange(390)  # minute m closes at 100 + m / 100
    periods = Periods.from_bars(minute_bars(close), 60, 252)
    assert len(periods.keys) == 7  # 14:00 ... 20:00 UTC hour buckets of a 09:30-16:00 session
    assert periods.per_year == pytest.approx(252 * 7)
    events = events_frame(
        [
            ("A", 1, 10, 20, close[10], close[20], 1e-4),  # inside the 14:00 bucket (minutes 0..29)
            ("A", -1, 25, 95, close[25], close[95], 0.0),  # 14:00 -> 15:00 (30..89) -> 16:00 (90..149)
            ("A", 1, 30, 40, close[30], close[40], 0.0),  # not taken
        ]
    )
    res = evaluate_events(events, np.array([0.7, 0.8, 0.4]), 0.6, 0.5, periods, (0, 2))
    p0 = (close[20] - close[10]) / close[10] - 1e-4 - (close[29] - close[25]) / close[25]
    p1 = -(close[89] - close[29]) / close[25]
    p2 = -(close[95] - close[89]) / close[25]
    rets = 0.5 * np.array([p0, p1, p2])
    np.testing.assert_allclose(res.equity["ret"].to_numpy(), rets, rtol=1e-12)
    assert res.n_trades == 2 and res.win_rate == 0.5
    assert res.sharpe_per_period == pytest.approx(rets.mean() / rets.std(ddof=1))
    assert res.sharpe == pytest.approx(res.sharpe_per_period * math.sqrt(252 * 7))
    assert res.total_return == pytest.approx(np.prod(1 + rets) - 1)
    equity = np.cumprod(1 + rets)
    assert res.max_drawdown == pytest.approx(max_drawdown(equity))
    with pytest.raises(ValueError, match="prob"):
        evaluate_events(events, np.array([0.7]), 0.6, 0.5, periods, (0, 2))
    with pytest.raises(ValueError, match="outside the periods"):
        evaluate_events(events, np.array([0.7, 0.8, 0.4]), 0.6, 0.5, periods, (0, 1))


def test_trade_pnl_adds_up_to_the_net_return() -> None:
    """Marking to market only spreads a trade's P&L over its periods: per trade it sums to ret_net."""
    rng = np.random.default_rng(5)
    frames, rows = [], []
    for sym in ("A", "B"):
        close = 50 * np.exp(np.cumsum(rng.normal(0, 1e-3, 390)))
        frames.append(minute_bars(close, sym))
        for _ in range(40):
            a = int(rng.integers(0, 380))
            b = int(rng.integers(a + 1, 390))
            rows.append(
                (sym, int(rng.choice([-1, 1])), a, b, close[a], close[b], float(rng.uniform(0, 5e-4)))
            )
    periods = Periods.from_bars(pl.concat(frames), 30, 252)
    events = events_frame(rows)
    per_trade = trade_pnl(events, periods).group_by("trade").agg(pl.col("pnl").sum()).sort("trade")
    np.testing.assert_allclose(per_trade["pnl"].to_numpy(), events["ret_net"].to_numpy(), atol=1e-12)
    # The marks of a subset of the events, cut from the marks of all of them, are the subset's own marks.
    marks = Marks.of(events, periods)
    rows = np.sort(rng.choice(events.height, 25, replace=False))
    cut, own = marks.subset(rows, events.height), Marks.of(events[rows], periods)
    for got, want in ((cut.trade, own.trade), (cut.pi, own.pi), (cut.pnl, own.pnl)):
        np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError, match="ascending"):
        marks.subset(rows[::-1], events.height)


def test_max_drawdown() -> None:
    assert max_drawdown(np.array([1.1, 0.99, 1.2, 0.6, 0.9])) == pytest.approx(0.5)
    assert max_drawdown(np.array([0.9, 1.0])) == pytest.approx(0.1)
    assert max_drawdown(np.array([1.0, 1.1])) == 0.0


def result(**kw: float) -> EvaluationResult:
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
    return EvaluationResult(**base)  # type: ignore[arg-type]


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


def test_basket_relative_price_removes_the_common_move() -> None:
    a = np.array([100.0, 110.0, 121.0, 121.0])
    b = np.array([50.0, 50.0, 55.0, 60.5])
    bars = pl.concat([minute_bars(a, "A"), minute_bars(b, "B")])
    out = basket_relative(bars).sort("symbol", "ts")
    lr = (np.diff(np.log(a)) + np.diff(np.log(b))) / 2  # the basket: mean log return per bar
    level = np.exp(np.concatenate([[0.0], np.cumsum(lr)]))
    np.testing.assert_allclose(out.filter(pl.col("symbol") == "A")["pnl_close"].to_numpy(), a / level)
    np.testing.assert_allclose(out.filter(pl.col("symbol") == "B")["pnl_close"].to_numpy(), b / level)
    # Two symbols moving together have a flat relative price.
    same = basket_relative(pl.concat([minute_bars(a, "A"), minute_bars(a / 2, "B")]))
    np.testing.assert_allclose(same["pnl_close"].to_numpy(), np.repeat([100.0, 50.0], 4))
