"""SlippageModel: forecasts against the formula, learning against planted parameters, persistence."""

from __future__ import annotations

import json
import math
import os
import pickle
import time
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hybridtrader import SlippageModel
from hybridtrader._core import SlippageModelCore
from hybridtrader.config import Config, ConfigError, SlippageConfig, config_from_dict, load_config
from hybridtrader.market.calendar import NEW_YORK, UTC, session_minutes_ns
from hypothesis import given, settings
from hypothesis import strategies as st

NS = 1_000_000_000


def ny_ns(y: int, m: int, d: int, hh: int, mm: int) -> int:
    """Epoch ns of a New York wall-clock time (zoneinfo is the independent DST reference)."""
    return int(datetime(y, m, d, hh, mm, tzinfo=NEW_YORK).timestamp()) * NS


def ref_bucket(ts_ns: int, bucket_minutes: int = 30) -> int:
    local = datetime.fromtimestamp(ts_ns // NS, UTC).astimezone(NEW_YORK)
    minutes = local.hour * 60 + local.minute - 570
    return min(max(minutes, 0) // bucket_minutes, math.ceil(390 / bucket_minutes) - 1)


def impact(coef: float, vol: float, qty: float, adv: float, e: float = 0.6) -> float:
    return coef * vol * (qty / adv) ** e


# ------------------------------------------------------------------------------------ forecasts
def test_seed_unit_test() -> None:
    for config in (load_config(), Config(), None, {}):
        slippage = SlippageModel(config).forecast_slippage("AAPL", "buy", 100, 150.0)
        assert 0 <= slippage <= 20
    # The per-call methods are the Rust ones, not Python wrappers around them.
    assert SlippageModel.forecast_slippage is SlippageModelCore.forecast_slippage
    assert SlippageModel.forecast_spread is SlippageModelCore.forecast_spread


def test_hand_computed_forecast() -> None:
    m = SlippageModel()
    m.set_daily_stats("AAA", 2_000_000.0, 150.0)
    ts = ny_ns(2024, 5, 1, 11, 0)
    # No spread learned: the 5 bps prior, half of it; prior coefficient 0.5; exponent 0.6.
    expected = 2.5 + 0.5 * 150.0 * (20_000 / 2_000_000) ** 0.6
    assert m.forecast_slippage("AAA", "buy", 20_000, 10.0, ts) == pytest.approx(expected, rel=1e-12)
    assert m.forecast_slippage("AAA", "sell", 20_000, 10.0, ts) == pytest.approx(expected, rel=1e-12)
    # 0.5 is the square-root law.
    sq = SlippageModel({"execution": {"slippage": {"impact_exponent": 0.5, "prior_impact_coef": 1.0}}})
    sq.set_daily_stats("AAA", 1_000_000.0, 100.0)
    assert sq.forecast_slippage("AAA", "buy", 10_000, 10.0, ts) == pytest.approx(2.5 + 100.0 * 0.1)
    assert sq.forecast_many("AAA", "buy", [10_000.0], 10.0, ts)[0] == pytest.approx(12.5)


def test_forecast_is_capped_at_max() -> None:
    m = SlippageModel({"execution": {"slippage": {"max_slippage_bps": 12.5}}})
    m.set_daily_stats("X", 10_000.0, 300.0)
    assert m.forecast_slippage("X", "buy", 1e7, 10.0, 0) == 12.5
    assert m.forecast_slippage("X", "buy", 1, 10.0, 0) < 12.5
    assert SlippageModel().forecast_slippage("X", "buy", 1e12, 10.0, 0) == 20.0


def test_spread_and_learned_profile_by_time_of_day() -> None:
    m = SlippageModel()
    ts_open = ny_ns(2024, 7, 1, 9, 35)  # EDT
    ts_noon = ny_ns(2024, 1, 2, 12, 5)  # EST
    m.learn_from_quote_bars(
        pl.DataFrame(
            {
                "symbol": ["A", "A", "A"],
                "ts": [ts_open, ts_open + 60 * NS, ts_noon],
                "spread_bps_mean": [12.0, 16.0, 4.0],
            }
        )
    )
    # Fewer bars than 1 / spread_learning_rate in a bucket: their plain mean.
    assert m.forecast_spread("A", ts_open) == pytest.approx(14.0)
    assert m.forecast_spread("A", ts_noon) == pytest.approx(4.0)
    assert m.forecast_spread("A", ny_ns(2024, 7, 1, 15, 0)) == 5.0  # unlearned bucket: prior
    # Outside the session: the nearest bucket.
    assert m.forecast_spread("A", ny_ns(2024, 7, 1, 7, 0)) == pytest.approx(14.0)
    assert m.forecast_slippage("A", "buy", 1, 1.0, ts_open) == pytest.approx(7.0 + impact(0.5, 200, 1, 1e6))


def test_ts_forms_agree() -> None:
    m = SlippageModel()
    m.learn_from_quote_bars(
        pl.DataFrame(
            {
                "symbol": ["A"] * 13,
                "ts": [ny_ns(2024, 3, 12, 9, 30) + b * 1800 * NS for b in range(13)],
                "spread_bps_mean": [float(b + 1) for b in range(13)],
            }
        )
    )
    ts = ny_ns(2024, 3, 12, 13, 10)
    dt = datetime.fromtimestamp(ts / NS, UTC)
    assert (
        m.forecast_spread("A", ts)
        == m.forecast_spread("A", dt)
        == m.forecast_spread("A", np.int64(ts))
        == 8.0
    )
    # ts=None is now.
    before = m.forecast_spread("A", time.time_ns())
    now = m.forecast_spread("A")
    after = m.forecast_spread("A", time.time_ns())
    assert now in (before, after)
    with pytest.raises(ValueError, match="timezone-aware"):
        m.forecast_slippage("A", "buy", 1, 1.0, datetime(2024, 1, 2, 15))


@settings(max_examples=300, deadline=None)
@given(
    st.integers(min_value=ny_ns(1990, 1, 1, 0, 0), max_value=ny_ns(2090, 12, 31, 0, 0)),
    st.sampled_from([5, 15, 30, 65]),
)
def test_time_buckets_follow_new_york_dst(ts: int, bucket_minutes: int) -> None:
    m = SlippageModel(SlippageConfig(bucket_minutes=bucket_minutes))
    assert m.time_buckets(np.array([ts], dtype=np.int64))[0] == ref_bucket(ts, bucket_minutes)


def test_dst_transition_days_bucket_by_local_time() -> None:
    m = SlippageModel()
    days = [date(2024, 3, 8), date(2024, 3, 11), date(2024, 11, 1), date(2024, 11, 4), date(2006, 4, 3)]
    ts = np.array([ny_ns(d.year, d.month, d.day, 10, 5) for d in days], dtype=np.int64)
    assert m.time_buckets(ts).tolist() == [1] * len(days)


def test_bad_inputs_are_named_errors() -> None:
    m = SlippageModel()
    with pytest.raises(ValueError, match="side"):
        m.forecast_slippage("A", "hold", 1, 1.0)
    with pytest.raises(ValueError, match="qty"):
        m.forecast_slippage("A", "buy", 0, 1.0)
    with pytest.raises(ValueError, match="price"):
        m.forecast_slippage("A", "buy", 1, float("nan"))
    with pytest.raises(ValueError, match="side"):
        m.forecast_many(["A", "B"], ["buy", "short"], [1.0, 1.0], 1.0, 0)
    with pytest.raises(ValueError, match="qty"):
        m.forecast_many(["A", "B"], "buy", [1.0, -1.0], 1.0, 0)
    with pytest.raises(ValueError, match="rows"):
        m.forecast_many(["A", "B", "C"], "buy", [1.0, 1.0], 1.0, 0)
    with pytest.raises(ValueError, match="null"):
        m.forecast_many(["A", None], "buy", [1.0, 1.0], 1.0, 0)
    with pytest.raises(ValueError, match="arrival_price"):
        m.update_symbol_stats("A", "buy", 10, -1.0, 1.0, 0)
    with pytest.raises(ValueError, match="adv_shares of A"):
        m.set_daily_stats("A", 0.0, None)
    with pytest.raises(ConfigError, match=r"execution\.slippage\.impact_exponent"):
        config_from_dict({"execution": {"slippage": {"impact_exponent": 1.5}}})
    with pytest.raises(ConfigError, match=r"execution\.slippage\.max_slippage_bps"):
        config_from_dict({"execution": {"slippage": {"max_slippage_bps": 0}}})


def test_pooled_prior_for_unknown_symbols() -> None:
    m = SlippageModel()
    ts = ny_ns(2024, 5, 1, 10, 0)
    assert m.symbol_params("NEW")["known"] is False
    for sym, adv, vol, spread in (("A", 1e6, 100.0, 4.0), ("B", 4e6, 150.0, 8.0), ("C", 9e6, 400.0, 12.0)):
        m.set_daily_stats(sym, adv, vol)
        m.learn_from_quote_bars(pl.DataFrame({"symbol": [sym], "ts": [ts], "spread_bps_mean": [spread]}))
    # Unknown: median ADV and volatility, pooled spread profile (mean of the three bars), pooled coefficient.
    p = m.symbol_params("NEW")
    assert (p["adv_shares"], p["daily_vol_bps"]) == (4e6, 150.0)
    assert m.forecast_spread("NEW", ts) == pytest.approx(8.0)
    assert m.forecast_slippage("NEW", "buy", 40_000, 10.0, ts) == pytest.approx(
        4.0 + impact(0.5, 150, 4e4, 4e6)
    )
    # Fills on known symbols move the pooled coefficient that unknown (and fill-less) symbols use.
    for _ in range(600):  # enough for the prior's pseudo-fills to be forgotten (0.99^600 ~ 0.2%)
        m.update_symbol_stats(
            "A", "buy", 50_000, 100.0, 100.0 * (1 + (2.0 + impact(2.0, 100, 5e4, 1e6)) / 1e4), ts
        )
    assert m.symbol_params("A")["impact_coef"] == pytest.approx(2.0, rel=1e-3)
    assert m.symbol_params("NEW")["impact_coef"] == pytest.approx(2.0, rel=1e-3)
    assert m.symbol_params("B")["impact_coef"] == pytest.approx(2.0, rel=1e-3)
    assert "NEW" not in m.symbols  # forecasting does not create state


# ------------------------------------------------------------------------------------ learning
def simulated_fills(
    rng: np.random.Generator,
    truth: dict[str, tuple[float, float, float]],
    n: int,
    ts: int,
    outlier_share: float,
) -> pl.DataFrame:
    """Fills with cost = 2.5 bps (half the 5 bps prior spread) + coef * vol * (qty/ADV)^0.6 + N(0, 2 bps),
    plus one-sided outliers of 50-200 bps (e.g. fills caught in a news spike)."""
    frames = []
    for sym, (coef, adv, vol) in truth.items():
        qty = np.round(adv * 10 ** rng.uniform(-3.3, -1.3, n))
        cost = 2.5 + coef * vol * (qty / adv) ** 0.6 + rng.normal(0, 2.0, n)
        outlier = rng.random(n) < outlier_share
        cost[outlier] += rng.uniform(50, 200, outlier.sum())
        side = np.where(rng.random(n) < 0.5, "buy", "sell")
        sign = np.where(side == "buy", 1.0, -1.0)
        arrival = rng.uniform(20, 200, n)
        frames.append(
            pl.DataFrame(
                {
                    "symbol": sym,
                    "side": side,
                    "qty": qty,
                    "arrival_price": arrival,
                    "fill_price": arrival * (1 + sign * cost / 1e4),
                    "ts": ts + np.arange(n, dtype=np.int64) * NS,
                }
            )
        )
    return pl.concat(frames)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_learned_coefficient_converges_with_noise_and_outliers(seed: int) -> None:
    # learning_rate 0.002: a memory of ~500 fills. Weighted least squares then has a standard error of
    # sqrt(sigma^2 * lr / (2 E[x^2])) = sqrt(4 * 0.002 / (2 * 112)) ~= 0.006 for vol 150 bps (E[x^2] ~= 112),
    # and Huber weights bound the bias of 3% one-sided outliers to ~0.01. Tolerance 0.05: > 6 standard
    # errors beyond that bias. Plain least squares on the same data is off by far more (checked below).
    truth = {"LOW": (0.3, 5e6, 150.0), "MID": (0.8, 2e6, 150.0), "HIGH": (1.5, 8e5, 150.0)}
    m = SlippageModel(SlippageConfig(learning_rate=0.002))
    for sym, (_, adv, vol) in truth.items():
        m.set_daily_stats(sym, adv, vol)
    ts = ny_ns(2024, 5, 1, 12, 0)
    fills = simulated_fills(np.random.default_rng(seed), truth, 3000, ts, 0.03)
    assert m.update_symbol_stats(fills) == fills.height
    for sym, (coef, adv, vol) in truth.items():
        learned = m.symbol_params(sym)["impact_coef"]
        assert learned == pytest.approx(coef, abs=0.05), sym
        f = fills.filter(pl.col("symbol") == sym)
        sign = np.where(f["side"].to_numpy() == "buy", 1.0, -1.0)
        y = (
            sign * (f["fill_price"] - f["arrival_price"]).to_numpy() / f["arrival_price"].to_numpy() * 1e4
            - 2.5
        )
        x = vol * (f["qty"].to_numpy() / adv) ** 0.6
        ols = float(x @ y / (x @ x))
        assert abs(ols - coef) > 0.1, sym
    assert 0.3 < m.symbol_params("UNSEEN")["impact_coef"] < 1.5


def test_single_fill_update_reports_and_batch_matches_sequence() -> None:
    ts = ny_ns(2024, 5, 1, 12, 0)
    fills = simulated_fills(
        np.random.default_rng(7), {"A": (0.8, 1e6, 150.0), "B": (0.4, 3e6, 90.0)}, 50, ts, 0.1
    )
    fills = fills.sample(fraction=1.0, shuffle=True, seed=3)  # the batch learns in time order
    one, many = SlippageModel(), SlippageModel()
    for sym, adv, vol in (("A", 1e6, 150.0), ("B", 3e6, 90.0)):
        one.set_daily_stats(sym, adv, vol)
        many.set_daily_stats(sym, adv, vol)
    for row in fills.sort("ts").iter_rows(named=True):
        out = one.update_symbol_stats(
            row["symbol"], row["side"], row["qty"], row["arrival_price"], row["fill_price"], row["ts"]
        )
        sign = 1 if row["side"] == "buy" else -1
        assert out["cost_bps"] == pytest.approx(sign * (row["fill_price"] / row["arrival_price"] - 1) * 1e4)
        assert out["half_spread_bps"] == 2.5
    many.update_symbol_stats(fills.with_columns(pl.from_epoch("ts", "ns").dt.replace_time_zone("UTC")))
    assert many.to_json() == one.to_json()
    with pytest.raises(ValueError, match="lacks columns"):
        many.update_symbol_stats(fills.drop("fill_price"))


def test_planted_reverse_j_spread_profile_is_learned() -> None:
    # Per half-hour bucket: wide at the open, narrowing through the day, a slight widening into the close.
    planted = np.array([3.0 + 12.0 * math.exp(-b / 1.5) for b in range(13)])
    planted[12] += 0.8
    symbols = {"A": 1.0, "B": 2.0, "C": 0.5}
    ts = session_minutes_ns(date(2024, 3, 4), date(2024, 3, 15))  # spans the March DST switch
    rng = np.random.default_rng(0)
    buckets = np.array([ref_bucket(int(t)) for t in ts[:390]] * (len(ts) // 390))
    frames = [
        pl.DataFrame(
            {"symbol": s, "ts": ts, "spread_bps_mean": f * planted[buckets] * rng.uniform(0.8, 1.2, len(ts))}
        )
        for s, f in symbols.items()
    ]
    m = SlippageModel()
    assert m.learn_from_quote_bars(pl.concat(frames)) == {"learned": 3 * len(ts), "outside_session": 0}
    # Noise +-20% (sd 11.5% of the level); the EWMA (weight 0.05) shrinks it by sqrt(0.05 / 1.95) to 1.9%
    # of the level: a 10% tolerance is > 5 sd.
    day = date(2024, 3, 20)
    for s, f in symbols.items():
        learned = np.array(m.symbol_params(s)["spread_bps"])
        np.testing.assert_allclose(learned, f * planted, rtol=0.1)
        assert all(np.diff(learned[:5]) < 0)  # the reverse J: narrowing after the open
        assert m.forecast_spread(s, ny_ns(day.year, day.month, day.day, 9, 40)) == pytest.approx(learned[0])
    pooled = np.array(m.symbol_params("NEW")["spread_bps"])
    np.testing.assert_allclose(pooled, planted * np.mean(list(symbols.values())), rtol=0.1)


def test_quote_bars_outside_the_session_are_counted_not_learned() -> None:
    m = SlippageModel()
    times = [
        ny_ns(2024, 5, 1, 8, 0),  # pre-market
        ny_ns(2024, 5, 1, 16, 30),  # after hours
        ny_ns(2024, 11, 29, 13, 30),  # after the 13:00 early close
        ny_ns(2024, 12, 25, 11, 0),  # holiday
        ny_ns(2024, 5, 4, 11, 0),  # Saturday
        ny_ns(2024, 5, 1, 15, 59),  # in session: the last minute
    ]
    bars = pl.DataFrame({"symbol": "A", "ts": times, "spread_bps_mean": [50.0] * 5 + [7.0]})
    assert m.learn_from_quote_bars(bars) == {"learned": 1, "outside_session": 5}
    assert m.symbol_params("A")["spread_bps"] == [5.0] * 12 + [7.0]


def test_quote_bars_from_raw_bid_ask() -> None:
    m = SlippageModel()
    ts = ny_ns(2024, 5, 1, 10, 0)
    quotes = pl.DataFrame(
        {"symbol": ["A", "A"], "ts": [ts, ts + NS], "bid": [99.95, 99.9], "ask": [100.05, 100.1]}
    )
    m.learn_from_quote_bars(quotes.with_columns(pl.from_epoch("ts", "ns").dt.replace_time_zone("UTC")))
    assert m.forecast_spread("A", ts) == pytest.approx((10.0 + 20.0) / 2)
    with pytest.raises(ValueError, match="ask < bid"):
        m.learn_from_quote_bars(quotes.with_columns(ask=pl.lit(99.0)))
    with pytest.raises(ValueError, match="naive"):
        m.learn_from_quote_bars(quotes.with_columns(pl.from_epoch("ts", "ns")))
    with pytest.raises(ValueError, match="spread_bps_mean or bid and ask"):
        m.learn_from_quote_bars(quotes.drop("bid"))


def test_daily_bars_set_adv_and_volatility() -> None:
    rng = np.random.default_rng(5)
    n = 30
    closes = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, n)))
    volume = rng.integers(500_000, 1_500_000, n)
    days = pl.datetime_range(
        datetime(2024, 1, 1, 21, tzinfo=UTC),
        datetime(2024, 1, 1, 21, tzinfo=UTC) + timedelta(days=n - 1),
        "1d",
        eager=True,
        time_unit="ns",
    )
    bars = pl.DataFrame({"symbol": "A", "ts": days, "close": closes, "volume": volume})
    bars = pl.concat(
        [bars, pl.DataFrame({"symbol": "ONE", "ts": days[:1], "close": [5.0], "volume": [1000]})]
    )
    m = SlippageModel(SlippageConfig(daily_window=20))
    m.learn_from_daily_bars(bars.sample(fraction=1.0, shuffle=True, seed=1))
    p = m.symbol_params("A")
    assert p["adv_shares"] == pytest.approx(volume[-20:].mean())
    assert p["daily_vol_bps"] == pytest.approx(np.std(np.diff(np.log(closes[-21:])), ddof=1) * 1e4)
    one = m.symbol_params("ONE")
    assert one["adv_shares"] == 1000.0
    assert one["daily_vol_bps"] == pytest.approx(p["daily_vol_bps"])  # no returns: the pooled median


# ------------------------------------------------------------------------------------ batch
@settings(max_examples=40, deadline=None)
@given(st.integers(1, 300), st.integers(0, 2**32 - 1))
def test_batch_equals_per_call(n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    m = SlippageModel()
    m.set_daily_stats("A", 5e5, 250.0)
    m.set_daily_stats("B", 5e6, 80.0)
    m.learn_from_quote_bars(
        pl.DataFrame(
            {"symbol": ["A", "B"], "ts": [ny_ns(2024, 5, 1, 9, 31)] * 2, "spread_bps_mean": [14.0, 3.0]}
        )
    )
    symbols = rng.choice(["A", "B", "UNKNOWN"], n)
    qty = np.round(10 ** rng.uniform(0, 6, n))
    price = rng.uniform(1, 500, n)
    ts = rng.integers(ny_ns(2023, 1, 1, 0, 0), ny_ns(2025, 12, 31, 0, 0), n)
    sides = rng.choice(["buy", "sell"], n)
    batch = m.forecast_many(symbols, sides, qty, price, ts)
    single = [
        m.forecast_slippage(s, d, q, p, int(t))
        for s, d, q, p, t in zip(symbols, sides, qty, price, ts, strict=True)
    ]
    np.testing.assert_array_equal(batch, np.array(single))
    enum = pl.Series(symbols).cast(pl.Enum(["UNKNOWN", "B", "A", "UNUSED"]))
    np.testing.assert_array_equal(m.forecast_many(enum, sides, qty, price, ts), batch)
    datetimes = pl.Series(ts).cast(pl.Datetime("ns", "UTC"))
    np.testing.assert_array_equal(
        m.forecast_many(pl.Series(symbols), pl.Series(sides), qty, price, datetimes), batch
    )


# ------------------------------------------------------------------------------------ persistence
def learned_model(n_symbols: int = 5) -> SlippageModel:
    rng = np.random.default_rng(11)
    m = SlippageModel()
    ts = session_minutes_ns(date(2024, 5, 1), date(2024, 5, 1))
    for i in range(n_symbols):
        sym = f"S{i:03d}"
        m.set_daily_stats(sym, float(rng.uniform(1e5, 1e7)), float(rng.uniform(80, 400)))
        m.learn_from_quote_bars(
            pl.DataFrame({"symbol": sym, "ts": ts, "spread_bps_mean": rng.uniform(1, 30, 390)})
        )
    truth = {f"S{i:03d}": (0.7, 1e6, 150.0) for i in range(0, n_symbols, 2)}
    m.update_symbol_stats(simulated_fills(rng, truth, 20, int(ts[100]), 0.05))
    return m


def test_save_load_roundtrip_gives_equal_forecasts(tmp_path: Path) -> None:
    m = learned_model()
    path = tmp_path / "slippage.json"
    m.save(path)
    assert json.loads(path.read_text())["format_version"] == 1
    back = SlippageModel()
    back.load(path)
    rng = np.random.default_rng(2)
    n = 2000
    args = (
        rng.choice([*m.symbols, "NEW"], n),
        "buy",
        10 ** rng.uniform(0, 6, n),
        10.0,
        rng.integers(ny_ns(2024, 1, 1, 0, 0), ny_ns(2024, 12, 31, 0, 0), n),
    )
    np.testing.assert_array_equal(back.forecast_many(*args), m.forecast_many(*args))
    assert back.symbols == sorted(m.symbols)
    # state_path: loaded at construction, default target of save().
    cfg = SlippageConfig(state_path=tmp_path / "state.json")
    m.save(cfg.state_path)
    np.testing.assert_array_equal(SlippageModel(cfg).forecast_many(*args), m.forecast_many(*args))
    fresh = SlippageModel(SlippageConfig(state_path=tmp_path / "missing.json"))
    assert fresh.symbols == []
    with pytest.raises(ValueError, match="state_path"):
        SlippageModel().save()


def test_pickle_round_trip_keeps_config_and_state(tmp_path: Path) -> None:
    m = learned_model(3)
    m.config = m.config.model_copy(update={"state_path": tmp_path / "never-written.json"})
    back = pickle.loads(pickle.dumps(m))
    assert back.config == m.config and back.to_json() == m.to_json()
    assert not (tmp_path / "never-written.json").exists()
    with pytest.raises(ValueError, match="<pickled SlippageModel>"):
        pickle.loads(pickle.dumps(m).replace(b'"format_version":1', b'"format_version":5'))


def test_state_file_size_per_100_symbols(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    learned_model(100).save(path)
    assert path.stat().st_size < 1_000_000  # the seed's ~1 MB per 100 symbols is a ceiling


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("{not json", "is corrupt: not valid JSON"),
        (None, "is corrupt: not valid JSON"),  # truncated
        ('{"format_version": 1, "symbols": 3}', "is corrupt: bad structure"),
        ('{"symbols": {}}', "is corrupt: no integer format_version"),
        ("FUTURE", "format_version 7; this version reads 1 to 1"),
    ],
)
def test_bad_state_files_are_clear_errors(tmp_path: Path, content: str | None, match: str) -> None:
    good = learned_model(2).to_json()
    path = tmp_path / "state.json"
    if content is None:
        content = good[: len(good) // 2]
    elif content == "FUTURE":
        content = good.replace('"format_version":1', '"format_version":7')
    path.write_text(content)
    m = SlippageModel()
    with pytest.raises(ValueError, match=match) as err:
        m.load(path)
    assert str(path) in str(err.value)


def test_load_rejects_incompatible_and_missing_files(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    learned_model(2).save(path)
    with pytest.raises(ValueError, match="impact_exponent"):
        SlippageModel(SlippageConfig(impact_exponent=0.5)).load(path)
    with pytest.raises(FileNotFoundError, match=r"missing\.json"):
        SlippageModel().load(tmp_path / "missing.json")


def test_atomic_save_leaves_nothing_behind_on_failure(tmp_path: Path) -> None:
    m = learned_model(2)
    # The target is a non-empty directory: the rename fails after the temporary file was written.
    target = tmp_path / "taken"
    target.mkdir()
    (target / "keep").write_text("x")
    with pytest.raises(OSError, match="taken"):
        m.save(target)
    assert sorted(os.listdir(tmp_path)) == ["taken"]
    with pytest.raises(OSError):
        m.save(tmp_path / "no-such-dir" / "state.json")
    assert sorted(os.listdir(tmp_path)) == ["taken"]
    # A successful save replaces an existing file whole.
    path = tmp_path / "state.json"
    path.write_text("old")
    m.save(path)
    assert sorted(os.listdir(tmp_path)) == ["state.json", "taken"]
    assert json.loads(path.read_text())["format_version"] == 1


@settings(max_examples=100, deadline=None)
@given(
    qty=st.lists(st.floats(1e-3, 1e12), min_size=2, max_size=20),
    adv=st.floats(1.0, 1e10),
    vol=st.floats(1e-3, 5e3),
    spread=st.floats(0.0, 100.0),
    exponent=st.floats(0.05, 1.0),
    minute=st.integers(0, 389),
)
def test_forecast_bounded_and_monotone_in_qty(
    qty: list[float], adv: float, vol: float, spread: float, exponent: float, minute: int
) -> None:
    ts = ny_ns(2024, 5, 1, 9, 30) + minute * 60 * NS
    m = SlippageModel(SlippageConfig(impact_exponent=exponent))
    m.set_daily_stats("X", adv, vol)
    m.learn_from_quote_bars(pl.DataFrame({"symbol": ["X"], "ts": [ts], "spread_bps_mean": [spread]}))
    out = m.forecast_many("X", "buy", sorted(qty), 10.0, ts)
    assert ((out >= 0) & (out <= 20.0)).all()
    assert (np.diff(out) >= 0).all()
    assert out[0] >= min(spread / 2, 20.0) - 1e-12


def test_coefficient_tracks_a_change_of_regime() -> None:
    # Default learning_rate 0.01: a memory of ~100 fills, so 1500 fills after a change the old regime
    # weighs 0.99^1500 ~ 3e-7. The standard error is sqrt(4 * 0.01 / 224) ~= 0.013; tolerance 0.06.
    m = SlippageModel()
    m.set_daily_stats("X", 2e6, 150.0)
    ts = ny_ns(2024, 5, 1, 12, 0)
    rng = np.random.default_rng(4)
    m.update_symbol_stats(simulated_fills(rng, {"X": (0.5, 2e6, 150.0)}, 1500, ts, 0.02))
    assert m.symbol_params("X")["impact_coef"] == pytest.approx(0.5, abs=0.06)
    m.update_symbol_stats(simulated_fills(rng, {"X": (1.2, 2e6, 150.0)}, 1500, ts + 10**13, 0.02))
    assert m.symbol_params("X")["impact_coef"] == pytest.approx(1.2, abs=0.06)
