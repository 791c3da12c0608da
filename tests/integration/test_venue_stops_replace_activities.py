"""What live trading needs from the venue, driven by alpaca-py over loopback: stop and stop-limit orders,
order replace (PATCH), FILL account activities, and regulatory fees on sells reaching cash."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
import pytest
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderStatus
from alpaca.trading.models import TradeActivity
from alpaca.trading.requests import (
    LimitOrderRequest,
    MarketOrderRequest,
    ReplaceOrderRequest,
    StopLimitOrderRequest,
    StopOrderRequest,
)
from hybridtrader.market.timeconv import utc_ns
from hybridtrader.venue import LOCAL_KEY, LOCAL_SECRET, ReplayMarket, Venue

T0 = datetime(2024, 1, 2, 15, 0, tzinfo=UTC)
T1 = datetime(2024, 1, 2, 16, 0, tzinfo=UTC)


@pytest.fixture
def client(fresh_venue: Venue) -> TradingClient:
    fresh_venue.clock.advance_to(utc_ns(T0))
    return TradingClient(LOCAL_KEY, LOCAL_SECRET, url_override=fresh_venue.url)


def _quotes(market: ReplayMarket, symbol: str) -> pl.DataFrame:
    return market.quotes.frame.filter(pl.col("symbol") == symbol)


def test_stop_orders_trigger_on_the_touch(client: TradingClient, fresh_venue: Venue,
                                          market: ReplayMarket) -> None:
    q = _quotes(market, "S00")
    standing = q.filter(pl.col("ts") <= T0).tail(1).row(0, named=True)
    later = q.filter((pl.col("ts") > T0) & (pl.col("ts") <= T1))
    stop = round(later["ask"].max() - 0.01, 2)  # reached at some point in the hour, above the standing ask
    assert stop > standing["ask"]
    o = client.submit_order(StopOrderRequest(symbol="S00", qty=1, side="buy", time_in_force="day",
                                             stop_price=stop))
    assert o.status == OrderStatus.NEW and float(o.stop_price) == stop
    far = client.submit_order(StopLimitOrderRequest(symbol="S00", qty=1, side="sell", time_in_force="gtc",
                                                    stop_price=1.0, limit_price=0.9))
    fresh_venue.clock.advance_to(utc_ns(T1))
    done = client.get_order_by_id(o.id)
    # reference: the first quote after submission whose ask reaches the stop; 1 share fills at that ask
    hit = later.filter(pl.col("ask") >= stop).row(0, named=True)
    assert done.status == OrderStatus.FILLED
    assert float(done.filled_avg_price) == hit["ask"] and done.filled_at == hit["ts"]
    still = client.get_order_by_id(far.id)
    assert still.status == OrderStatus.NEW and float(still.limit_price) == 0.9
    assert float(still.stop_price) == 1.0


def test_replace_a_resting_limit(client: TradingClient, fresh_venue: Venue, market: ReplayMarket) -> None:
    ask = _quotes(market, "S02").filter(pl.col("ts") <= T0).tail(1)["ask"][0]
    old = client.submit_order(LimitOrderRequest(symbol="S02", qty=10, side="buy", time_in_force="gtc",
                                                limit_price=round(ask * 0.5, 2), client_order_id="r-1"))
    new = client.replace_order_by_id(old.id, ReplaceOrderRequest(qty=5, limit_price=round(ask * 1.05, 2),
                                                                 client_order_id="r-2"))
    assert new.replaces == old.id and new.client_order_id == "r-2"
    assert new.status == OrderStatus.FILLED and float(new.filled_qty) == 5
    assert float(new.filled_avg_price) == ask  # marketable at the standing ask
    was = client.get_order_by_id(old.id)
    assert was.status == OrderStatus.REPLACED and was.replaced_by == new.id and was.replaced_at is not None
    with pytest.raises(APIError) as closed:
        client.replace_order_by_id(new.id, ReplaceOrderRequest(qty=1))
    assert closed.value.status_code == 422 and "filled" in closed.value.message
    with pytest.raises(APIError) as tif:
        client.replace_order_by_id(
            client.submit_order(LimitOrderRequest(symbol="S02", qty=1, side="buy", time_in_force="day",
                                                  limit_price=1.0)).id,
            ReplaceOrderRequest(time_in_force="gtc"))
    assert tif.value.status_code == 422


def test_invalid_orders_are_refused_with_the_simulators_reason(client: TradingClient) -> None:
    with pytest.raises(APIError) as e:
        client.submit_order(StopOrderRequest(symbol="S00", qty=1, side="buy", time_in_force="ioc",
                                             stop_price=1000.0))
    assert e.value.status_code == 422 and "day or gtc" in e.value.message
    assert client.get_orders() == []  # a refused request is not an order


def test_fill_activities_and_fees_on_sells(client: TradingClient, fresh_venue: Venue) -> None:
    client.submit_order(MarketOrderRequest(symbol="S00", qty=1500, side="buy", time_in_force="day"))
    fresh_venue.clock.advance_to(utc_ns(datetime(2024, 1, 2, 15, 5, tzinfo=UTC)))
    client.submit_order(MarketOrderRequest(symbol="S00", qty=1500, side="sell", time_in_force="day"))
    fresh_venue.clock.advance_to(utc_ns(datetime(2024, 1, 2, 15, 10, tzinfo=UTC)))
    raw = client.get("/account/activities/FILL", {"direction": "asc"})
    acts = [TradeActivity(**a) for a in raw]  # alpaca-py's own model of a FILL activity
    assert [a.side.value for a in acts].count("buy") >= 2  # 1,500 is more than one quote shows
    for side in ("buy", "sell"):
        mine = [a for a in acts if a.side.value == side]
        assert sum(a.qty for a in mine) == 1500 and mine[-1].cum_qty == 1500 and mine[-1].leaves_qty == 0
        assert [a.order_status.value for a in mine][-1] == "filled"
    notional = {s: sum(a.qty * a.price for a in acts if a.side.value == s) for s in ("buy", "sell")}
    # SEC fee $27.80 per million of sell notional; FINRA TAF $0.000166 a share, at most $8.30 a fill
    sells = [a for a in acts if a.side.value == "sell"]
    fees = sum(a.qty * a.price * 27.8e-6 + min(a.qty * 0.000166, 8.30) for a in sells)
    assert fees > 0
    assert float(client.get_account().cash) == pytest.approx(10_000_000 - notional["buy"] + notional["sell"]
                                                             - fees, abs=1e-6)
    page = client.get("/account/activities/FILL", {"direction": "asc", "page_size": 2})
    rest = client.get("/account/activities/FILL", {"direction": "asc", "page_token": page[-1]["id"]})
    assert [a["id"] for a in page + rest] == [a["id"] for a in raw]
    newest_first = client.get("/account/activities", {"activity_types": "FILL"})
    assert [a["id"] for a in newest_first] == [a["id"] for a in reversed(raw)]
