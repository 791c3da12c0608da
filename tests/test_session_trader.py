"""SessionTrader against the local venue over real loopback HTTP (alpaca-py's TradingClient), with signals
given by hand: the toxic-time filter, time slicing, the end-of-day flatten and the read-back of fills."""

from __future__ import annotations

from datetime import UTC, date, datetime

import polars as pl
import pytest
from alpaca.trading.client import TradingClient
from hybridtrader.config import Config, VenueConfig
from hybridtrader.errors import BrokerError
from hybridtrader.execution.rate_limiter import RateLimiter
from hybridtrader.execution.slippage_model import SlippageModel
from hybridtrader.market.calendar import NEW_YORK
from hybridtrader.market.synth import generate_market
from hybridtrader.pipeline.session_trader import SessionTrader, fills_by_leg
from hybridtrader.pipeline.signals import SIGNAL_SCHEMA
from hybridtrader.risk.exposure_manager import ExposureManager
from hybridtrader.venue import LOCAL_KEY, LOCAL_SECRET, Venue


def ny(d: date, hh: int, mm: int) -> datetime:
    return datetime(d.year, d.month, d.day, hh, mm, tzinfo=NEW_YORK).astimezone(UTC)


def test_session_trader_filters_slices_flattens_and_reads_back() -> None:
    cfg = Config()
    market = generate_market(symbols=2, sessions=2, seed=3)
    session = date(2024, 1, 3)
    bars = market.bars_1m.filter(pl.col("ts").dt.convert_time_zone(NEW_YORK.key).dt.date() == session)
    sym = market.symbols["symbol"][0]

    def signal(hh: int, mm: int) -> dict[str, object]:
        bar = bars.filter((pl.col("symbol") == sym) & (pl.col("ts") == ny(session, hh, mm)))
        close = float(bar["close"].item())
        return {"strategy": "swing_trend_following", "symbol": sym, "ts": ny(session, hh, mm), "side": 1,
                "prob": 0.9, "close": close, "atr": close * 0.002, "target": float("nan"),
                "horizon_bars": 390}  # fmt: skip

    # 09:34 is known at 09:35 (toxic: the first 15 minutes); 15:39 is known at 15:40 and held to the flatten
    signals = pl.DataFrame([signal(9, 34), signal(15, 39)], schema=SIGNAL_SCHEMA)
    slippage = SlippageModel(cfg)
    slippage.learn_from_daily_bars(market.bars_1d)
    exposure = ExposureManager(cfg)
    exposure.load_symbols(market.symbols)
    with Venue(VenueConfig(speed="max"), market=market) as venue:
        trading = TradingClient(LOCAL_KEY, LOCAL_SECRET, paper=True, url_override=venue.url)
        trader = SessionTrader(cfg, trading, venue.clock, RateLimiter(cfg), slippage, exposure)
        result = trader.trade_session(session, bars, signals)
        venue_orders = venue.broker.orders

    assert result.skipped == {"toxic time: within the first 15 minutes": 1}
    assert len(result.trades) == 1
    assert result.flattened == "end of day at 15:55 New York"
    # slicing: 6 children over 15:40..16:00 (the window is cut at the close), sent on the minute they are
    # due; the flatten at 15:55 drops the rest. 15:40, 15:43:20, 15:46:40, 15:50, 15:53:20 -> 5 sent.
    o = result.orders
    entries = o.filter(pl.col("role") == "entry")
    assert entries.height == 5
    sent_at = [t.astimezone(NEW_YORK).strftime("%H:%M") for t in entries["decision_ts"]]
    assert sent_at == ["15:40", "15:44", "15:47", "15:50", "15:54"]
    flatten = o.filter(pl.col("role") == "flatten")
    assert flatten.height == 1 and flatten["side"].item() == "sell"
    # what was read back is what the venue holds
    assert o.height == len(venue_orders)
    for row in o.iter_rows(named=True):
        v = next(x for x in venue_orders.values() if x.client_order_id == row["client_order_id"])
        assert row["filled_qty"] == v.filled_qty
        assert row["filled_avg_price"] == pytest.approx(v.filled_notional / v.filled_qty)
        sign = 1.0 if row["side"] == "buy" else -1.0
        assert row["realised_bps"] == pytest.approx(
            sign * (row["filled_avg_price"] / row["decision_price"] - 1.0) * 1e4
        )
    assert flatten["filled_qty"].item() == entries["filled_qty"].sum() > 0
    assert result.positions_after == 0
    legs = fills_by_leg(o)
    assert legs["role"].to_list() == ["entry", "flatten"]
    assert legs["orders"].to_list() == [5, 1]
    assert result.learned_fills == o.filter(pl.col("filled_qty") > 0).height
    assert result.pnl == pytest.approx(result.end_equity - result.start_equity)


def test_a_refused_trading_call_is_one_broker_error_line() -> None:
    """A trading-API refusal (here: keys the venue does not know) reaches the caller as one BrokerError line
    naming the call and the status, not as alpaca-py's APIError."""
    cfg = Config()
    market = generate_market(symbols=1, sessions=2, seed=3)
    session = date(2024, 1, 3)
    bars = market.bars_1m.filter(pl.col("ts").dt.convert_time_zone(NEW_YORK.key).dt.date() == session)
    with Venue(VenueConfig(speed="max"), market=market) as venue:
        trading = TradingClient("not-a-key", "not-a-secret", paper=True, url_override=venue.url)
        trader = SessionTrader(cfg, trading, venue.clock, RateLimiter(cfg), SlippageModel(cfg),
                               ExposureManager(cfg))
        with pytest.raises(BrokerError) as e:
            trader.trade_session(session, bars, pl.DataFrame(schema=SIGNAL_SCHEMA))
    text = str(e.value)
    assert "\n" not in text and "get_account" in text and "not-a-secret" not in text
