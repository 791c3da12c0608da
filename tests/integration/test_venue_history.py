"""Alpaca historical endpoints of the venue, driven by alpaca-py and raw HTTP over loopback."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
import pytest
import requests
from alpaca.common.exceptions import APIError
from alpaca.data.historical import StockHistoricalDataClient
from alpaca.data.requests import StockBarsRequest, StockQuotesRequest, StockTradesRequest
from alpaca.data.timeframe import TimeFrame, TimeFrameUnit
from hybridtrader.market.timeframe import Timeframe
from hybridtrader.venue import LOCAL_KEY, LOCAL_SECRET, ReplayMarket, Venue
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

START = datetime(2024, 1, 2, tzinfo=UTC)
END = datetime(2024, 1, 5, tzinfo=UTC)


def _pages(venue: Venue, auth: dict[str, str], path: str, params: dict[str, object]) -> tuple[list, int]:
    """Follow next_page_token; returns (rows as (symbol, t), page count)."""
    rows, pages, key = [], 0, path.rsplit("/", 1)[1]
    params = dict(params)
    while True:
        r = requests.get(venue.url + path, params=params, headers=auth, timeout=10)
        assert r.status_code == 200, r.text
        body = r.json()
        pages += 1
        assert isinstance(body[key], dict)
        page_rows = [(s, x["t"]) for s, xs in body[key].items() for x in xs]
        assert len(page_rows) <= int(params["limit"])
        rows.extend(page_rows)
        if body["next_page_token"] is None:
            return rows, pages
        params["page_token"] = body["next_page_token"]


def test_alpaca_py_bars_match_market(venue: Venue, market: ReplayMarket) -> None:
    client = StockHistoricalDataClient(LOCAL_KEY, LOCAL_SECRET, url_override=venue.url)
    got = client.get_stock_bars(StockBarsRequest(symbol_or_symbols=["S00", "S02"], timeframe=TimeFrame.Minute,
                                                 start=START, end=END))
    ref = market.bars(Timeframe.parse("1Min")).frame.filter(pl.col("symbol").is_in(["S00", "S02"]))
    assert sum(len(v) for v in got.data.values()) == ref.height  # alpaca-py followed the page tokens
    s02 = ref.filter(pl.col("symbol") == "S02")
    assert [b.close for b in got.data["S02"]] == s02["close"].to_list()
    assert got.data["S02"][0].timestamp == s02["ts"][0]
    assert got.data["S02"][0].trade_count == s02["trades"][0]


def test_alpaca_py_five_minute_and_daily_bars(venue: Venue, market: ReplayMarket) -> None:
    client = StockHistoricalDataClient(LOCAL_KEY, LOCAL_SECRET, url_override=venue.url)
    five = client.get_stock_bars(StockBarsRequest(symbol_or_symbols="S01",
                                                  timeframe=TimeFrame(5, TimeFrameUnit.Minute), start=START,
                                                  end=END)).data["S01"]
    minute = market.bars(Timeframe.parse("1Min")).frame.filter(pl.col("symbol") == "S01")
    first5 = minute.head(5)
    assert five[0].open == first5["open"][0] and five[0].close == first5["close"][4]
    assert five[0].high == first5["high"].max() and five[0].volume == first5["volume"].sum()
    assert len(five) == 2 * 78  # two sessions of 78 five-minute bars
    daily = client.get_stock_bars(StockBarsRequest(symbol_or_symbols="S01", timeframe=TimeFrame.Day,
                                                   start=START, end=END)).data["S01"]
    assert [d.timestamp.isoformat() for d in daily] == ["2024-01-02T05:00:00+00:00",
                                                        "2024-01-03T05:00:00+00:00"]
    assert daily[0].volume == minute.filter(pl.col("ts") < datetime(2024, 1, 3, tzinfo=UTC))["volume"].sum()


def test_alpaca_py_trades_and_quotes(venue: Venue, market: ReplayMarket) -> None:
    client = StockHistoricalDataClient(LOCAL_KEY, LOCAL_SECRET, url_override=venue.url)
    end = datetime(2024, 1, 2, 15, 0, tzinfo=UTC)
    trades = client.get_stock_trades(StockTradesRequest(symbol_or_symbols="S00", start=START, end=end))
    ref = market.trades.frame.filter((pl.col("symbol") == "S00") & (pl.col("ts") <= end))
    assert [t.price for t in trades.data["S00"]] == ref["price"].to_list()
    quotes = client.get_stock_quotes(StockQuotesRequest(symbol_or_symbols="S00", start=START, end=end,
                                                        limit=7))
    assert len(quotes.data["S00"]) == 7  # the request limit caps the total
    assert quotes.data["S00"][0].ask_price == market.quotes.frame.filter(pl.col("symbol") == "S00")["ask"][0]


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(limit=st.integers(1, 700), syms=st.sets(st.sampled_from(["S00", "S01", "S02", "NOPE"]), min_size=1),
       desc=st.booleans(), kind=st.sampled_from(["bars", "trades"]))
def test_paging_reassembles_exactly(venue: Venue, market: ReplayMarket, auth: dict[str, str], limit: int,
                                    syms: set[str], desc: bool, kind: str) -> None:
    lo, hi = "2024-01-02T15:00:00Z", "2024-01-02T15:40:00+00:00"
    params = {"symbols": ",".join(syms), "start": lo, "end": hi, "limit": limit,
              "sort": "desc" if desc else "asc"}
    if kind == "bars":
        params["timeframe"] = "1Min"
    rows, pages = _pages(venue, auth, f"/v2/stocks/{kind}", params)
    frame = market.bars(Timeframe.parse("1Min")).frame if kind == "bars" else market.trades.frame
    ref = frame.filter(pl.col("symbol").is_in(list(syms))
                       & pl.col("ts").is_between(datetime(2024, 1, 2, 15, tzinfo=UTC),
                                                 datetime(2024, 1, 2, 15, 40, tzinfo=UTC)))
    ref = ref.sort(["symbol", "ts"], descending=[False, desc], maintain_order=True)
    fmt = "%Y-%m-%dT%H:%M:%SZ" if kind == "bars" else "%Y-%m-%dT%H:%M:%S%.9fZ"
    expected = list(zip(ref["symbol"], ref["ts"].dt.strftime(fmt), strict=True))
    assert rows == expected  # sorted by symbol then time, nothing lost or repeated across pages
    assert pages == max(1, -(-len(expected) // limit))


def test_empty_answer_is_an_empty_object(venue: Venue, auth: dict[str, str]) -> None:
    r = requests.get(venue.url + "/v2/stocks/bars", headers=auth, timeout=5,
                     params={"symbols": "S00", "timeframe": "1Min", "start": "2023-01-01",
                             "end": "2023-01-02"})
    assert r.json() == {"bars": {}, "next_page_token": None}


@pytest.mark.parametrize(("params", "needle"), [
    ({"symbols": "S00", "timeframe": "7Day"}, "timeframe"),
    ({"symbols": "S00", "timeframe": "60Min"}, "timeframe"),
    ({"symbols": "S00", "timeframe": "1Min", "limit": "10001"}, "limit"),
    ({"symbols": "S00", "timeframe": "1Min", "start": "yesterday"}, "start"),
    ({"symbols": "S00", "timeframe": "1Min", "page_token": "%%%"}, "page_token"),
    ({"timeframe": "1Min"}, "symbols"),
    ({"symbols": "S00", "timeframe": "1Min", "feed": "nyse"}, "feed"),
])
def test_bad_parameters_are_422_naming_them(venue: Venue, auth: dict[str, str], params: dict[str, str],
                                            needle: str) -> None:
    r = requests.get(venue.url + "/v2/stocks/bars", params=params, headers=auth, timeout=5)
    assert r.status_code == 422
    assert needle in r.json()["message"] and r.json()["code"] == 42210000


def test_auth_is_required(venue: Venue) -> None:
    client = StockHistoricalDataClient("wrong", "keys", url_override=venue.url)
    with pytest.raises(APIError) as e:
        client.get_stock_bars(StockBarsRequest(symbol_or_symbols="S00", timeframe=TimeFrame.Day, start=START))
    assert e.value.status_code == 401 and e.value.code == 40110000


def test_per_key_rate_limit_answers_429_with_headers(market: ReplayMarket) -> None:
    from hybridtrader.config import VenueConfig

    with Venue(VenueConfig(speed="max", rate_limit_per_minute=5), market=market,
               keys={"a": "1", "b": "2"}) as v:
        def get(key: str, secret: str) -> requests.Response:
            return requests.get(v.url + "/v2/clock", headers={"APCA-API-KEY-ID": key,
                                                               "APCA-API-SECRET-KEY": secret}, timeout=5)
        answers = [get("a", "1") for _ in range(7)]
        assert [r.status_code for r in answers] == [200] * 5 + [429] * 2
        assert [r.headers["X-RateLimit-Remaining"] for r in answers[:5]] == ["4", "3", "2", "1", "0"]
        limited = answers[5]
        assert limited.headers["X-RateLimit-Limit"] == "5"
        reset = int(limited.headers["X-RateLimit-Reset"])
        assert datetime.now(UTC).timestamp() < reset <= datetime.now(UTC).timestamp() + 61
        assert get("b", "2").status_code == 200  # the budget is per key


def test_history_can_stop_at_the_replay_clock(market: ReplayMarket, auth: dict[str, str]) -> None:
    from hybridtrader.config import VenueConfig

    with Venue(VenueConfig(speed="max", history_until_clock=True), market=market) as v:
        now = datetime(2024, 1, 2, 14, 40, 30, tzinfo=UTC)
        v.clock.advance_to(int(now.timestamp()) * 10**9)
        bars = requests.get(v.url + "/v2/stocks/bars", headers=auth, timeout=5,
                            params={"symbols": "S00", "timeframe": "1Min", "start": "2024-01-02"}).json()
        assert bars["bars"]["S00"][-1]["t"] == "2024-01-02T14:39:00Z"  # 14:40 is still forming
        trades = requests.get(v.url + "/v2/stocks/trades", headers=auth, timeout=5,
                              params={"symbols": "S00", "start": "2024-01-02", "limit": 10000}).json()
        assert trades["trades"]["S00"][-1]["t"] <= "2024-01-02T14:40:30"
        ref = market.trades.frame.filter((pl.col("symbol") == "S00") & (pl.col("ts") <= now))
        assert len(trades["trades"]["S00"]) == ref.height
