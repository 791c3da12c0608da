"""The venue's default market (the synthetic market from the config) through the real clients."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import polars as pl
import pytest
from alpaca.data.historical import StockHistoricalDataClient
from alpaca.data.live import StockDataStream
from alpaca.data.requests import StockBarsRequest
from alpaca.data.timeframe import TimeFrame
from alpaca.trading.client import TradingClient
from alpaca.trading.requests import MarketOrderRequest
from hybridtrader.config import config_from_dict
from hybridtrader.data.alpaca_client import AlpacaClient
from hybridtrader.market.synth import generate_market
from hybridtrader.venue import LOCAL_KEY, LOCAL_SECRET, Venue

MARKET = {"symbols": 4, "sessions": 2, "seed": 5}


@pytest.fixture(scope="module")
def synth_venue() -> Iterator[Venue]:
    cfg = config_from_dict({"venue": {"speed": "max", "market": MARKET, "rate_limit_per_minute": 100_000},
                            "execution": {"max_api_calls_per_minute": 100_000}})
    with Venue(cfg) as v:
        yield v


def test_default_market_is_the_configured_synthetic_one(synth_venue: Venue) -> None:
    ref = generate_market(**MARKET)
    assert synth_venue.market.names == ref.symbols["symbol"].to_list()
    client = StockHistoricalDataClient(LOCAL_KEY, LOCAL_SECRET, url_override=synth_venue.url)
    got = client.get_stock_bars(StockBarsRequest(symbol_or_symbols=synth_venue.market.names,
                                                 timeframe=TimeFrame.Minute,
                                                 start=datetime(2024, 1, 1, tzinfo=UTC)))
    assert sum(len(v) for v in got.data.values()) == ref.bars_1m.height
    ours = AlpacaClient(config_from_dict({"execution": {"max_api_calls_per_minute": 100_000},
                                          "data": {"page_limit": 1000}}), data_url=synth_venue.url)
    frame = ours.get_bars(synth_venue.market.names, "1Min", "2024-01-01", "2024-01-31")
    assert frame.equals(ref.bars_1m.sort("symbol", "ts"))


def test_trading_and_streaming_on_the_synthetic_market(synth_venue: Venue) -> None:
    ref = generate_market(**MARKET)
    sym = ref.symbols["symbol"][0]
    synth_venue.clock.advance_to(int(datetime(2024, 1, 2, 15, tzinfo=UTC).timestamp()) * 10**9)
    trading = TradingClient(LOCAL_KEY, LOCAL_SECRET, url_override=synth_venue.url)
    order = trading.submit_order(MarketOrderRequest(symbol=sym, qty=10, side="buy", time_in_force="day"))
    standing = ref.quotes.filter((pl.col("symbol") == sym)
                                 & (pl.col("ts") <= datetime(2024, 1, 2, 15, tzinfo=UTC))).tail(1)
    assert float(order.filled_qty) == 10
    assert float(order.filled_avg_price) >= standing["ask"][0]  # the quote plus the model's impact

    stream = StockDataStream(LOCAL_KEY, LOCAL_SECRET, url_override=synth_venue.urls["alpaca_stream"])
    trades: list[Any] = []
    done = threading.Event()

    async def on_trade(t: Any) -> None:
        trades.append(t)
        if len(trades) >= 200:
            done.set()

    stream.subscribe_trades(on_trade, sym)
    thread = threading.Thread(target=stream.run, daemon=True)
    thread.start()
    assert done.wait(20)
    stream.stop()
    thread.join(10)
    t0 = datetime(2024, 1, 2, 15, tzinfo=UTC)
    after = ref.trades.filter((pl.col("symbol") == sym) & (pl.col("ts") > t0))
    assert [t.price for t in trades[:200]] == after["price"].head(200).to_list()
