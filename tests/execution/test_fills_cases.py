"""The fill simulator on hand-built cases; every expected fill is worked out by hand in the comments."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
import pytest
from helpers import MIN
from hybridtrader.config import config_from_dict
from hybridtrader.errors import DataError
from hybridtrader.execution.fills import FILL_EVENT_SCHEMA, FillSettings, FillSimulator
from hybridtrader.market.schema import BAR_SCHEMA, QUOTE_SCHEMA
from hybridtrader.market.timeconv import utc_ns

OPEN = utc_ns(datetime(2024, 1, 2, 14, 30, tzinfo=UTC))  # 09:30 New York
CLOSE = utc_ns(datetime(2024, 1, 2, 21, 0, tzinfo=UTC))  # 16:00 New York
S = 1_000_000_000
FREE = FillSettings(sec_fee_rate=0.0, taf_per_share=0.0, entry_latency_ms=0.0, ack_latency_ms=0.0)


def sim(**kw: float) -> FillSimulator:
    return FillSimulator(FillSettings(**{**FREE.__dict__, **kw}))


def quotes(*rows: tuple[int, float, float, float, float], symbol: str = "AAA") -> pl.DataFrame:
    """rows: (ts, bid, ask, bid_size, ask_size)."""
    return pl.DataFrame([(symbol, *r) for r in rows], schema=QUOTE_SCHEMA, orient="row")


def bars(*rows: tuple[int, float, float, float, float, float], symbol: str = "AAA") -> pl.DataFrame:
    """rows: (ts, open, high, low, close, volume)."""
    return pl.DataFrame([(symbol, *r, r[1], 1) for r in rows], schema=BAR_SCHEMA, orient="row")


def fills(events: pl.DataFrame, cid: str | None = None) -> list[tuple[int, float, float]]:
    ev = events.filter(pl.col("event").is_in(["fill", "partial_fill"]))
    if cid is not None:
        ev = ev.filter(pl.col("client_order_id") == cid)
    return [(t, q, p) for t, q, p in zip(ev["ts"].cast(pl.Int64), ev["qty"], ev["price"], strict=True)]


def kinds(events: pl.DataFrame, cid: str) -> list[str]:
    return events.filter(pl.col("client_order_id") == cid)["event"].to_list()


def test_partial_fills_walk_displayed_size_and_never_before_submit_plus_latency() -> None:
    s = sim(entry_latency_ms=1000.0)
    s.on_quotes(quotes((OPEN, 9.9, 10.0, 100, 100)))
    s.submit("a", "AAA", "buy", 250, OPEN + 10 * S)  # active at OPEN + 11 s
    s.on_quotes(quotes((OPEN + 10 * S, 9.9, 10.05, 100, 100),  # standing at OPEN + 11 s
                       (OPEN + 11 * S + 1, 9.9, 10.10, 80, 80),
                       (OPEN + 12 * S, 9.9, 10.20, 500, 500)))
    ev = s.drain()
    assert ev.schema == pl.Schema(FILL_EVENT_SCHEMA)
    # 100 @ 10.05 at activation, 80 @ 10.10, the last 70 @ 10.20
    assert fills(ev) == [(OPEN + 11 * S, 100, 10.05), (OPEN + 11 * S + 1, 80, 10.10),
                         (OPEN + 12 * S, 70, 10.20)]
    assert ev["event"].to_list() == ["accepted", "partial_fill", "partial_fill", "fill"]
    assert ev["filled_qty"].to_list() == [0, 100, 180, 250]
    assert ev["leaves_qty"].to_list() == [250, 150, 70, 0]


def test_an_order_meets_the_book_standing_on_arrival_else_waits_for_the_first_quote() -> None:
    s = sim(entry_latency_ms=1000.0)
    s.submit("a", "AAA", "sell", 10, OPEN + 10 * S)  # active at OPEN + 11 s
    s.submit("b", "BBB", "sell", 10, OPEN + 10 * S)
    s.on_quotes(pl.concat([quotes((OPEN + 10 * S + 5, 9.0, 9.1, 50, 50)),  # quoted in flight, stands at 11 s
                           quotes((OPEN + 12 * S, 9.2, 9.3, 50, 50), symbol="BBB")]))
    ev = s.drain()
    assert fills(ev, "a") == [(OPEN + 11 * S, 10, 9.0)]  # at the arrival time, not the quote's
    assert fills(ev, "b") == [(OPEN + 12 * S, 10, 9.2)]


def test_limits_fill_at_the_touch_or_better_at_the_quote_price() -> None:
    s = sim()
    s.on_quotes(quotes((OPEN, 9.9, 10.0, 100, 100)))
    s.submit("at", "AAA", "buy", 10, OPEN + 1, type="limit", limit_price=9.95)
    s.submit("better", "AAA", "sell", 10, OPEN + 1, type="limit", limit_price=9.80)
    s.on_quotes(quotes((OPEN + 2, 9.85, 9.96, 100, 100), (OPEN + 3, 9.85, 9.95, 100, 100)))
    ev = s.drain()
    assert fills(ev, "at") == [(OPEN + 3, 10, 9.95)]  # 9.96 is above the limit; 9.95 is at it
    assert fills(ev, "better") == [(OPEN + 1, 10, 9.9)]  # the standing bid 9.9 beats 9.80


def test_stops_on_quotes_trigger_on_the_touch_and_fill_through_gaps() -> None:
    s = sim()
    s.on_quotes(quotes((OPEN, 10.0, 10.1, 100, 100)))
    s.submit("buy_stop", "AAA", "buy", 10, OPEN + 1, type="stop", stop_price=10.5)
    s.submit("sell_stop", "AAA", "sell", 10, OPEN + 1, type="stop", stop_price=9.5)
    s.submit("stop_limit", "AAA", "sell", 10, OPEN + 1, type="stop_limit", stop_price=9.5, limit_price=9.2)
    s.on_quotes(quotes((OPEN + 2, 10.3, 10.5, 100, 100),  # buy stop touched: fills at the ask 10.5
                       (OPEN + 3, 9.0, 9.1, 100, 100),  # gap through 9.5: sell stop at 9.0; limit 9.2 waits
                       (OPEN + 4, 9.25, 9.3, 100, 100)))  # triggered stop-limit now marketable at 9.25
    ev = s.drain()
    assert fills(ev, "buy_stop") == [(OPEN + 2, 10, 10.5)]
    assert fills(ev, "sell_stop") == [(OPEN + 3, 10, 9.0)]
    assert fills(ev, "stop_limit") == [(OPEN + 4, 10, 9.25)]


def test_bars_gaps_limits_stops_and_the_participation_cap() -> None:
    s = sim(bar_participation=0.1)
    t0 = OPEN + MIN
    s.submit("mkt", "AAA", "buy", 25, OPEN)
    s.submit("lim_gap", "AAA", "buy", 5, OPEN, type="limit", limit_price=10.6)
    s.submit("lim_touch", "AAA", "buy", 5, OPEN, type="limit", limit_price=10.4)
    s.submit("stop_gap", "AAA", "sell", 5, OPEN, type="stop", stop_price=10.8)
    s.submit("stop_range", "AAA", "buy", 5, OPEN, type="stop", stop_price=10.65)
    s.submit("lim_miss", "AAA", "buy", 5, OPEN, type="limit", limit_price=10.3)
    s.on_bars(bars((t0, 10.5, 10.7, 10.4, 10.6, 109), (t0 + MIN, 10.6, 10.6, 10.5, 10.5, 160)), MIN)
    ev = s.drain()
    # market: floor(0.1 x 109) = 10 at the first open, the other 15 of floor(16) at the next open
    assert fills(ev, "mkt") == [(t0, 10, 10.5), (t0 + MIN, 15, 10.6)]
    assert fills(ev, "lim_gap") == [(t0, 5, 10.5)]  # open 10.5 already below the limit: at the open
    assert fills(ev, "lim_touch") == [(t0, 5, 10.4)]  # the low touches 10.4: at the limit
    assert fills(ev, "stop_gap") == [(t0, 5, 10.5)]  # opened below the sell stop 10.8: at the open
    assert fills(ev, "stop_range") == [(t0, 5, 10.65)]  # high 10.7 crosses 10.65: at the stop
    assert fills(ev, "lim_miss") == []  # low 10.4, then 10.5: never 10.3


def test_bars_only_trade_bars_that_start_after_submit_plus_latency() -> None:
    s = sim(entry_latency_ms=100.0)
    s.submit("a", "AAA", "buy", 1, OPEN + MIN)  # active at OPEN + 1 min + 100 ms
    s.on_bars(bars((OPEN + MIN, 10.0, 10.0, 10.0, 10.0, 1e6), (OPEN + 2 * MIN, 11.0, 11.0, 11.0, 11.0, 1e6)),
              MIN)
    assert fills(s.drain()) == [(OPEN + 2 * MIN, 1, 11.0)]


def test_fees_on_sells_only_with_the_commission_minimum_per_order() -> None:
    s = FillSimulator(FillSettings(commission_per_share=0.005, commission_min=1.0, sec_fee_rate=27.8e-6,
                                   taf_per_share=0.000166, taf_max_per_trade=8.30, entry_latency_ms=0,
                                   ack_latency_ms=0))
    s.submit("b", "AAA", "buy", 300, OPEN)
    s.submit("s", "AAA", "sell", 100_000, OPEN)
    s.on_quotes(quotes((OPEN + 1, 20.0, 20.0, 100, 100), (OPEN + 2, 20.0, 20.0, 1e6, 1e6)))
    ev = s.drain().filter(pl.col("qty") > 0)
    buy = ev.filter(pl.col("client_order_id") == "b")["fee"].to_list()
    sell = ev.filter(pl.col("client_order_id") == "s")["fee"].to_list()
    # buy: 100 sh -> the $1 minimum; 200 more -> 300 x 0.005 = 1.50 owed, 0.50 more. No regulatory fees.
    assert buy == pytest.approx([1.0, 0.5], abs=1e-12)
    # sell 100 @ 20: $1 + SEC 2,000 x 27.8e-6 + TAF 100 x 0.000166
    # sell 99,900 @ 20: commission up to 500 (499 more) + SEC on 1,998,000 + TAF capped at 8.30
    assert sell == pytest.approx([1.0 + 0.0556 + 0.0166, 499.0 + 1_998_000 * 27.8e-6 + 8.30], abs=1e-9)
    # the same rule for fills made elsewhere (a live broker's): fill_fee(side, filled before, qty, price)
    bought = [s.fill_fee("buy", 0, 100, 20.0), s.fill_fee("buy", 100, 200, 20.0)]
    assert bought == pytest.approx(buy, abs=1e-12)
    assert [s.fill_fee("sell", 0, 100, 20.0), s.fill_fee("sell", 100, 99_900, 20.0)] == pytest.approx(
        sell, abs=1e-9
    )
    with pytest.raises(ValueError, match="side must be buy or sell"):
        s.fill_fee("short", 0, 1, 1.0)


def test_ioc_fok_and_day_expiry_at_the_close() -> None:
    s = sim()
    s.on_quotes(quotes((OPEN, 9.9, 10.0, 100, 100)))
    s.submit("ioc", "AAA", "buy", 150, OPEN + 1, time_in_force="ioc")
    s.submit("fok", "AAA", "buy", 150, OPEN + 1, time_in_force="fok")
    s.submit("fok_ok", "AAA", "buy", 100, OPEN + 1, time_in_force="fok")
    s.submit("day", "AAA", "buy", 1, OPEN + 1, type="limit", limit_price=5.0)
    s.submit("gtc", "AAA", "buy", 1, OPEN + 1, type="limit", limit_price=5.0, time_in_force="gtc")
    s.advance(CLOSE + MIN)
    ev = s.drain()
    assert kinds(ev, "ioc") == ["accepted", "partial_fill", "canceled"] and fills(ev, "ioc")[0][1] == 100
    assert kinds(ev, "fok") == ["accepted", "canceled"]
    assert kinds(ev, "fok_ok") == ["accepted", "fill"]
    assert kinds(ev, "day") == ["accepted", "expired"]
    assert ev.filter(pl.col("event") == "expired")["ts"].cast(pl.Int64).to_list() == [CLOSE]
    assert kinds(ev, "gtc") == ["accepted"] and s.open_orders()["client_order_id"].to_list() == ["gtc"]


def test_day_orders_expire_at_an_early_close() -> None:
    day_after_thanksgiving_open = utc_ns(datetime(2024, 11, 29, 14, 30, tzinfo=UTC))
    early_close = utc_ns(datetime(2024, 11, 29, 18, 0, tzinfo=UTC))  # 13:00 New York
    s = sim()
    s.submit("d", "AAA", "buy", 1, day_after_thanksgiving_open + MIN, type="limit", limit_price=1.0)
    s.advance(early_close - 1)
    assert s.drain()["event"].to_list() == ["accepted"]
    s.advance(early_close)
    ev = s.drain()
    assert ev["event"].to_list() == ["expired"] and ev["ts"].cast(pl.Int64).to_list() == [early_close]


def test_orders_after_the_close_wait_for_the_next_session() -> None:
    next_open = utc_ns(datetime(2024, 1, 3, 14, 30, tzinfo=UTC))
    s = sim()
    s.on_quotes(quotes((CLOSE - 1, 9.9, 10.0, 100, 100)))
    s.submit("late", "AAA", "buy", 10, CLOSE + MIN)
    s.on_quotes(quotes((CLOSE + 2 * MIN, 9.9, 10.1, 100, 100), (next_open, 9.9, 10.2, 100, 100)))
    ev = s.drain()
    assert fills(ev) == [(next_open, 10, 10.2)]  # neither yesterday's last quote nor after-hours quotes


def test_auctions_trade_the_first_and_last_quote_of_the_session() -> None:
    s = sim()
    s.submit("opg", "AAA", "buy", 500, OPEN - MIN, time_in_force="opg")
    s.submit("cls", "AAA", "sell", 500, OPEN - MIN, time_in_force="cls")
    s.submit("cls_lim", "AAA", "sell", 5, OPEN - MIN, type="limit", limit_price=12.0, time_in_force="cls")
    s.on_quotes(quotes((OPEN - 1, 9.0, 9.1, 10, 10), (OPEN, 10.0, 10.1, 10, 10),
                       (CLOSE - 1, 11.0, 11.1, 10, 10), (CLOSE + 1, 12.0, 12.1, 10, 10)))
    ev = s.drain()
    assert fills(ev, "opg") == [(OPEN, 500, 10.1)]  # all of it, at the session's first ask
    assert fills(ev, "cls") == [(CLOSE, 500, 11.0)]  # all of it, at the last bid before 16:00
    assert kinds(ev, "cls_lim") == ["accepted", "canceled"]  # 11.0 is below the 12.0 limit


def test_auctions_on_bars_use_the_first_open_and_last_close() -> None:
    s = sim()
    s.submit("opg", "AAA", "buy", 7, OPEN - MIN, time_in_force="opg")
    s.submit("cls", "AAA", "sell", 7, OPEN - MIN, time_in_force="cls")
    s.on_bars(bars((OPEN, 10.0, 10.5, 9.5, 10.2, 10), (CLOSE - MIN, 11.0, 11.5, 10.5, 11.2, 10)), MIN)
    ev = s.drain()
    assert fills(ev, "opg") == [(OPEN, 7, 10.0)] and fills(ev, "cls") == [(CLOSE, 7, 11.2)]


def test_cancel_races_a_fill_and_replace_after_a_fill_is_rejected() -> None:
    s = sim(entry_latency_ms=1000.0)
    s.submit("a", "AAA", "buy", 100, OPEN)
    assert s.cancel("a", OPEN + S // 2)  # reaches the market at OPEN + 1.5 s
    s.on_quotes(quotes((OPEN + S, 9.9, 10.0, 60, 60), (OPEN + 2 * S, 9.9, 10.0, 60, 60)))
    ev = s.drain()
    assert kinds(ev, "a") == ["accepted", "partial_fill", "canceled"] and fills(ev)[0][1] == 60
    assert not s.cancel("a", OPEN + 3 * S) and not s.cancel("unknown", OPEN + 3 * S)

    s.submit("b", "AAA", "buy", 100, OPEN + 3 * S, type="limit", limit_price=5.0)
    assert s.replace("b", "b2", OPEN + 5 * S, qty=40, limit_price=10.0)
    s.on_quotes(quotes((OPEN + 10 * S, 9.9, 10.0, 60, 60)))
    ev = s.drain()
    assert ev["event"].to_list() == ["accepted", "replaced", "accepted", "fill"]
    assert ev.row(1, named=True)["reason"] == "b2"
    # replaced at 6 s, b2 active at 7 s against the ask standing since 2 s
    assert fills(ev, "b2") == [(OPEN + 7 * S, 40, 10.0)]

    s.submit("c", "AAA", "buy", 10, OPEN + 11 * S)  # active at OPEN + 12 s
    assert s.replace("c", "c2", OPEN + 11 * S + S // 2, qty=20)  # arrives at OPEN + 12.5 s
    s.on_quotes(quotes((OPEN + 12 * S, 9.9, 10.0, 60, 60)))
    s.advance(OPEN + 13 * S)
    ev = s.drain()
    assert ev["event"].to_list() == ["accepted", "fill", "rejected"]
    assert "filled before the replace" in ev["reason"][2]


def test_invalid_requests_become_rejected_events_naming_the_field() -> None:
    s = sim()
    s.submit("a", "AAA", "hold", 1, OPEN)
    s.submit("b", "AAA", "buy", 1, OPEN, type="limit")
    s.submit("c", "AAA", "buy", 0, OPEN)
    s.submit("d", "AAA", "buy", 1, OPEN, type="stop", stop_price=5.0, time_in_force="ioc")
    s.submit("e", "AAA", "buy", 1, OPEN, time_in_force="week")
    s.submit("f", "AAA", "buy", 1, OPEN)
    s.submit("f", "AAA", "buy", 1, OPEN)
    rej = s.drain().filter(pl.col("event") == "rejected")
    assert rej["client_order_id"].to_list() == ["a", "b", "c", "d", "e", "f"]
    for field, reason in zip(["side", "limit_price", "qty", "time_in_force", "time_in_force", "already used"],
                             rej["reason"], strict=True):
        assert field in reason
    assert rej["side"].to_list() == ["", "buy", "buy", "buy", "buy", "buy"]


def test_unsorted_or_incomplete_frames_are_one_line_errors() -> None:
    s = sim()
    with pytest.raises(DataError, match="sorted by ts"):
        s.on_quotes(quotes((OPEN + 1, 9.9, 10.0, 1, 1), (OPEN, 9.9, 10.0, 1, 1)))
    with pytest.raises(DataError, match="missing columns"):
        s.on_bars(pl.DataFrame({"symbol": ["AAA"]}), MIN)


def test_settings_from_config_and_impact_from_the_slippage_model() -> None:
    from hybridtrader.execution.slippage_model import SlippageModel

    cfg = config_from_dict({"execution": {"fills": {"entry_latency_ms": 0, "ack_latency_ms": 0,
                                                    "bar_participation": 0.5}}})
    settings = FillSettings.from_config(cfg)
    assert settings.bar_participation == 0.5 and settings.sec_fee_rate == 27.8e-6
    model = SlippageModel()
    s = FillSimulator(settings, slippage=model)
    s.on_quotes(quotes((OPEN, 9.9, 10.0, 1000, 1000)))
    s.submit("a", "AAA", "buy", 500, OPEN + MIN)
    s.submit("b", "AAA", "sell", 500, OPEN + MIN, type="limit", limit_price=9.899)
    ev = s.drain()
    impact = model.forecast_slippage("AAA", "buy", 500, 10.0, OPEN + MIN) - model.forecast_spread(
        "AAA", OPEN + MIN) / 2
    assert impact > 0
    assert fills(ev, "a")[0][2] == pytest.approx(10.0 * (1 + impact / 1e4), rel=1e-12)
    assert fills(ev, "b")[0][2] == 9.899  # the bid less impact, but never below the limit


def test_open_orders_and_order_lookup() -> None:
    s = sim(entry_latency_ms=0, ack_latency_ms=5.0)
    s.submit("a", "AAA", "buy", 3, OPEN, type="limit", limit_price=5.0, time_in_force="gtc")
    s.submit("b", "BBB", "sell", 4, OPEN, type="stop_limit", stop_price=4.0, limit_price=3.5)
    o = s.open_orders()
    assert o["client_order_id"].to_list() == ["a", "b"] and o["status"].to_list() == ["pending_new"] * 2
    assert o["limit_price"].to_list() == [5.0, 3.5] and o["stop_price"].to_list() == [None, 4.0]
    assert o["expires_at"].cast(pl.Int64).to_list() == [None, CLOSE]
    s.advance(OPEN + 5_000_000)
    assert s.order("b")["status"] == "accepted" and s.order("b")["symbol"] == "BBB"
    assert s.order("zzz") is None
