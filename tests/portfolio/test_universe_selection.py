"""Universe selection on a real local bar store (synthetic market written with BarStore), with the real
shortability and earnings caches talking to the local venue over loopback."""

from __future__ import annotations

import dataclasses
from datetime import date
from pathlib import Path

import polars as pl
import pytest
from hybridtrader.config import Config, VenueConfig
from hybridtrader.data.bar_store import BarStore
from hybridtrader.data.earnings_cache import EarningsBlackout
from hybridtrader.data.shortability_cache import ShortabilityCache
from hybridtrader.errors import ConfigError
from hybridtrader.market.calendar import NEW_YORK
from hybridtrader.market.synth import SyntheticMarket, generate_market
from hybridtrader.portfolio.universe import select_universe
from hybridtrader.portfolio.universe_rotation import UniverseRotationTracker
from hybridtrader.venue import Venue

NAMES = ["AA", "BB", "CC", "DD", "EE", "FF", "GG", "HH"]
ASOF = date(2024, 2, 1)
LOOKBACK = 20


def _day(col: str = "ts") -> pl.Expr:
    return pl.col(col).dt.convert_time_zone(NEW_YORK.key).dt.date()


@pytest.fixture(scope="module")
def market() -> SyntheticMarket:
    return generate_market(symbols=NAMES, sessions=25, ticks=False, seed=3)


@pytest.fixture(scope="module")
def reference(market: SyntheticMarket) -> pl.DataFrame:
    """Independent figures from the generated daily bars: last close on ASOF and the window's ADV$."""
    d = market.bars_1d.with_columns(day=_day())
    days = d.filter(pl.col("day") <= ASOF)["day"].unique().sort()[-LOOKBACK:]
    w = d.filter(pl.col("day").is_in(days.implode()))
    return w.group_by("symbol").agg(
        last_close=pl.col("close").sort_by("ts").last(),
        adv=(pl.col("close") * pl.col("volume")).sum() / LOOKBACK,
    ).sort("symbol")


@pytest.fixture(scope="module")
def store(market: SyntheticMarket, tmp_path_factory: pytest.TempPathFactory) -> BarStore:
    """The daily bars in a BarStore, GG missing 4 of the window's sessions, HH with one low above its open."""
    bars = market.bars_1d.with_columns(day=_day())
    gg_gone = [date(2024, 1, d) for d in (10, 11, 12, 16)]
    bars = bars.filter(~((pl.col("symbol") == "GG") & pl.col("day").is_in(gg_gone)))
    broken = (pl.col("symbol") == "HH") & (pl.col("day") == date(2024, 1, 19))
    bars = bars.with_columns(low=pl.when(broken).then(pl.col("open") * 1.01).otherwise(pl.col("low")))
    s = BarStore(tmp_path_factory.mktemp("bars"))
    s.upsert(bars.drop("day"), "1Day")
    return s


def _plan(reference: pl.DataFrame) -> dict[str, object]:
    """Thresholds that each cut one more symbol, chosen from the reference figures."""
    rest = reference.filter(pl.col("symbol").is_in(NAMES[:6]))
    cheapest = rest.sort("last_close").row(0, named=True)
    rest = rest.filter(pl.col("symbol") != cheapest["symbol"])
    thinnest = rest.sort("adv").row(0, named=True)
    rest = rest.filter(pl.col("symbol") != thinnest["symbol"]).sort("symbol")
    no_short, blackout, *last_two = rest["symbol"].to_list()
    ranked = rest.filter(pl.col("symbol").is_in(last_two)).sort("adv", descending=True)["symbol"].to_list()
    return {"cheapest": cheapest, "thinnest": thinnest, "no_short": no_short, "blackout": blackout,
            "winner": ranked[0], "ranked_out": ranked[1]}


def _config(reference: pl.DataFrame, tmp_path: Path, **extra: object) -> Config:
    p = _plan(reference)
    universe = {"min_price": p["cheapest"]["last_close"] + 0.01,  # type: ignore[index]
                "min_dollar_volume": p["thinnest"]["adv"] * 1.0001,  # type: ignore[index]
                "lookback_sessions": LOOKBACK, **extra}
    return Config.model_validate({"data_dir": str(tmp_path), "portfolio": {"universe": universe}})


def test_filters_without_caches(store: BarStore, reference: pl.DataFrame, tmp_path: Path) -> None:
    p = _plan(reference)
    sel = select_universe(store, _config(reference, tmp_path), asof=ASOF)
    steps = {s.name: s for s in sel.steps}
    assert sel.candidates == NAMES and steps["data"].removed == {}
    assert set(steps["quality"].removed) == {"GG", "HH"}
    assert "20.0% of the window's bars missing > max_missing_share 10.0%" in steps["quality"].removed["GG"]
    assert "OHLC inconsistent: 1 rows" in steps["quality"].removed["HH"]
    assert list(steps["price"].removed) == [p["cheapest"]["symbol"]]  # type: ignore[index]
    assert list(steps["liquidity"].removed) == [p["thinnest"]["symbol"]]  # type: ignore[index]
    assert steps["shortability"].skipped == "strategies do not short"
    assert steps["earnings"].skipped is not None and steps["rank"].skipped == "max_symbols not set"
    assert len(sel.symbols) == 4
    for row in reference.iter_rows(named=True):  # the metrics are the reference figures
        m = sel.metrics[row["symbol"]]
        if row["symbol"] != "GG":
            assert m["dollar_volume"] == pytest.approx(row["adv"], rel=1e-12)
        assert m["last_close"] == pytest.approx(row["last_close"], rel=1e-12)
    assert sel.metrics["GG"]["reason"].startswith("quality: ")


def test_every_filter_against_the_local_venue(market: SyntheticMarket, store: BarStore,
                                              reference: pl.DataFrame, tmp_path: Path) -> None:
    p = _plan(reference)
    info = market.symbols.with_columns(shortable=pl.col("symbol") != p["no_short"])
    earnings = pl.DataFrame({"symbol": [p["blackout"]], "date": [ASOF], "hour": ["bmo"],
                             "eps_estimate": [1.0], "eps_actual": [1.1]})
    served = dataclasses.replace(market, symbols=info, earnings=earnings)
    cfg = _config(reference, tmp_path, max_symbols=1)
    with Venue(VenueConfig(speed="max"), market=served) as venue:
        shortable = ShortabilityCache(cfg, trading_url=venue.url, path=tmp_path / "short.json")
        blackout = EarningsBlackout(cfg, finnhub_url=venue.url + "/api/v1",
                                    window=(date(2024, 1, 1), date(2024, 3, 1)), path=tmp_path / "earn.json")
        sel = select_universe(store, cfg, asof=ASOF, shorts=True, shortability=shortable, earnings=blackout)
    steps = {s.name: s.removed for s in sel.steps}
    assert steps["shortability"] == {p["no_short"]: "not shortable"}
    assert steps["earnings"] == {p["blackout"]: "earnings blackout 2024-01-31..2024-02-02"}
    assert list(steps["rank"]) == [p["ranked_out"]]
    assert sel.symbols == [p["winner"]]
    # the selection feeds the tracker: removals carry the filter's reason
    tracker = UniverseRotationTracker(cfg, persist=False)
    tracker.update_universe(NAMES, now=date(2024, 1, 2))
    result = tracker.update_universe(sel.symbols, sel.metrics, now=ASOF)
    assert result.universe == [p["winner"]]
    reasons = {e["symbol"]: e["reason"] for e in tracker.history() if e["action"] == "remove"}
    assert reasons[p["no_short"]] == "shortability: not shortable"
    assert reasons["GG"].startswith("quality: ")


def test_shorts_need_a_shortability_cache(store: BarStore, reference: pl.DataFrame, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="shorts=True needs a ShortabilityCache"):
        select_universe(store, _config(reference, tmp_path), asof=ASOF, shorts=True)


def test_default_asof_is_the_last_stored_session(store: BarStore, reference: pl.DataFrame,
                                                  tmp_path: Path) -> None:
    sel = select_universe(store, _config(reference, tmp_path), candidates=["aa", "BB"])
    assert sel.asof == date(2024, 2, 6) and sel.candidates == ["AA", "BB"]
