"""Labels on hand-made price paths and against a plain loop reference."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest
from hybridtrader.config import MeanReversionLabelConfig, TripleBarrierLabelConfig
from hybridtrader.ml.costs import FixedCost, SlippageCost
from hybridtrader.ml.labels import is_intraday, mean_reversion_labels, triple_barrier_labels

OPEN = datetime(2024, 1, 2, 14, 30, tzinfo=UTC)  # 09:30 New York


def bars_from(close, start: datetime = OPEN, step: timedelta = timedelta(minutes=1), symbol: str = "A"):
    close = np.asarray(close, dtype=float)
    ts = [start + i * step for i in range(len(close))]
    return pl.DataFrame(
        {
            "symbol": symbol,
            "ts": ts,
            "open": close,
            "high": close,
            "low": close,
            "close": close,
            "volume": 100.0,
        }
    )


def test_mean_reversion_hand_path() -> None:
    # window 3, entry |z| >= 1: bar 2 (z = 1 for 10, 10, 12? mean 10.67, std 1.155 -> z 1.155) goes short;
    # the mean at entry is 10.667; bar 4 closes at 10.5 <= mean -> exit there.
    close = [10, 10, 12, 11.5, 10.5, 10.5, 10.5]
    cfg = MeanReversionLabelConfig(window=3, entry_z=1.0, horizon_bars=3)
    lab = mean_reversion_labels(bars_from(close), cfg, FixedCost(0.0))
    first = lab.row(0, named=True)
    assert first["t0"] == OPEN + timedelta(minutes=2)
    assert first["side"] == -1
    assert first["t1"] == OPEN + timedelta(minutes=4)
    assert first["barrier"] == 1
    assert first["ret"] == pytest.approx(-(10.5 / 12 - 1))
    assert first["label"] == 1


def test_mean_reversion_costs_flip_the_label_and_exit_at_horizon() -> None:
    close = [10, 10, 12, 11.99, 11.98, 11.97, 11.96]  # never gets back: exits after horizon_bars = 2
    cfg = MeanReversionLabelConfig(window=3, entry_z=1.0, horizon_bars=2)
    free = mean_reversion_labels(bars_from(close), cfg, FixedCost(0.0)).row(0, named=True)
    assert free["t1"] == OPEN + timedelta(minutes=4) and free["barrier"] == 0
    gross = 1 - 11.98 / 12  # short from 12 to 11.98: +16.7 bps
    assert free["ret"] == pytest.approx(gross) and free["label"] == 1
    costly = mean_reversion_labels(bars_from(close), cfg, FixedCost(10.0)).row(
        0, named=True
    )  # 20 bps round trip
    assert costly["cost"] == pytest.approx(0.002)
    assert costly["ret_net"] == pytest.approx(gross - 0.002) and costly["label"] == 0


def test_mean_reversion_never_crosses_the_session() -> None:
    day1 = bars_from([10, 10, 12, 12, 12])
    day2 = bars_from([12, 12, 12, 12], start=OPEN + timedelta(days=1))
    cfg = MeanReversionLabelConfig(window=3, entry_z=1.0, horizon_bars=30)
    lab = mean_reversion_labels(pl.concat([day1, day2]), cfg, FixedCost(0.0))
    day = lab.select(pl.col("t0", "t1").dt.convert_time_zone("America/New_York").dt.date())
    assert (day["t0"] == day["t1"]).all()
    assert lab["t1"].max() <= day2["ts"].max()


def ref_triple_barrier(close: np.ndarray, side: int, trgt: float, pt: float, sl: float, h: int, i: int):
    for k in range(1, h + 1):
        if i + k >= len(close):
            return i + k - 1, 0
        r = side * np.log(close[i + k] / close[i])
        if r >= pt * trgt:
            return i + k, 1
        if r <= -sl * trgt:
            return i + k, -1
    return i + h, 0


def test_triple_barrier_matches_loop_reference() -> None:
    rng = np.random.default_rng(3)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.001, 3000) + 0.0002 * np.sin(np.arange(3000) / 150)))
    bars = bars_from(close)
    cfg = TripleBarrierLabelConfig(
        vol_span=20, profit_take=1.0, stop_loss=0.7, horizon_bars=25, trend_window=12, event_spacing_bars=1
    )
    lab = triple_barrier_labels(bars, cfg, FixedCost(0.5))
    assert lab.height > 200
    spaced = triple_barrier_labels(bars, cfg.model_copy(update={"event_spacing_bars": 7}), FixedCost(0.5))
    minutes = spaced.select((pl.col("t0") - bars["ts"][0]).dt.total_minutes())["t0"]
    assert (minutes % 7 == 0).all()
    assert spaced.height == lab.filter(pl.col("t0").is_in(spaced["t0"].implode())).height
    assert set(lab["barrier"].unique().to_list()) == {-1, 0, 1}
    # Independent inputs: trend side and EWM volatility from the feature definitions via Polars.
    from hybridtrader.ml.features import compute_features

    strength = compute_features(bars, ["trend_strength_12"])["trend_strength_12"].to_numpy()
    lr = np.diff(np.log(close), prepend=np.nan)
    vol = pl.Series(lr).fill_nan(None).ewm_std(span=20, adjust=False, min_samples=20).to_numpy()
    idx = {t: i for i, t in enumerate(bars["ts"].to_list())}
    for row in lab.sample(200, seed=0).iter_rows(named=True):
        i = idx[row["t0"]]
        side = int(np.sign(strength[i]))
        assert row["side"] == side
        j, kind = ref_triple_barrier(close, side, vol[i] * np.sqrt(25), 1.0, 0.7, 25, i)
        assert row["t1"] == bars["ts"][j]
        assert row["barrier"] == kind
        assert row["ret"] == pytest.approx(side * (close[j] / close[i] - 1))
        assert row["label"] == int(row["ret"] - 1e-4 > 0)


def test_triple_barrier_crosses_sessions_and_daily_bars() -> None:
    close = 100 * np.exp(np.cumsum(np.random.default_rng(1).normal(0.002, 0.01, 400)))
    daily = bars_from(close, step=timedelta(days=1))
    assert not is_intraday(daily) and is_intraday(bars_from(close))
    cfg = TripleBarrierLabelConfig(vol_span=20, horizon_bars=10, trend_window=12, event_spacing_bars=1)
    lab = triple_barrier_labels(daily, cfg, FixedCost(1.0))
    assert lab.height > 100
    assert (lab["t1"] > lab["t0"]).all()
    assert ((lab["t1"] - lab["t0"]).dt.total_days() <= 10).all()
    mr = mean_reversion_labels(daily, MeanReversionLabelConfig(), FixedCost(1.0))
    assert mr.height > 0  # daily bars: no session confinement, the horizon counts bars


class TableSlippage:
    """A slippage model with the SlippageModel interface: fixed bps per side, recording its calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, float, float]] = []

    def forecast_slippage(self, symbol: str, side: str, qty: float, price: float, ts: object = None) -> float:
        self.calls.append((symbol, side, qty, price))
        return 3.0 if side == "buy" else 1.0


def test_slippage_model_costs() -> None:
    model = TableSlippage()
    cost = SlippageCost(model, notional=10_000.0)
    out = cost.round_trip(np.array(["A", "B"]), np.array([1, -1]), np.array([50.0, 200.0]), np.array([0, 0]))
    np.testing.assert_allclose(out, [4e-4, 4e-4])  # buy 3 + sell 1 bps either way round
    assert model.calls == [
        ("A", "buy", 200, 50.0),
        ("A", "sell", 200, 50.0),
        ("B", "sell", 50, 200.0),
        ("B", "buy", 50, 200.0),
    ]
    with pytest.raises(ValueError, match="bps_per_side"):
        FixedCost(-1.0)


def test_slippage_cost_with_the_slippage_model_batch_path() -> None:
    from hybridtrader import SlippageModel

    model = SlippageModel(None)
    cost = SlippageCost(model, notional=25_000.0)
    naive_utc = OPEN.replace(tzinfo=None)  # numpy datetimes carry no time zone: UTC by convention
    ts = np.array([naive_utc, naive_utc + timedelta(hours=3)], dtype="datetime64[ns]")
    out = cost.round_trip(np.array(["A", "B"]), np.array([1, -1]), np.array([50.0, 125.0]), ts)
    t_ns = ts.astype(np.int64)
    expect = [
        model.forecast_slippage("A", "buy", 500, 50.0, int(t_ns[0]))
        + model.forecast_slippage("A", "sell", 500, 50.0, int(t_ns[0])),
        model.forecast_slippage("B", "sell", 200, 125.0, int(t_ns[1]))
        + model.forecast_slippage("B", "buy", 200, 125.0, int(t_ns[1])),
    ]
    np.testing.assert_allclose(out, np.array(expect) / 1e4, rtol=1e-12)
    assert (out > 0).all()


def test_labels_reuse_a_given_rule_feature_and_ignore_a_misaligned_one() -> None:
    """Passing the rule feature precomputed gives the same labels; a frame for other rows is not used."""
    from hybridtrader.market.synth import generate_market
    from hybridtrader.ml.features import compute_features
    from hybridtrader.ml.labels import rule_feature

    bars = generate_market(symbols=3, sessions=3, seed=4, ticks=False, mean_reversion=0.5).bars_1m
    mr = MeanReversionLabelConfig(window=5, entry_z=1.0, horizon_bars=10)
    tb = TripleBarrierLabelConfig(vol_span=20, horizon_bars=60, trend_window=30, event_spacing_bars=5)
    for labels, cfg in ((mean_reversion_labels, mr), (triple_barrier_labels, tb)):
        feats = compute_features(bars, ["rsi", rule_feature(cfg)])
        plain = labels(bars, cfg, FixedCost(1.0))
        assert plain.height > 0
        assert labels(bars, cfg, FixedCost(1.0), features=feats).equals(plain)
        # wrong rows (another symbol's values) or a frame without the column: computed afresh
        shifted = feats.with_columns(pl.col(rule_feature(cfg)).shift(7))
        assert labels(bars, cfg, FixedCost(1.0), features=shifted.head(feats.height - 1)).equals(plain)
        assert labels(bars, cfg, FixedCost(1.0), features=feats.select("symbol", "ts", "rsi")).equals(plain)


def test_mean_reversion_labels_reuse_given_sessions_only_for_their_rows() -> None:
    """The caller's intraday flag and per-row sessions give the labels computed without them; sessions of
    rows in another order (bars that normalising re-sorts) are not used."""
    from hybridtrader.market.synth import generate_market
    from hybridtrader.ml.features import normalise_bars
    from hybridtrader.ml.labels import session_of

    bars = normalise_bars(
        generate_market(symbols=3, sessions=3, seed=4, ticks=False, mean_reversion=0.5).bars_1m
    )
    cfg = MeanReversionLabelConfig(window=5, entry_z=1.0, horizon_bars=30)
    plain = mean_reversion_labels(bars, cfg, FixedCost(1.0))
    assert plain.height > 0 and is_intraday(bars)
    given = mean_reversion_labels(bars, cfg, FixedCost(1.0), intraday=True, sessions=session_of(bars["ts"]))
    assert given.equals(plain)
    shuffled = bars.sample(fraction=1.0, shuffle=True, seed=3)
    misaligned = session_of(shuffled["ts"])
    assert mean_reversion_labels(shuffled, cfg, FixedCost(1.0), sessions=misaligned).equals(plain)
