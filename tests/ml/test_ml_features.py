"""Features against hand-computed cases and independent loop implementations of the textbook formulas."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest
from hybridtrader.ml.feature_store import FeatureStore
from hybridtrader.ml.features import compute_features, feature_hash, parse_feature
from hypothesis import given, settings
from hypothesis import strategies as st

T0 = datetime(2024, 1, 2, 14, 30, tzinfo=UTC)


def bars_from(
    close: list[float] | np.ndarray, high=None, low=None, symbol: str = "A", volume=None
) -> pl.DataFrame:
    close = np.asarray(close, dtype=float)
    n = len(close)
    return pl.DataFrame(
        {
            "symbol": [symbol] * n,
            "ts": [T0 + timedelta(minutes=i) for i in range(n)],
            "open": close,
            "high": close if high is None else np.asarray(high, dtype=float),
            "low": close if low is None else np.asarray(low, dtype=float),
            "close": close,
            "volume": np.full(n, 100.0) if volume is None else np.asarray(volume, dtype=float),
        }
    )


def random_bars(n: int, seed: int, symbol: str = "A") -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.002, n)))
    high = close * (1 + np.abs(rng.normal(0, 0.001, n)))
    low = close * (1 - np.abs(rng.normal(0, 0.001, n)))
    return bars_from(close, high, low, symbol, rng.lognormal(6, 0.5, n))


# ------------------------------------------------------------- independent references (plain loops)
def ref_wilder(x: np.ndarray, n: int, first: int) -> np.ndarray:
    out = np.full(len(x), np.nan)
    if len(x) < first + n:
        return out
    avg = sum(x[first : first + n]) / n
    out[first + n - 1] = avg
    for i in range(first + n, len(x)):
        avg = (avg * (n - 1) + x[i]) / n
        out[i] = avg
    return out


def ref_true_range(h: np.ndarray, lo: np.ndarray, c: np.ndarray) -> np.ndarray:
    tr = np.full(len(c), np.nan)
    for i in range(1, len(c)):
        tr[i] = max(h[i] - lo[i], abs(h[i] - c[i - 1]), abs(lo[i] - c[i - 1]))
    return tr


def ref_rsi(c: np.ndarray, n: int) -> np.ndarray:
    d = np.diff(c, prepend=np.nan)
    gain = ref_wilder(np.where(d > 0, d, 0.0), n, 1)
    loss = ref_wilder(np.where(d < 0, -d, 0.0), n, 1)
    out = np.full(len(c), np.nan)
    for i in range(len(c)):
        if math.isnan(gain[i]):
            continue
        out[i] = 100.0 if loss[i] == 0 else 100 - 100 / (1 + gain[i] / loss[i])
    return out


def ref_adx(h: np.ndarray, lo: np.ndarray, c: np.ndarray, n: int) -> np.ndarray:
    m = len(c)
    pdm, mdm = np.zeros(m), np.zeros(m)
    for i in range(1, m):
        up, down = h[i] - h[i - 1], lo[i - 1] - lo[i]
        pdm[i] = up if up > down and up > 0 else 0.0
        mdm[i] = down if down > up and down > 0 else 0.0
    tr = ref_wilder(ref_true_range(h, lo, c), n, 1)
    pdi = 100 * ref_wilder(pdm, n, 1) / tr
    mdi = 100 * ref_wilder(mdm, n, 1) / tr
    dx = 100 * np.abs(pdi - mdi) / (pdi + mdi)
    return ref_wilder(dx, n, n)


def ref_ema(x: np.ndarray, n: int) -> np.ndarray:
    out = np.full(len(x), np.nan)
    a = 2 / (n + 1)
    e = x[:n].mean()
    out[n - 1] = e
    for i in range(n, len(x)):
        e = a * x[i] + (1 - a) * e
        out[i] = e
    return out


def col(frame: pl.DataFrame, name: str) -> np.ndarray:
    return frame[name].cast(pl.Float64).fill_null(np.nan).to_numpy()


def assert_same(ours: np.ndarray, ref: np.ndarray, rtol: float = 1e-9) -> None:
    assert np.array_equal(np.isnan(ours), np.isnan(ref)), (np.isnan(ours).sum(), np.isnan(ref).sum())
    np.testing.assert_allclose(ours[~np.isnan(ours)], ref[~np.isnan(ref)], rtol=rtol, atol=1e-10)


# --------------------------------------------------------------------------------- hand-computed
def test_rsi_hand_computed() -> None:
    # n = 3; changes +1, +1, -1, +2. Seed at bar 3: gain (1+1+0)/3 = 2/3, loss 1/3 -> RS 2 -> RSI 66.667.
    # Bar 4: gain (2/3*2 + 2)/3 = 10/9, loss (1/3*2 + 0)/3 = 2/9 -> RS 5 -> RSI 83.333.
    f = compute_features(bars_from([10, 11, 12, 11, 13]), ["rsi_3"])
    v = col(f, "rsi_3")
    assert np.isnan(v[:3]).all()
    assert v[3] == pytest.approx(100 - 100 / 3)
    assert v[4] == pytest.approx(100 - 100 / 6)


def test_atr_hand_computed() -> None:
    # TR from bar 1: bar1 max(12-10, |12-10|, |10-10|) = 2; bar2 max(1, |13-11|, |12-11|) = 2;
    # bar3 max(3, 1, 2) = 3.
    high, low, close = [11, 12, 13, 14], [9, 10, 12, 11], [10, 11, 12, 13]
    f = compute_features(bars_from(close, high, low), ["atr_2"])
    v = col(f, "atr_2")
    assert np.isnan(v[:2]).all()
    assert v[2] == pytest.approx((2 + 2) / 2)  # seed: mean of TR bars 1..2
    assert v[3] == pytest.approx((2 * 1 + 3) / 2)  # Wilder: (prev (n-1) + TR) / n


def test_zscore_and_returns_hand_computed() -> None:
    f = compute_features(bars_from([1, 2, 3, 6]), ["zscore_3", "ret_2", "ret"])
    z = col(f, "zscore_3")
    assert np.isnan(z[:2]).all()
    assert z[2] == pytest.approx((3 - 2) / 1.0)  # mean 2, sample std 1
    assert z[3] == pytest.approx((6 - 11 / 3) / np.std([2, 3, 6], ddof=1))
    assert col(f, "ret_2")[3] == pytest.approx(math.log(6 / 2))
    assert col(f, "ret")[1] == pytest.approx(math.log(2))


def test_rsi_flat_and_one_sided() -> None:
    assert col(compute_features(bars_from([5.0] * 6), ["rsi_3"]), "rsi_3")[3:].tolist() == [50.0] * 3
    assert (
        col(compute_features(bars_from([1, 2, 3, 4, 5, 6]), ["rsi_3"]), "rsi_3")[3:].tolist() == [100.0] * 3
    )


# --------------------------------------------------------------------- independent implementations
@pytest.mark.parametrize("seed", [0, 1])
def test_wilder_indicators_match_loop_reference(seed: int) -> None:
    bars = random_bars(400, seed)
    h, lo, c = (bars[k].to_numpy() for k in ("high", "low", "close"))
    f = compute_features(bars, ["rsi", "atr", "adx", "rsi_7", "adx_5", "natr"])
    assert_same(col(f, "rsi"), ref_rsi(c, 14))
    assert_same(col(f, "rsi_7"), ref_rsi(c, 7))
    atr = ref_wilder(ref_true_range(h, lo, c), 14, 1)
    assert_same(col(f, "atr"), atr)
    assert_same(col(f, "natr"), 1e4 * atr / c)
    assert_same(col(f, "adx"), ref_adx(h, lo, c, 14))
    assert_same(col(f, "adx_5"), ref_adx(h, lo, c, 5))
    assert np.isnan(col(f, "adx")[:27]).all() and not np.isnan(col(f, "adx")[27])  # TA-Lib lookback 2n-1


def test_trend_and_volatility_features_match_numpy() -> None:
    bars = random_bars(300, 3)
    c, v = bars["close"].to_numpy(), bars["volume"].to_numpy()
    f = compute_features(bars, ["ema_slope", "trend_strength", "rv_10", "volume_zscore", "ret_5"])
    e20 = ref_ema(c, 20)
    assert_same(col(f, "ema_slope"), 1e4 * (e20 / np.concatenate([[np.nan], e20[:-1]]) - 1))
    atr = ref_wilder(ref_true_range(bars["high"].to_numpy(), bars["low"].to_numpy(), c), 14, 1)
    assert_same(col(f, "trend_strength"), (ref_ema(c, 10) - ref_ema(c, 30)) / atr)
    lr = np.diff(np.log(c), prepend=np.nan)
    rv = np.array([np.std(lr[i - 9 : i + 1], ddof=1) if i >= 10 else np.nan for i in range(len(c))])
    assert_same(col(f, "rv_10"), rv)
    vz = np.array(
        [
            (v[i] - v[i - 19 : i + 1].mean()) / v[i - 19 : i + 1].std(ddof=1) if i >= 19 else np.nan
            for i in range(len(v))
        ]
    )
    assert_same(col(f, "volume_zscore"), vz, rtol=1e-7)
    assert_same(col(f, "ret_5"), np.concatenate([[np.nan] * 5, np.log(c[5:] / c[:-5])]))


def test_spread_from_quotes_and_corwin_schultz() -> None:
    bars = random_bars(50, 4)
    c = bars["close"].to_numpy()
    quoted = bars.with_columns(bid=pl.col("close") * 0.9995, ask=pl.col("close") * 1.0005)
    s = col(compute_features(quoted, ["spread_5"]), "spread_5")
    assert np.isnan(s[:4]).all()
    np.testing.assert_allclose(s[4:], 1e4 * 0.001 / 1.0, rtol=1e-9)  # (ask - bid) / mid = 0.001 exactly
    # Corwin-Schultz on one pair, written out from the paper's equations.
    h, lo = bars["high"].to_numpy(), bars["low"].to_numpy()
    i = 10
    beta = math.log(h[i] / lo[i]) ** 2 + math.log(h[i - 1] / lo[i - 1]) ** 2
    gamma = math.log(max(h[i], h[i - 1]) / min(lo[i], lo[i - 1])) ** 2
    k = 3 - 2 * math.sqrt(2)
    alpha = (math.sqrt(2 * beta) - math.sqrt(beta)) / k - math.sqrt(gamma / k)
    est = max(0.0, 2 * (math.exp(alpha) - 1) / (1 + math.exp(alpha)))
    assert col(compute_features(bars, ["spread_1"]), "spread_1")[i] == pytest.approx(1e4 * est, abs=1e-9)
    assert len(c) == 50


# ------------------------------------------------------------------------------- invariants
NAMES = [
    "zscore",
    "rsi",
    "atr",
    "adx",
    "ema_slope",
    "trend_strength",
    "ret_5",
    "rv",
    "spread",
    "volume_zscore",
]


@settings(max_examples=15, deadline=None)
@given(cut=st.integers(min_value=5, max_value=199), seed=st.integers(0, 1000))
def test_no_look_ahead(cut: int, seed: int) -> None:
    """A feature at bar t uses bars <= t only: truncating the future leaves every past value unchanged."""
    bars = random_bars(200, seed)
    full = compute_features(bars, NAMES)
    head = compute_features(bars.head(cut), NAMES)
    for name in NAMES:
        assert_same(col(head, name), col(full, name)[:cut], rtol=1e-9)


def test_symbols_are_independent_and_order_free() -> None:
    a, b = random_bars(120, 5, "A"), random_bars(90, 6, "B")
    alone = compute_features(a, NAMES)
    mixed = compute_features(pl.concat([b, a]).sample(fraction=1.0, shuffle=True, seed=1), NAMES)
    assert mixed["symbol"].to_list() == ["A"] * 120 + ["B"] * 90
    for name in NAMES:
        assert_same(col(mixed.filter(pl.col("symbol") == "A"), name), col(alone, name))


def test_feature_names_and_hash() -> None:
    assert parse_feature("rsi").window == 14 and parse_feature("rsi_7").window == 7
    assert parse_feature("volume_zscore_50").kind == "volume_zscore"
    with pytest.raises(ValueError, match="unknown feature 'foo'"):
        parse_feature("foo")
    with pytest.raises(ValueError, match="window must be >= 2"):
        parse_feature("rsi_1")
    assert feature_hash(["rsi", "atr"]) == feature_hash(["atr", "rsi"])
    assert feature_hash(["rsi"]) != feature_hash(["rsi_7"])
    with pytest.raises(ValueError, match="missing columns"):
        compute_features(pl.DataFrame({"symbol": ["A"]}), ["rsi"])
    bars = random_bars(30, 1)
    for dup in (pl.concat([bars, bars.tail(1)]), pl.concat([bars.tail(1), bars])):  # in order, and not
        with pytest.raises(ValueError, match="duplicate"):
            compute_features(dup, ["rsi"])


def test_feature_store_reuses_and_rejects_corrupt(tmp_path) -> None:
    bars = random_bars(100, 7)
    store = FeatureStore(tmp_path)
    first = store.get(bars, ["rsi", "atr"])
    again = store.get(bars.sample(fraction=1.0, shuffle=True, seed=2), ["rsi", "atr"])  # same content
    assert (store.misses, store.hits) == (1, 1)
    assert first.equals(again)
    path = store.path_for(["rsi", "atr"], bars)
    assert path.parent.name == feature_hash(["rsi", "atr"]) and path.exists()
    store.get(bars, ["rsi_7"])  # other definitions: another key
    assert store.misses == 2
    changed = bars.with_columns(pl.col("close") * 1.01)
    store.get(changed, ["rsi", "atr"])
    assert store.misses == 3
    path.write_bytes(b"not parquet")
    with pytest.raises(ValueError, match="corrupt"):
        store.get(bars, ["rsi", "atr"])
