"""Synthetic market: schema, determinism, calendar, microstructure shapes, factor structure, planted knobs."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hybridtrader.market import calendar
from hybridtrader.market.synth import FRAMES, SyntheticMarket, generate_market
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats

NY = calendar.NEW_YORK.key


@pytest.fixture(scope="module")
def ticks() -> SyntheticMarket:
    return generate_market(symbols=8, sessions=5, start="2024-03-04", seed=11, trades_per_minute=15)


@pytest.fixture(scope="module")
def research() -> SyntheticMarket:
    return generate_market(symbols=40, sessions=20, start="2023-06-01", seed=5, ticks=False)


def _minute_of_session(ts: pl.Expr) -> pl.Expr:
    local = ts.dt.convert_time_zone(NY)
    return local.dt.hour().cast(pl.Int32) * 60 + local.dt.minute().cast(pl.Int32) - (9 * 60 + 30)


def _lag1(pairs: pl.DataFrame) -> tuple[float, float]:
    """Lag-1 correlation of (x, y) pairs (not demeaned: returns have mean ~0) and its standard error,
    clustered by timestamp (symbols move together through the market factor)."""
    x, y = pairs["x"].to_numpy(), pairs["y"].to_numpy()
    norm = np.sqrt((x * x).sum() * (y * y).sum())
    clusters = pairs.group_by("ts").agg((pl.col("x") * pl.col("y")).sum().alias("xy"))["xy"].to_numpy()
    return float((x * y).sum() / norm), float(np.sqrt((clusters**2).sum()) / norm)


def _minute_return_pairs(bars: pl.DataFrame, price: pl.Expr) -> pl.DataFrame:
    """Consecutive 1-minute log returns inside a session (the overnight return is excluded)."""
    day = pl.col("ts").dt.convert_time_zone(NY).dt.date()
    return (
        bars.sort("symbol", "ts")
        .with_columns(day.alias("day"), price.log().alias("lp"))
        .with_columns(
            pl.col("lp").diff().over("symbol", "day").alias("y"),
            (pl.col("ts").diff().over("symbol", "day") == timedelta(minutes=1)).alias("adjacent"),
        )
        .with_columns(
            pl.col("y").shift(1).over("symbol", "day").alias("x"),
            pl.col("adjacent").shift(1).over("symbol", "day").alias("prev_adjacent"),
        )
        .filter(pl.col("adjacent") & pl.col("prev_adjacent"))
        .select("ts", "x", "y")
        .drop_nulls()
    )


# ------------------------------------------------------------------------------- schema and determinism
def test_schema_and_dtypes(ticks: SyntheticMarket, research: SyntheticMarket) -> None:
    for market in (ticks, research):
        for name, schema in FRAMES.items():
            assert dict(getattr(market, name).schema) == schema, name
    assert ticks.trades.height > 50_000 and ticks.quotes.height > ticks.trades.height
    assert research.trades.height == 0 and research.quotes.height == 0 and research.bars_1m.height > 100_000
    assert ticks.symbols["symbol"].to_list() == [f"SAA{c}" for c in "ABCDEFGH"]


@pytest.mark.parametrize("tick_mode", [True, False])
def test_same_seed_same_frames_other_seed_differs(tick_mode: bool) -> None:
    args = dict(symbols=["AAA", "BBB", "CCC"], sessions=3, trades_per_minute=5, ticks=tick_mode)
    a, b = generate_market(seed=3, **args), generate_market(seed=3, **args)
    c = generate_market(seed=4, **args)
    for name in FRAMES:
        assert getattr(a, name).equals(getattr(b, name)), name
    assert not a.bars_1m.equals(c.bars_1m)
    assert a.symbols["symbol"].to_list() == ["AAA", "BBB", "CCC"]


def test_tick_and_bar_modes_follow_the_same_minute_path() -> None:
    """The minute model is shared: daily closes of both modes differ only by the last trade's bounce."""
    t = generate_market(symbols=4, sessions=4, seed=9, trades_per_minute=30).bars_1d
    b = generate_market(symbols=4, sessions=4, seed=9, ticks=False).bars_1d
    rel = (t["close"] / b["close"] - 1).abs()
    assert rel.max() < 0.003


# --------------------------------------------------------------------------------------------- calendar
def test_only_session_minutes_across_holiday_and_early_close() -> None:
    # 2024-11-27, 29 (13:00 close; 28 is Thanksgiving), 12-02, 12-03.
    m = generate_market(symbols=3, sessions=4, start="2024-11-27", seed=2, trades_per_minute=10)
    days = calendar.sessions(date(2024, 11, 27), date(2024, 12, 3))
    assert days == [date(2024, 11, 27), date(2024, 11, 29), date(2024, 12, 2), date(2024, 12, 3)]
    allowed = set(calendar.session_minutes_ns(days[0], days[-1]).tolist())
    minutes = set(m.bars_1m["ts"].dt.epoch("ns").to_list())
    assert minutes <= allowed
    assert len(minutes) > 0.99 * len(allowed)  # liquid symbols trade nearly every minute
    for frame in (m.trades, m.quotes):
        d = frame["ts"].dt.convert_time_zone(NY).dt.date()
        assert set(d.unique().to_list()) == set(days)
        for day in days:
            open_, close = calendar.session_bounds(day)
            ts = frame.filter(d == day)["ts"]
            assert ts.min() >= open_ and ts.max() < close
    half_day = m.bars_1m.filter(pl.col("ts").dt.convert_time_zone(NY).dt.date() == date(2024, 11, 29))
    assert half_day["ts"].max() == datetime(2024, 11, 29, 17, 59, tzinfo=calendar.UTC)  # 12:59 New York
    assert m.bars_1d["ts"].dt.convert_time_zone(NY).dt.date().unique().sort().to_list() == days
    assert (m.bars_1d["ts"].dt.convert_time_zone(NY).dt.hour() == 0).all()  # labelled at NY midnight


def test_start_on_a_holiday_begins_at_the_next_session() -> None:
    m = generate_market(symbols=1, sessions=2, start="2024-07-04", ticks=False)
    days = m.bars_1d["ts"].dt.convert_time_zone(NY).dt.date().to_list()
    assert days == [date(2024, 7, 5), date(2024, 7, 8)]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    start=st.dates(date(2005, 1, 1), date(2030, 12, 1)),
    n_symbols=st.integers(1, 3),
    n_sessions=st.integers(1, 3),
)
def test_invariants_hold_for_any_seed_and_date(
    seed: int, start: date, n_symbols: int, n_sessions: int
) -> None:
    m = generate_market(symbols=n_symbols, sessions=n_sessions, start=start, seed=seed, trades_per_minute=3)
    q, t = m.quotes, m.trades
    assert (q["bid"] > 0).all() and (q["bid"] < q["ask"]).all()
    assert (q["bid_size"] > 0).all() and (q["ask_size"] > 0).all()
    assert (t["price"] > 0).all() and (t["size"] > 0).all() and (t["size"] == t["size"].round()).all()
    for frame in (t, q):  # time-ordered within each symbol
        assert frame.select((pl.col("ts").diff().over("symbol").dt.total_nanoseconds() >= 0).all()).item()
    days = m.bars_1d["ts"].dt.convert_time_zone(NY).dt.date().unique().to_list()
    assert all(calendar.is_session(d) for d in days) and len(days) == n_sessions
    allowed = set(calendar.session_minutes_ns(min(days), max(days)).tolist())
    assert set(m.bars_1m["ts"].dt.epoch("ns").to_list()) <= allowed


# ------------------------------------------------------------------------------------- microstructure
def test_trades_sit_at_or_inside_the_prevailing_quote(ticks: SyntheticMarket) -> None:
    q, t = ticks.quotes, ticks.trades
    assert (q["bid"] < q["ask"]).all() and (q["bid"] > 0).all()
    assert (t["price"] > 0).all() and (t["size"] > 0).all()
    joined = t.sort("ts").join_asof(
        q.sort("ts"), on="ts", by="symbol", strategy="backward", check_sortedness=False
    )
    assert joined["bid"].null_count() == 0
    assert ((joined["price"] >= joined["bid"]) & (joined["price"] <= joined["ask"])).all()
    at_touch = ((joined["price"] == joined["bid"]) | (joined["price"] == joined["ask"])).mean()
    assert 0.85 < at_touch < 1.0  # most at the touch, a few inside
    for col in ("price", "bid", "ask"):  # cent grid
        values = (t if col == "price" else q)[col]
        assert ((values * 100).round() - values * 100).abs().max() < 1e-6


def test_trade_sizes_are_lognormal_and_round_lot_ish(ticks: SyntheticMarket) -> None:
    size = ticks.trades["size"]
    assert (size % 100 == 0).mean() > 0.6  # mostly round lots
    assert ((size < 100) & (size >= 1)).mean() > 0.05  # odd lots exist
    # Odd lots are the exact lognormal below 50 shares; above, the log size spreads like a lognormal tail.
    log_size = np.log(size.filter(size >= 100).to_numpy())
    assert 0.4 < log_size.std() < 1.2 and stats.skew(size.to_numpy()) > 2


def test_bars_are_consistent_with_trades(ticks: SyntheticMarket) -> None:
    b = ticks.bars_1m
    assert b.select((pl.col("high") >= pl.max_horizontal("open", "close")).all()).item()
    assert b.select((pl.col("low") <= pl.min_horizontal("open", "close")).all()).item()
    assert ((b["vwap"] >= b["low"] - 1e-9) & (b["vwap"] <= b["high"] + 1e-9)).all()
    per_symbol = ticks.trades.group_by("symbol").agg(pl.col("size").sum(), pl.len().alias("n")).sort("symbol")
    by_bars = b.group_by("symbol").agg(pl.col("volume").sum(), pl.col("trades").sum()).sort("symbol")
    assert per_symbol["size"].to_list() == by_bars["volume"].to_list()
    assert per_symbol["n"].to_list() == by_bars["trades"].to_list()
    daily = ticks.bars_1d.group_by("symbol").agg(pl.col("volume").mean()).sort("symbol")
    assert np.allclose(daily["volume"].to_numpy(), ticks.symbols.sort("symbol")["adv"].to_numpy())


def test_daily_bars_equal_a_direct_aggregation_of_trades(ticks: SyntheticMarket) -> None:
    t = ticks.trades.with_columns(pl.col("ts").dt.convert_time_zone(NY).dt.date().alias("day"))
    direct = (
        t.sort("symbol", "ts")
        .group_by("symbol", "day", maintain_order=True)
        .agg(
            pl.col("price").first().alias("open"),
            pl.col("price").max().alias("high"),
            pl.col("price").min().alias("low"),
            pl.col("price").last().alias("close"),
            pl.col("size").sum().alias("volume"),
            ((pl.col("price") * pl.col("size")).sum() / pl.col("size").sum()).alias("vwap"),
            pl.len().alias("trades"),
        )
        .sort("symbol", "day")
    )
    daily = ticks.bars_1d.sort("symbol", "ts")
    assert daily["symbol"].to_list() == direct["symbol"].to_list()
    assert daily["ts"].dt.convert_time_zone(NY).dt.date().to_list() == direct["day"].to_list()
    for col in ("open", "high", "low", "close", "volume", "trades"):
        assert daily[col].to_list() == direct[col].to_list(), col
    assert np.allclose(daily["vwap"].to_numpy(), direct["vwap"].to_numpy(), rtol=1e-12)


def test_research_bars_are_well_formed(research: SyntheticMarket) -> None:
    b = research.bars_1m
    assert (b["low"] > 0).all() and (b["volume"] >= b["trades"]).all() and (b["trades"] > 0).all()
    assert b.select((pl.col("high") >= pl.max_horizontal("open", "close")).all()).item()
    assert b.select((pl.col("low") <= pl.min_horizontal("open", "close")).all()).item()
    assert ((b["vwap"] >= b["low"]) & (b["vwap"] <= b["high"])).all()
    first_open = research.bars_1d.group_by("symbol").agg(pl.col("open").first())["open"]
    assert first_open.min() >= 20 and first_open.max() <= 500


@pytest.mark.parametrize("mode", ["ticks", "research"])
def test_u_shaped_volume(mode: str, request: pytest.FixtureRequest) -> None:
    market: SyntheticMarket = request.getfixturevalue(mode)
    m = market.bars_1m.with_columns(_minute_of_session(pl.col("ts")).alias("mos"))
    full_days = m.filter(pl.col("mos").max().over(pl.col("ts").dt.date()) == 389)
    first = full_days.filter(pl.col("mos") < 30)["volume"].mean()
    last = full_days.filter(pl.col("mos") >= 360)["volume"].mean()
    midday = full_days.filter(pl.col("mos").is_between(120, 270))["volume"].mean()
    assert first > 1.4 * midday and last > 1.2 * midday


def test_reverse_j_spread(ticks: SyntheticMarket) -> None:
    q = ticks.quotes.with_columns(
        _minute_of_session(pl.col("ts")).alias("mos"),
        ((pl.col("ask") - pl.col("bid")) / (pl.col("ask") + pl.col("bid")) * 2e4).alias("bps"),
    )
    first = q.filter(pl.col("mos") < 30)["bps"].mean()
    second_half_hour = q.filter(pl.col("mos").is_between(30, 59))["bps"].mean()
    midday = q.filter(pl.col("mos").is_between(120, 270))["bps"].mean()
    assert first > 1.3 * midday and first > second_half_hour > midday


# --------------------------------------------------------------------------------------- factor model
def test_returns_are_correlated_through_the_market_factor(research: SyntheticMarket) -> None:
    r = (
        research.bars_1m.filter(_minute_of_session(pl.col("ts")) % 30 == 29)  # 30-minute closes
        .sort("symbol", "ts")
        .with_columns(pl.col("close").log().diff().over("symbol").alias("r"))
        .drop_nulls()
        .pivot(on="symbol", index="ts", values="r")
        .drop_nulls()
        .drop("ts")
    )
    x = r.to_numpy()
    corr = np.corrcoef(x.T)
    pairwise = corr[np.triu_indices_from(corr, 1)]
    assert pairwise.mean() > 0.1 and (pairwise > 0).mean() > 0.9
    sector = dict(research.symbols.select("symbol", "sector").iter_rows())
    same = np.array([[sector[a] == sector[b] for b in r.columns] for a in r.columns])
    upper = np.triu(np.ones_like(same), 1).astype(bool)
    assert corr[same & upper].mean() > corr[~same & upper].mean() + 0.03  # sector factor: +0.09 in the model
    # Beta against the equal-weighted market ranks like the model's beta.
    market = x.mean(axis=1)
    est = np.array([np.cov(x[:, j], market)[0, 1] for j in range(x.shape[1])]) / market.var(ddof=1)
    betas = research.symbols.filter(pl.col("symbol").is_in(r.columns)).sort("symbol")["beta"].to_numpy()
    assert stats.spearmanr(est[np.argsort(r.columns)], betas).statistic > 0.5


def test_overnight_gaps_exist_and_are_a_minority_of_variance(research: SyntheticMarket) -> None:
    d = research.bars_1d.sort("symbol", "ts").with_columns(
        (pl.col("open") / pl.col("close").shift(1).over("symbol")).log().alias("gap"),
        (pl.col("close") / pl.col("open")).log().alias("intraday"),
    )
    gaps = d["gap"].drop_nulls()
    assert (gaps.abs() > 1e-4).mean() > 0.8
    ratio = gaps.var() / d["intraday"].var()
    assert 0.1 < ratio < 0.8  # model: 20% of daily variance overnight, plus earnings gaps


# ---------------------------------------------------------------------------------------- planted knobs
def test_mean_reversion_knob_plants_a_negative_minute_autocorrelation() -> None:
    off = generate_market(symbols=10, sessions=10, seed=21, ticks=False)
    on = generate_market(symbols=10, sessions=10, seed=21, ticks=False, mean_reversion=0.3)
    rho_off, se_off = _lag1(_minute_return_pairs(off.bars_1m, pl.col("close")))
    rho_on, se_on = _lag1(_minute_return_pairs(on.bars_1m, pl.col("close")))
    assert abs(rho_off) < 4 * se_off  # pure noise: no predictability
    assert rho_on < -0.09 and rho_on < -8 * se_on  # theory: -0.137


def test_mean_reversion_in_ticks_shows_in_mid_quotes_and_is_absent_when_off() -> None:
    def mid_minutes(market: SyntheticMarket) -> pl.DataFrame:
        q = market.quotes.with_columns(pl.col("ts").dt.truncate("1m"))
        return q.group_by("symbol", "ts").agg(((pl.col("bid") + pl.col("ask")) / 2).last().alias("mid"))

    args = dict(symbols=6, sessions=4, seed=8, trades_per_minute=10)
    off, on = generate_market(**args), generate_market(**args, mean_reversion=0.4)
    rho_off, se_off = _lag1(_minute_return_pairs(mid_minutes(off), pl.col("mid")))
    rho_on, se_on = _lag1(_minute_return_pairs(mid_minutes(on), pl.col("mid")))
    assert abs(rho_off) < 4 * se_off
    assert rho_on < -0.1 and rho_on < -6 * se_on
    # Last-trade closes add bid-ask bounce (negative either way); the knob still shows on top of it.
    bounce, _ = _lag1(_minute_return_pairs(off.bars_1m, pl.col("close")))
    with_knob, _ = _lag1(_minute_return_pairs(on.bars_1m, pl.col("close")))
    assert with_knob < bounce - 0.08


def test_trend_knob_plants_persistent_daily_drift() -> None:
    def acf(market: SyntheticMarket) -> tuple[float, float]:
        d = (
            market.bars_1d.sort("symbol", "ts")
            .join(market.symbols.select("symbol", "daily_vol"), on="symbol")
            .with_columns(((pl.col("close") / pl.col("open")).log() / pl.col("daily_vol")).alias("r"))
            .with_columns((pl.col("r") - pl.col("r").mean().over("ts")).alias("y"))  # market-neutral
            .with_columns(pl.col("y").shift(1).over("symbol").alias("x"))
            .drop_nulls()
        )
        return _lag1(d)

    rho_off, se_off = acf(generate_market(symbols=40, sessions=60, seed=1, ticks=False))
    rho_on, se_on = acf(generate_market(symbols=40, sessions=60, seed=1, ticks=False, trend=0.5))
    assert abs(rho_off) < 4 * se_off
    assert rho_on > 0.1 and rho_on > 4 * se_on  # theory about 0.21 (0.13-0.31 over seeds 0-7)


def test_knobs_at_zero_are_exactly_absent() -> None:
    base = generate_market(symbols=2, sessions=2, seed=1, ticks=False)
    zero = generate_market(symbols=2, sessions=2, seed=1, ticks=False, mean_reversion=0.0, trend=0.0)
    assert base.bars_1m.equals(zero.bars_1m)


# ------------------------------------------------------------------------------ symbols and earnings
def test_symbol_info(research: SyntheticMarket) -> None:
    s = research.symbols
    assert s["symbol"].n_unique() == s.height == 40 and s["sector"].n_unique() > 5
    assert (~s["easy_to_borrow"] | s["shortable"]).all()  # easy to borrow implies shortable
    assert s["daily_vol"].is_between(0.005, 0.08).all() and (s["adv"] > 0).all() and (s["beta"] > 0).all()


def test_earnings_are_quarterly_sessions_with_surprises(research: SyntheticMarket) -> None:
    e = research.earnings
    assert set(e["hour"].unique().to_list()) <= {"bmo", "amc"}
    assert all(calendar.is_session(d) for d in e["date"].to_list())
    gaps = e.sort("symbol", "date").select(pl.col("date").diff().over("symbol").dt.total_days()).drop_nulls()
    assert gaps.to_series().is_between(75, 105).all()
    assert set(e["symbol"].unique().to_list()) == set(research.symbols["symbol"].to_list())
    last_session = research.bars_1d["ts"].dt.convert_time_zone(NY).dt.date().max()
    past = e.filter(pl.col("date") <= last_session)
    assert past["eps_actual"].null_count() == 0
    assert e.filter(pl.col("date") > last_session)["eps_actual"].null_count() == e.filter(
        pl.col("date") > last_session
    ).height


def test_earnings_gap_follows_the_surprise() -> None:
    m = generate_market(symbols=60, sessions=70, start="2024-01-02", seed=6, ticks=False)
    d = m.bars_1d.sort("symbol", "ts").with_columns(
        pl.col("ts").dt.convert_time_zone(NY).dt.date().alias("day"),
        (pl.col("open") / pl.col("close").shift(1).over("symbol")).log().alias("gap"),
    )
    days = d["day"].unique().sort().to_list()
    nxt = dict(itertools.pairwise(days))
    e = m.earnings.filter(pl.col("date").is_in(days[1:-1])).with_columns(
        pl.when(pl.col("hour") == "bmo")
        .then(pl.col("date"))
        .otherwise(pl.col("date").replace_strict(nxt, default=None))
        .alias("day"),
        ((pl.col("eps_actual") - pl.col("eps_estimate")) / pl.col("eps_estimate").abs()).alias("surprise"),
    )
    joined = e.join(d, on=["symbol", "day"])
    assert joined.height > 30
    assert stats.spearmanr(joined["surprise"], joined["gap"]).statistic > 0.5


# ------------------------------------------------------------------------------------------ persistence
def test_write_read_roundtrip(tmp_path, ticks: SyntheticMarket) -> None:
    files = ticks.write(tmp_path / "m")
    assert {f.name for f in files} == {f"{n}.parquet" for n in FRAMES} | {"meta.json"}
    back = SyntheticMarket.read(tmp_path / "m")
    for name in FRAMES:
        assert getattr(back, name).equals(getattr(ticks, name)), name
    assert back.params == ticks.params


def test_read_rejects_corrupt_or_foreign_directories(tmp_path, research: SyntheticMarket) -> None:
    with pytest.raises(ValueError, match=r"meta\.json"):
        SyntheticMarket.read(tmp_path)
    research.write(tmp_path)
    (tmp_path / "bars_1m.parquet").write_bytes(b"not parquet")
    with pytest.raises(ValueError, match=r"bars_1m\.parquet"):
        SyntheticMarket.read(tmp_path)
    (tmp_path / "meta.json").write_text(json.dumps({"format_version": 99}))
    with pytest.raises(ValueError, match="format_version 99"):
        SyntheticMarket.read(tmp_path)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"symbols": 0}, "symbols"),
        ({"symbols": ["A", "A"]}, "symbols"),
        ({"sessions": 0}, "sessions"),
        ({"start": "2024-02-30"}, "start"),
        ({"mean_reversion": 1.0}, "mean_reversion"),
        ({"trend": -0.1}, "trend"),
        ({"trades_per_minute": 0}, "trades_per_minute"),
        ({"quotes_per_trade": -1}, "quotes_per_trade"),
    ],
)
def test_bad_parameters_are_named(kwargs: dict, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        generate_market(**kwargs)


# ------------------------------------------------------------------------------------------------- CLI
def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "HYBRIDTRADER_CONFIG"}
    script = Path(sys.executable).with_name("hybridtrader")  # the installed console script
    return subprocess.run([str(script), *args], capture_output=True, text=True, cwd=cwd, env=env)


def test_cli_data_synth_writes_the_market_it_reports(tmp_path: Path) -> None:
    args = ["--symbols", "3", "--sessions", "2", "--start", "2024-05-01", "--seed", "7"]
    proc = _cli("data", "synth", *args, "--mean-reversion", "0.2", "--out", "m", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    expected = generate_market(symbols=3, sessions=2, start="2024-05-01", seed=7, mean_reversion=0.2)
    back = SyntheticMarket.read(tmp_path / "m")
    for name in FRAMES:
        assert getattr(back, name).equals(getattr(expected, name)), name
        assert f"{getattr(expected, name).height:,} rows" in proc.stdout
    assert "wrote 7 files" in proc.stdout


def test_cli_data_synth_defaults_to_the_config_data_dir(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text("data_dir: store\n")
    proc = _cli("data", "synth", "--symbols", "1", "--sessions", "1", "--no-ticks", "--config", "c.yaml",
                cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    back = SyntheticMarket.read(tmp_path / "store" / "synth")
    assert back.trades.height == 0 and back.bars_1m.height == 390


def test_cli_data_synth_bad_argument_is_one_line(tmp_path: Path) -> None:
    proc = _cli("data", "synth", "--trend", "-1", "--out", "x", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["error: trend must be in [0, 10], got -1.0"]
