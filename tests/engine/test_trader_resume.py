"""A Trader restarted from a checkpoint trades on like one never interrupted.

One bar time at a time (as live): an uninterrupted run, and one that checkpoints (through JSON, as the
journal keeps it) after bar times k and k + 1 and dies. Resumed from the checkpoint of k with the dead
one's orders and updates, a new Trader has learned the fills booked after it exactly as the dead one did.
Resumed from the checkpoint of k + 1 on the same broker, with its history warmed up from the bars seen, it
trades the rest of the session as the uninterrupted run does: the same orders (ids, decision prices,
slippage forecasts) and fills, and at the end the same slippage model, breaker and ledger."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import polars as pl
from hybridtrader.backtest.broker import SimBroker
from hybridtrader.backtest.clock import SimClock
from hybridtrader.config import Config, with_overrides
from hybridtrader.engine.events import BarBatch, OrderUpdate
from hybridtrader.engine.orders import Order
from hybridtrader.engine.trader import Trader
from hybridtrader.execution.fills import FillSettings, FillSimulator
from hybridtrader.execution.slippage_model import SlippageModel
from hybridtrader.market.calendar import NEW_YORK
from hybridtrader.market.synth import generate_market
from hybridtrader.strategy.mean_reversion import IntradayMeanReversion

NS_MIN = 60_000_000_000


class RecordingBroker(SimBroker):
    """The backtest broker, keeping every update it reported, in order."""

    def __init__(self, simulator: FillSimulator) -> None:
        super().__init__(simulator)
        self.reported: list[OrderUpdate] = []

    def poll(self, now_ns: int) -> list[OrderUpdate]:
        out = super().poll(now_ns)
        self.reported.extend(out)
        return out


def _trader(cfg: Config, broker: SimBroker, slippage: SlippageModel | None = None) -> Trader:
    strategies = [IntradayMeanReversion(cfg)]
    return Trader(cfg, strategies, _NoFeed(), broker, SimClock(), cash=1e6, slippage=slippage)


def _learned(cfg: Config, daily: pl.DataFrame) -> SlippageModel:
    """A slippage model that knows more than the run's fills (ADV and volatility from daily bars), as a
    node's model loaded from its state file does: a restart must not lose it."""
    model = SlippageModel(cfg)
    model.learn_from_daily_bars(daily)
    return model


class _NoFeed:
    """The bar times are handed over one by one by the test (`run_batch`), as the live node does."""

    every_ns = NS_MIN

    def batches(self) -> Iterator[BarBatch]:
        raise AssertionError("the test feeds the Trader itself")


def test_a_resumed_trader_ends_like_an_uninterrupted_one(tmp_path: Path) -> None:
    cfg = with_overrides(Config(data_dir=tmp_path), ["execution.enable_toxic_time_filtering=false"])
    market = generate_market(4, 1, seed=8, ticks=False)
    bars = market.bars_1m.sort("ts", "symbol")
    session = bars["ts"][0].astimezone(NEW_YORK).date()
    times = bars["ts"].dt.epoch("ns").unique(maintain_order=True).to_list()
    by_time = [bars.filter(pl.col("ts").dt.epoch("ns") == t) for t in times]
    settings = FillSettings.from_config(cfg)

    whole_broker = RecordingBroker(FillSimulator(settings))
    whole = _trader(cfg, whole_broker, _learned(cfg, market.bars_1d))
    sent_at: list[int] = []
    trading: list[bool] = []  # the strategy holds trades it will exit by its own rule
    for frame in by_time:
        whole.run_batch(BarBatch(session, frame, NS_MIN))
        sent_at.append(len(whole.sent))
        trading.append(bool(whole.strategies[0].state()["open"]))
    whole.finish()
    # k: a bar time that sent orders, filled at the next one's poll, after which trades are open
    fill_times = [u.ts_ns for u in whole_broker.reported if u.is_fill]
    k = next(
        i
        for i in range(30, len(times) - 30)
        if sent_at[i] > sent_at[i - 1]
        and any(times[i + 1] <= ts < times[i + 2] for ts in fill_times)
        and trading[i + 1]
    )

    dead_broker = RecordingBroker(FillSimulator(settings))
    dead = _trader(cfg, dead_broker, _learned(cfg, market.bars_1d))
    for frame in by_time[: k + 1]:
        dead.run_batch(BarBatch(session, frame, NS_MIN))
    at_k = orjson.loads(orjson.dumps(dead.checkpoint())), len(dead_broker.reported)
    dead.run_batch(BarBatch(session, by_time[k + 1], NS_MIN))
    at_k1 = orjson.loads(orjson.dumps(dead.checkpoint())), len(dead_broker.reported)
    assert at_k1[1] > at_k[1]  # bar time k + 1 booked fills after the checkpoint of k
    # the node dies here; the journal has its intents (as sent) and every update it booked
    intents = [dead.orders[c] for c in dead.sent]
    reported = list(dead_broker.reported)

    def resume(checkpoint: tuple[dict, int]) -> Trader:
        orders = [  # as the journal's intents give them back
            Order(o.client_order_id, o.strategy, o.book, o.leg, o.request, o.decision_ns, o.decision_price,
                  o.forecast_bps, updated_ns=o.decision_ns)
            for o in intents
        ]  # fmt: skip
        t = _trader(cfg, dead_broker)  # a fresh model; the broker kept what it had (as Alpaca does)
        t.resume(checkpoint[0], orders, reported, checkpoint[1])
        return t

    # from the checkpoint of k: the updates after it are learned again, as the dead node learned them
    late = resume(at_k)
    assert late.slippage.to_json() == dead.slippage.to_json() != at_k[0]["slippage"]
    booked = ["strategy", "symbol", "qty", "avg_price", "realized_pnl", "fees"]  # (marks are the bars')
    assert late.ledger.positions().select(booked).equals(dead.ledger.positions().select(booked))
    assert late.ledger.cash == dead.ledger.cash
    assert {c: o.status for c, o in late.orders.items()} == {c: o.status for c, o in dead.orders.items()}
    assert late.result().fills.equals(dead.result().fills)

    # from the checkpoint of k + 1: the rest of the session as if nothing had happened
    resumed = resume(at_k1)
    resumed.warm_up(pl.concat(by_time[: k + 2]))
    for frame in by_time[k + 2 :]:
        resumed.run_batch(BarBatch(session, frame, NS_MIN))
    resumed.finish()
    after = pl.col("decision_ts").dt.epoch("ns") > times[k + 1]
    a, b = whole.result(), resumed.result()
    assert b.orders.filter(after).height > 5
    assert b.orders.filter(after).equals(a.orders.filter(after))
    assert b.fills.equals(a.fills)  # every fill: those booked again and those made after
    assert b.positions.equals(a.positions)
    assert resumed.ledger.cash == whole.ledger.cash
    assert resumed.slippage.to_json() == whole.slippage.to_json()
    assert resumed.exposure.breaker_state() == whole.exposure.breaker_state()
