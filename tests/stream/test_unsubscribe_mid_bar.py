"""Unsubscribing a symbol's trades in the middle of a bar: that truncated bar is delivered flagged
`partial`, never as a complete bar; the symbol's earlier bars and the other symbols' bars are unaffected."""

from __future__ import annotations

import asyncio

import polars as pl
from hybridtrader.config import Config, VenueConfig
from hybridtrader.market.synth import generate_market
from hybridtrader.stream import StreamingAdapter
from hybridtrader.venue import LOCAL_KEY, LOCAL_SECRET, Venue

SYMBOLS = ["SAAA", "SAAB"]
MINUTE_NS = 60 * 10**9


def test_the_bar_cut_by_an_unsubscribe_is_partial() -> None:
    market = generate_market(symbols=SYMBOLS, sessions=1, trades_per_minute=30, seed=5)
    with Venue(VenueConfig(speed=60.0), market=market) as v:  # one market minute per wall second
        cfg = Config.model_validate({
            "alpaca": {"api_key": LOCAL_KEY, "secret_key": LOCAL_SECRET,
                       "stream_url": v.url.replace("http://", "ws://"), "data_url": v.url,
                       "data_sources": {"secondary": [], "stream": {"watermark_ms": 20_000}}},
        })
        bars: list[pl.DataFrame] = []
        cut: list[int] = []

        async def main() -> None:
            a = StreamingAdapter(cfg, clock=v.clock.now_ns)
            a.on_bar(bars.append)
            await a.connect_alpaca()
            await a.subscribe_trades(SYMBOLS)
            await asyncio.sleep(3.5)  # three market minutes and a half: the cut lands inside a bar
            cut.append(a.now_ns())
            await a.unsubscribe_trades(["SAAB"])
            await asyncio.sleep(2.5)  # the cut bar closes (watermark 20 market seconds)
            await a.close()

        asyncio.run(main())
    got = pl.concat(bars).with_columns(ns=pl.col("ts").dt.epoch("ns"))
    saab = got.filter(pl.col("symbol") == "SAAB").sort("ts")
    (t,) = cut
    cut_bar = saab.filter((pl.col("ns") <= t) & (pl.col("ns") + MINUTE_NS > t))
    assert cut_bar.height == 1 and cut_bar["partial"].all(), saab
    assert not saab.filter(pl.col("ns") + MINUTE_NS <= t)["partial"].any()  # the complete ones before
    closed_saaa = got.filter((pl.col("symbol") == "SAAA") & (pl.col("ns") + MINUTE_NS <= t))
    assert closed_saaa.height >= 2 and not closed_saaa["partial"].any()
