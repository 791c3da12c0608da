"""The venue's trading API driven by alpaca-py's TradingClient: fills from the replayed quotes."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import polars as pl
import pytest
import requests
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderStatus
from alpaca.trading.requests import LimitOrderRequest, MarketOrderRequest
from hybridtrader.venue import LOCAL_KEY, LOCAL_SECRET, ReplayMarket, Venue

T0 = datetime(2024, 1, 2, 15, 0, tzinfo=UTC)


def _ns(dt: datetime) -> int:
    return int(dt.timestamp()) * 1_000_000_000


@pytest.fixture
def client(fresh_venue: Venue) -> TradingClient:
    fresh_venue.clock.advance_to(_ns(T0))
    return TradingClient(LOCAL_KEY, LOCAL_SECRET, url_override=fresh_venue.url)


def _quotes(market: ReplayMarket, symbol: str, upto: datetime) -> pl.DataFrame:
    q = market.quotes.frame.filter(pl.col("symbol") == symbol)
    standing = q.filter(pl.col("ts") <= T0).tail(1)
    later = q.filter((pl.col("ts") > T0) & (pl.col("ts") <= upto))
    return pl.concat([standing, later])


def test_market_order_fills_partially_then_fully_against_quoted_size(
        client: TradingClient, fresh_venue: Venue, market: ReplayMarket) -> None:
    o = client.submit_order(MarketOrderRequest(symbol="S00", qty=1500, side="buy", time_in_force="day",
                                               client_order_id="mkt-1"))
    q = _quotes(market, "S00", datetime(2024, 1, 2, 15, 5, tzinfo=UTC))
    first = q.row(0, named=True)
    assert o.status == OrderStatus.PARTIALLY_FILLED
    assert float(o.filled_qty) == first["ask_size"] < 1500
    assert float(o.filled_avg_price) == pytest.approx(first["ask"])

    fresh_venue.clock.advance_to(_ns(datetime(2024, 1, 2, 15, 5, tzinfo=UTC)))
    done = client.get_order_by_client_id("mkt-1")
    assert done.status == OrderStatus.FILLED and float(done.filled_qty) == 1500
    # reference: walk the quotes, each at most its ask size
    left, notional = 1500.0, 0.0
    for ask, size in zip(q["ask"], q["ask_size"], strict=True):
        take = min(left, size)
        notional += take * ask
        left -= take
        if left == 0:
            break
    assert float(done.filled_avg_price) == pytest.approx(notional / 1500)
    pos = client.get_open_position("S00")
    assert float(pos.qty) == 1500 and float(pos.avg_entry_price) == pytest.approx(notional / 1500)
    assert float(client.get_account().cash) == pytest.approx(10_000_000 - notional)


def test_limit_order_waits_cancels_and_client_ids_are_unique(client: TradingClient,
                                                             market: ReplayMarket) -> None:
    bid = _quotes(market, "S02", T0)["bid"][0]
    o = client.submit_order(LimitOrderRequest(symbol="S02", qty=10, side="buy", time_in_force="gtc",
                                              limit_price=round(bid * 0.5, 2), client_order_id="lim-1"))
    assert o.status == OrderStatus.NEW and float(o.filled_qty) == 0
    with pytest.raises(APIError) as dup:
        client.submit_order(MarketOrderRequest(symbol="S02", qty=1, side="buy", time_in_force="day",
                                               client_order_id="lim-1"))
    assert dup.value.status_code == 422 and "unique" in dup.value.message
    assert [x.client_order_id for x in client.get_orders()] == ["lim-1"]
    client.cancel_order_by_id(o.id)
    assert client.get_order_by_id(o.id).status == OrderStatus.CANCELED
    with pytest.raises(APIError) as again:
        client.cancel_order_by_id(o.id)
    assert again.value.status_code == 422


def test_marketable_limit_fills_at_the_quote_not_the_limit(client: TradingClient,
                                                           market: ReplayMarket) -> None:
    ask = _quotes(market, "S00", T0)["ask"][0]
    o = client.submit_order(LimitOrderRequest(symbol="S00", qty=50, side="buy", time_in_force="day",
                                              limit_price=round(ask * 1.05, 2)))
    assert o.status == OrderStatus.FILLED and float(o.filled_avg_price) == pytest.approx(ask)


def test_ioc_and_fok(client: TradingClient, market: ReplayMarket) -> None:
    standing = _quotes(market, "S00", T0).row(0, named=True)
    ioc = client.submit_order(MarketOrderRequest(symbol="S00", qty=3000, side="buy", time_in_force="ioc"))
    assert ioc.status == OrderStatus.CANCELED and float(ioc.filled_qty) == standing["ask_size"]
    fok = client.submit_order(MarketOrderRequest(symbol="S00", qty=3000, side="buy", time_in_force="fok"))
    assert fok.status == OrderStatus.CANCELED and float(fok.filled_qty) == 0


def test_day_order_expires_at_the_close(client: TradingClient, fresh_venue: Venue) -> None:
    o = client.submit_order(LimitOrderRequest(symbol="S01", qty=1, side="buy", time_in_force="day",
                                              limit_price=1.0))
    fresh_venue.clock.advance_to(_ns(datetime(2024, 1, 2, 22, 0, tzinfo=UTC)))
    expired = client.get_order_by_id(o.id)
    assert expired.status == OrderStatus.EXPIRED
    assert expired.expired_at == datetime(2024, 1, 2, 21, 0, tzinfo=UTC)  # 16:00 New York
    clock = client.get_clock()
    assert not clock.is_open
    assert clock.next_open == datetime(2024, 1, 3, 14, 30, tzinfo=UTC)


def test_rejections(client: TradingClient) -> None:
    with pytest.raises(APIError) as short:
        client.submit_order(MarketOrderRequest(symbol="S01", qty=1, side="sell", time_in_force="day"))
    assert short.value.status_code == 422 and "short" in short.value.message
    with pytest.raises(APIError) as bp:
        client.submit_order(MarketOrderRequest(symbol="S00", qty=1_000_000, side="buy", time_in_force="day"))
    assert bp.value.status_code == 403 and bp.value.code == 40310000
    with pytest.raises(APIError) as unknown:
        client.submit_order(MarketOrderRequest(symbol="ZZZZ", qty=1, side="buy", time_in_force="day"))
    assert unknown.value.status_code == 422


def test_assets_and_close_all(client: TradingClient, fresh_venue: Venue, market: ReplayMarket) -> None:
    assets = {a.symbol: a for a in client.get_all_assets()}
    ref = market.symbols
    assert [assets[s].shortable for s in ref["symbol"]] == ref["shortable"].to_list()
    assert [assets[s].easy_to_borrow for s in ref["symbol"]] == ref["easy_to_borrow"].to_list()
    assert client.get_asset("S01").id == assets["S01"].id
    client.submit_order(MarketOrderRequest(symbol="S00", qty=100, side="buy", time_in_force="day"))
    client.submit_order(MarketOrderRequest(symbol="S02", qty=100, side="sell", time_in_force="day"))  # short
    resting = client.submit_order(LimitOrderRequest(symbol="S02", qty=1, side="buy", time_in_force="gtc",
                                                    limit_price=1))
    fresh_venue.clock.advance_to(_ns(datetime(2024, 1, 2, 15, 2, tzinfo=UTC)))
    sides = {p.symbol: p.side.value for p in client.get_all_positions()}
    assert sides == {"S00": "long", "S02": "short"}
    raw = requests.delete(fresh_venue.url + "/v2/positions", params={"cancel_orders": "True"}, timeout=5,
                          headers={"APCA-API-KEY-ID": LOCAL_KEY, "APCA-API-SECRET-KEY": LOCAL_SECRET})
    assert raw.status_code == 207
    assert sorted(x["symbol"] for x in raw.json()) == ["S00", "S02"]
    assert client.get_order_by_id(resting.id).status == OrderStatus.CANCELED  # cancel_orders=True
    fresh_venue.clock.advance_to(_ns(datetime(2024, 1, 2, 15, 10, tzinfo=UTC)))
    assert client.get_all_positions() == []
    closes = client.close_all_positions(cancel_orders=True)  # alpaca-py parses the 207 list
    assert closes == []
    assert np.isclose(float(client.get_account().equity), float(client.get_account().cash))


def test_fills_pay_the_slippage_models_impact(market: ReplayMarket) -> None:
    from hybridtrader.config import VenueConfig
    from hybridtrader.execution.slippage_model import SlippageModel
    from hybridtrader.market.timeframe import Timeframe

    with Venue(VenueConfig(speed="max"), market=market) as v:
        v.clock.advance_to(_ns(T0))
        client = TradingClient(LOCAL_KEY, LOCAL_SECRET, url_override=v.url)
        standing = _quotes(market, "S00", T0).row(0, named=True)
        small = client.submit_order(MarketOrderRequest(symbol="S00", qty=10, side="buy", time_in_force="day"))
        big = client.submit_order(MarketOrderRequest(symbol="S00", qty=100, side="buy", time_in_force="day"))
    model = SlippageModel()  # same defaults, seeded from the same daily bars, computed here
    model.learn_from_daily_bars(market.bars(Timeframe(1, "Day")).frame)
    ts = standing["ts"]

    def expected(qty: float) -> float:
        cost = model.forecast_slippage("S00", "buy", qty, standing["ask"], ts)
        impact = cost - model.forecast_spread("S00", ts) / 2
        return standing["ask"] * (1 + impact / 1e4)

    assert float(small.filled_avg_price) == pytest.approx(expected(10), rel=1e-12)
    assert float(big.filled_avg_price) == pytest.approx(expected(100), rel=1e-12)
    assert standing["ask"] < float(small.filled_avg_price) < float(big.filled_avg_price)


def test_calendar(client: TradingClient) -> None:
    from datetime import date

    from alpaca.trading.requests import GetCalendarRequest

    days = client.get_calendar(GetCalendarRequest(start=date(2024, 11, 25), end=date(2024, 12, 2)))
    assert [d.date for d in days] == [date(2024, 11, 25), date(2024, 11, 26), date(2024, 11, 27),
                                      date(2024, 11, 29), date(2024, 12, 2)]  # Thanksgiving closed
    assert days[3].close == datetime(2024, 11, 29, 13, 0)  # early close, New York time
    assert days[0].open == datetime(2024, 11, 25, 9, 30)
