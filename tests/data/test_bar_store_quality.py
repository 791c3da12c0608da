"""BarStore (idempotent upserts, lazy reads, gap report, integrity) and check_data_quality."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import scipy.stats
from hybridtrader.data.bar_store import BarStore
from hybridtrader.data.quality import check_data_quality, robust_zscores
from hybridtrader.market.schema import BAR_SCHEMA
from hybridtrader.market.timeframe import Timeframe
from hybridtrader.venue import ReplayMarket
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


@pytest.fixture(scope="module")
def bars(market: ReplayMarket) -> pl.DataFrame:
    return market.bars(Timeframe(1, "Min")).frame.cast(BAR_SCHEMA)  # type: ignore[arg-type]


def test_upsert_is_idempotent_and_new_values_win(tmp_path: Path, bars: pl.DataFrame) -> None:
    store = BarStore(tmp_path)
    assert store.upsert(bars, "1Min") == bars.height
    assert store.upsert(bars, "1Min") == 0
    changed = bars.head(5).with_columns(pl.col("close") + 1.0)
    assert store.upsert(changed, "1Min") == 0
    got = store.read(None, "1Min")
    assert got.height == bars.height
    expected = pl.concat([changed, bars.slice(5)]).sort("symbol", "ts")
    assert got.equals(expected)
    assert store.symbols("1Min") == ["S00", "S01", "S02"]
    assert store.verify() == []


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cuts=st.lists(st.tuples(st.integers(0, 2339), st.integers(1, 900)), min_size=1, max_size=6),
       seed=st.integers(0, 1000))
def test_overlapping_upserts_equal_one_clean_write(tmp_path_factory: pytest.TempPathFactory,
                                                   bars: pl.DataFrame, cuts: list[tuple[int, int]],
                                                   seed: int) -> None:
    store = BarStore(tmp_path_factory.mktemp("store"))
    batches = [bars.slice(a, n) for a, n in cuts] + [bars]
    np.random.default_rng(seed).shuffle(batches)  # type: ignore[arg-type]
    added = sum(store.upsert(b, "1Min") for b in batches)
    assert added == bars.height
    assert store.read(None, "1Min").equals(bars.sort("symbol", "ts"))


def test_lazy_range_read(tmp_path: Path, bars: pl.DataFrame) -> None:
    store = BarStore(tmp_path)
    store.upsert(bars, "1Min")
    lo, hi = datetime(2024, 1, 2, 20, 0, tzinfo=UTC), datetime(2024, 1, 3, 15, 0, tzinfo=UTC)
    lf = store.scan(["S01", "S02"], "1Min", lo, hi)
    assert isinstance(lf, pl.LazyFrame)
    ref = bars.filter(pl.col("symbol").is_in(["S01", "S02"]) & pl.col("ts").is_between(lo, hi))
    assert lf.collect().equals(ref.sort("symbol", "ts"))
    assert store.read("S00", "1Day").is_empty()


def test_gap_report_against_the_calendar(tmp_path: Path, bars: pl.DataFrame) -> None:
    store = BarStore(tmp_path)
    s00 = bars.filter(pl.col("symbol") == "S00")
    holes = s00.slice(10, 3)["ts"]  # 14:40..14:42 on Jan 2
    cut = datetime(2024, 1, 3, 20, 50, tzinfo=UTC)
    store.upsert(s00.filter(~pl.col("ts").is_in(holes.implode()) & (pl.col("ts") < cut)), "1Min")
    gaps = store.gaps("S00", "1Min", "2024-01-02", "2024-01-04")
    assert gaps.rows() == [
        ("S00", datetime(2024, 1, 2, 14, 40, tzinfo=UTC), datetime(2024, 1, 2, 14, 42, tzinfo=UTC), 3),
        ("S00", datetime(2024, 1, 3, 20, 50, tzinfo=UTC), datetime(2024, 1, 3, 20, 59, tzinfo=UTC), 10),
    ]
    five = store.gaps("S00", "5Min", "2024-01-02", "2024-01-04")  # none stored: one run over both sessions
    assert five.rows() == [("S00", datetime(2024, 1, 2, 14, 30, tzinfo=UTC),
                            datetime(2024, 1, 3, 20, 55, tzinfo=UTC), 2 * 78)]


def test_verify_finds_damage(tmp_path: Path, bars: pl.DataFrame) -> None:
    store = BarStore(tmp_path)
    store.upsert(bars, "1Min")
    victim = store.files("1Min", ["S01"])[0]
    victim.write_bytes(b"not parquet")
    dup = store.files("1Min", ["S02"])[0]
    pl.concat([pl.read_parquet(dup)] * 2).write_parquet(dup)
    problems = store.verify()
    assert len(problems) == 3
    assert "unreadable" in problems[0] and "duplicate" in problems[1] and "not sorted" in problems[2]


def test_upsert_rejects_wrong_schema(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="missing columns"):
        BarStore(tmp_path).upsert(pl.DataFrame({"symbol": ["A"], "close": [1.0]}), "1Min")
    with pytest.raises(ValueError, match="timeframe"):
        BarStore(tmp_path).upsert(pl.DataFrame(schema=BAR_SCHEMA), "3Day")


def test_robust_zscores_match_scipy() -> None:
    x = np.random.default_rng(1).standard_t(3, 500)
    ref = (x - np.median(x)) / scipy.stats.median_abs_deviation(x, scale="normal")
    assert np.allclose(robust_zscores(x), ref, rtol=1e-3)


def test_clean_bars_pass(bars: pl.DataFrame) -> None:
    report = check_data_quality(bars, now=datetime(2024, 1, 3, 21, 0, tzinfo=UTC))
    assert report.ok, report.issues
    assert report.missing_bars == {"S00": 0, "S01": 0, "S02": 0}


def test_every_problem_is_found(bars: pl.DataFrame) -> None:
    s = bars.filter(pl.col("symbol") == "S01").with_row_index()
    bad = s.with_columns(
        pl.when(pl.col("index") == 100).then(pl.col("close") * 1.5).otherwise(pl.col("close")).alias("close"),
        pl.when(pl.col("index") == 100).then(pl.col("close") * 1.5).otherwise(pl.col("high")).alias("high"),
    ).with_columns(
        pl.when(pl.col("index") == 200).then(float("nan")).otherwise(pl.col("vwap")).alias("vwap"),
        pl.when(pl.col("index") == 300).then(-1.0).otherwise(pl.col("low")).alias("low"),
        pl.when(pl.col("index") == 400).then(pl.col("low") - 1).otherwise(pl.col("high")).alias("high"),
    ).filter(~pl.col("index").is_in([500, 501, 502])).drop("index")
    bad = pl.concat([bad, bad.slice(10, 2)])
    now = datetime(2024, 1, 3, 21, 10, tzinfo=UTC)  # the last bar starts at 20:59
    r = check_data_quality(bad, now=now, stale_after_s=300)
    assert r.duplicates == 2
    assert r.nulls == {"vwap": 1}
    assert r.non_positive == 1
    assert r.ohlc_inconsistent == 1  # the high set below the low (a negative low is not inconsistent)
    assert r.missing_bars == {"S01": 3}
    assert r.stale == {"S01": pytest.approx(660.0)}
    assert r.jump_rows["ts"].to_list() == s["ts"].gather([100, 101]).to_list()  # the spike and its reversal
    assert r.jumps == 2
    assert not r.ok and len(r.issues) == 7


def test_short_series_jumps_and_bad_arguments() -> None:
    t0 = datetime(2024, 1, 2, 14, 30, tzinfo=UTC)
    four = pl.DataFrame({"symbol": ["A"] * 4, "ts": [t0.replace(minute=30 + i) for i in range(4)],
                         "open": [10.0, 10.1, 10.2, 10.1], "high": [10.2, 10.2, 14.0, 10.2],
                         "low": [9.9, 10.0, 10.1, 10.0], "close": [10.1, 10.2, 14.0, 10.1],
                         "volume": [100, 200, 150, 120]})
    # three returns are too few for a robust scale; the size cap still flags the spike and its reversal
    assert check_data_quality(four).jumps == 2
    with pytest.raises(ValueError, match="missing columns"):
        check_data_quality(four.drop("volume"))
    with pytest.raises(ValueError, match="jump_zscore"):
        check_data_quality(four, jump_zscore=0)
