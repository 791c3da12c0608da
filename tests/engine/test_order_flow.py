"""The Rust order flow (`OrderFlowCore`, rust/src/py/flow.rs) against a straightforward Python re-statement
of the engine's booking rules (what `Trader._on_update`, `_add_pending`, `_opened` and `_closed` were before
they moved to Rust), over random sequences of acks, partial fills, fills, cancels, expiries, rejects and
replaces across strategies, books and symbols (hypothesis); and the backtest's fast path (the simulator's
events booked straight into the flow) against the same run through `OrderUpdate`s."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hybridtrader._core import OrderFlowCore
from hybridtrader.backtest.broker import SimBroker
from hybridtrader.backtest.feed import FrameFeed
from hybridtrader.backtest.run import run_backtest
from hybridtrader.config import Config, with_overrides
from hybridtrader.engine.events import UPDATE_KINDS, OrderUpdate
from hybridtrader.engine.orders import Order, OrderRequest, client_order_id
from hybridtrader.errors import StateError
from hybridtrader.execution.fills import FillSettings, FillSimulator
from hybridtrader.execution.slippage_model import SlippageModel
from hybridtrader.market.synth import generate_market
from hybridtrader.portfolio.ledger import Ledger
from hybridtrader.risk.exposure_manager import ExposureManager
from hybridtrader.strategy import Context
from hybridtrader.strategy.examples.ema_cross import EmaCross
from hypothesis import given, settings
from hypothesis import strategies as st

SYMBOLS = ("AAA", "BBB", "CCC")  # CCC has no price: pending exposure is valued at the decision price
PRICES = {"AAA": 50.0, "BBB": 20.0, "CCC": math.nan}
STRATEGIES = (("s1", "intraday"), ("s2", "swing"), ("s3", "intraday"))
INDEX = {"AAA": 0, "BBB": 1}  # the batch's symbols (CCC is held from before: no column)


class Reference:
    """The booking rules, restated in Python over the public methods of the ledger, slippage model and
    exposure manager."""

    def __init__(self, config: Config) -> None:
        self.ledger = Ledger(1e6)
        self.slippage = SlippageModel(config)
        self.exposure = ExposureManager(config)
        self.orders: dict[str, Order] = {}
        self.sent: dict[str, int] = {}
        self.open: dict[str, Order] = {}
        self.open_by: dict[tuple[str, str], dict[str, Order]] = {}
        self.filled: dict[tuple[str, str], float] = {}
        self.pending: dict[tuple[str, str], float] = {}
        self.repricing: dict[tuple[str, str], Order] | None = None
        self.pos = np.zeros(len(INDEX))
        self.fills: list[tuple[Any, ...]] = []

    def send(self, order: Order, price: float | None = None) -> None:
        cid = order.client_order_id
        self.orders[cid] = order
        self.open[cid] = order
        self.open_by.setdefault((order.strategy, order.symbol), {})[cid] = order
        self.sent[cid] = len(self.sent)
        self.add_pending(order, order.sign * order.request.qty, price)

    def add_pending(self, order: Order, delta: float, price: float | None = None) -> None:
        key = (order.book, order.symbol)
        if self.repricing is not None:
            self.repricing[key] = order
        self.pending[key] = self.pending.get(key, 0.0) + delta
        if price is None:
            price = PRICES[order.symbol]
        if price != price:
            price = order.decision_price
        shares = self.filled.get(key, 0.0) + self.pending[key]
        self.exposure.update_position(order.book, order.symbol, shares, price)

    def apply(self, u: OrderUpdate) -> Order:
        order = self.orders.get(u.client_order_id)
        if order is None:
            raise StateError(f"broker update for unknown order {u.client_order_id} ({u.kind})")
        change = order.apply(u)
        if u.kind == "accepted":
            return order
        if u.kind in ("fill", "partial_fill"):
            realized = self.ledger.apply_fill(order.strategy, u.symbol, u.side, u.qty, u.price, u.fee)
            signed = order.sign * u.qty
            if u.symbol in INDEX:
                self.pos[INDEX[u.symbol]] += signed
            key = (order.book, u.symbol)
            self.filled[key] = self.filled.get(key, 0.0) + signed
            self.slippage.update_fill(u.symbol, u.side, u.qty, order.decision_price, u.price, u.ts_ns)
            bps = order.sign * (u.price / order.decision_price - 1.0) * 1e4
            row = (u.ts_ns, u.client_order_id, order.strategy, order.book, u.symbol, u.side, u.qty, u.price)
            self.fills.append((*row, u.fee, realized, order.decision_price, order.forecast_bps, bps))
        if change != 0.0:
            self.add_pending(order, order.sign * change)
        if not order.is_open and self.open.pop(order.client_order_id, None) is not None:
            group = self.open_by[(order.strategy, order.symbol)]
            del group[order.client_order_id]
            if not group:
                del self.open_by[(order.strategy, order.symbol)]
        return order


def _config(tmp_path: Path) -> Config:
    return with_overrides(Config(data_dir=tmp_path), ["execution.enable_toxic_time_filtering=false"])


def _order(k: int, strategy: int, symbol: str, side: str, qty: int) -> Order:
    name, book = STRATEGIES[strategy]
    request = OrderRequest(symbol, side, float(qty))
    cid = client_order_id(name, symbol, k, "leg")
    return Order(cid, name, book, "leg", request, k, 40.0 + k, 1.5 * k, updated_ns=k)


def _rows(frame_columns: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    ts, text, numbers, signs = frame_columns
    qty, price, fee, realized, decision, forecast = numbers
    bps = signs * (price / decision - 1.0) * 1e4
    columns = [
        ts.tolist(),
        *text,
        *(c.tolist() for c in (qty, price, fee, realized, decision, forecast, bps)),
    ]
    return list(zip(*columns, strict=True))


_ORDERS = st.lists(
    st.tuples(
        st.integers(0, 2), st.sampled_from(SYMBOLS), st.sampled_from(("buy", "sell")), st.integers(1, 9)
    ),
    min_size=1,
    max_size=5,
)
_STEPS = st.lists(
    st.tuples(st.integers(0, 4), st.sampled_from(UPDATE_KINDS), st.integers(1, 9), st.integers(0, 3)),
    max_size=25,
)


@settings(max_examples=150, deadline=None)
@given(orders=_ORDERS, steps=_STEPS, reprice_at=st.integers(0, 30))
def test_apply_books_like_the_python_rules(
    tmp_path_factory: pytest.TempPathFactory, orders: list[Any], steps: list[Any], reprice_at: int
) -> None:
    cfg = _config(tmp_path_factory.getbasetemp())
    ref = Reference(cfg)
    flow_ledger, flow_slippage, flow_exposure = Ledger(1e6), SlippageModel(cfg), ExposureManager(cfg)
    flow = OrderFlowCore(flow_ledger, flow_exposure, flow_slippage, PRICES.__getitem__)
    pos = np.zeros(len(INDEX))
    flow.start_batch(dict(INDEX), pos)
    # each order twice: one for the reference, one for the flow (their states would move apart otherwise)
    for k, spec in enumerate(orders):
        ref.send(_order(k, *spec))
        flow.send(_order(k, *spec))
        if k % 2:  # priced again, at a price given
            cid = _order(k, *spec).client_order_id
            ref.add_pending(ref.orders[cid], 0.0, 45.0)
            flow.add_pending(flow.orders[cid], 0.0, 45.0)
    for t, (which, kind, qty, fee) in enumerate(steps):
        if t == reprice_at:
            ref.repricing, flow.repricing = {}, {}
        cid = list(ref.orders)[which % len(ref.orders)]
        order = ref.orders[cid]
        leaves = order.request.qty - order.filled_qty  # 0 once filled: a fill then is refused
        fill_qty = float(min(qty, leaves)) if kind == "partial_fill" else float(leaves)
        if kind == "partial_fill" and fill_qty == leaves and leaves > 1:
            fill_qty = leaves - 1  # a partial fill leaves shares open
        is_fill = kind in ("fill", "partial_fill")
        u = OrderUpdate(
            1_000 + t,
            cid,
            order.symbol,
            order.request.side,
            kind,
            qty=fill_qty if is_fill else 0.0,
            price=30.0 + t if is_fill else 0.0,
            fee=0.25 * fee if is_fill else 0.0,
            reason="why" if kind in ("canceled", "rejected") else "",
        )
        try:
            want = ref.apply(u)
        except StateError as e:
            with pytest.raises(StateError, match="^" + re.escape(str(e)) + "$"):
                flow.apply(u)
            continue
        got = flow.apply(u)
        assert got == want
    unknown = OrderUpdate(9, "nope", "AAA", "buy", "accepted")
    with pytest.raises(StateError, match=r"^broker update for unknown order nope \(accepted\)$"):
        flow.apply(unknown)
    assert flow.orders == ref.orders and list(flow.sent.items()) == list(ref.sent.items())
    assert list(flow.open) == list(ref.open)
    assert {k: list(g) for k, g in flow.open_by.items()} == {k: list(g) for k, g in ref.open_by.items()}
    for name, symbol in {(o.strategy, o.symbol) for o in ref.orders.values()}:
        group = list(ref.open_by.get((name, symbol), {}).values())
        assert flow.open_orders(name, symbol) == group
        assert flow.open_shares(name, symbol) == sum(o.sign * o.leaves_qty for o in group)
    assert flow.repricing == ref.repricing
    assert pos.tolist() == ref.pos.tolist()
    assert _rows(flow.fill_columns()) == ref.fills
    assert _rows(flow.fill_columns(1)) == ref.fills[1:]
    assert flow.n_fills == len(ref.fills)
    assert flow_ledger.cash == ref.ledger.cash and flow_ledger.net == ref.ledger.net
    assert flow_ledger.positions().equals(ref.ledger.positions())
    assert flow_slippage.to_json() == ref.slippage.to_json()
    for _, book in STRATEGIES:
        assert sorted(flow_exposure.positions(book)) == sorted(ref.exposure.positions(book))
    orders_sent, ranks = flow.ranked()
    assert orders_sent == list(ref.orders.values()) and ranks.tolist() == list(ref.sent.values())
    final = [c for c, o in ref.orders.items() if not o.is_open and o.decision_ns < 3]  # the fold's rule
    taken_orders, ranks = flow.take_final(3)
    assert [o.client_order_id for o in taken_orders] == final and ranks.tolist() == [
        ref.sent[c] for c in final
    ]
    assert list(flow.orders) == list(flow.sent) == [c for c in ref.orders if c not in final]
    taken = flow.take_fills()
    assert _rows(taken) == ref.fills and flow.n_fills == 0 and _rows(flow.fill_columns()) == []


def test_submit_makes_the_order_and_refuses_a_second_for_the_same_leg(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    slippage, exposure = SlippageModel(cfg), ExposureManager(cfg)
    flow = OrderFlowCore(Ledger(1e6), exposure, slippage, PRICES.__getitem__)
    request = OrderRequest("CCC", "sell", 7.0)
    cid = flow.submit("s1", "intraday", "entry", request, 5, 12.5, math.nan)
    assert cid == client_order_id("s1", "CCC", 5, "entry")
    forecast = slippage.forecast_slippage("CCC", "sell", 7.0, 12.5, 5)
    want = Order(cid, "s1", "intraday", "entry", request, 5, 12.5, forecast, updated_ns=5)
    assert flow.orders == {cid: want} and flow.open == {cid: want} and flow.sent == {cid: 0}
    assert flow.open_orders("s1", "CCC") == [want] and flow.open_orders("s2", "CCC") == []
    assert exposure.position("intraday", "CCC") == (-7.0, 12.5)  # NaN price: the reference price
    with pytest.raises(StateError, match=r"^strategy s1: a second order for leg 'entry' of CCC at 5$"):
        flow.submit("s1", "intraday", "entry", request, 5, 12.5, math.nan)


class _Listening(EmaCross):
    """EmaCross that listens to updates (so the engine makes them, one `OrderUpdate` each), counting them."""

    heard = 0

    def on_update(self, ctx: Context, order: Order, update: OrderUpdate) -> None:
        self.heard += 1


def test_the_backtest_fast_path_books_as_the_updates_do(tmp_path: Path) -> None:
    cfg = with_overrides(_config(tmp_path), ["execution.fills.bar_participation=0.002"])  # partial fills
    bars = generate_market(seed=3, quotes_per_trade=0.0, symbols=6, sessions=2, ticks=False).bars_1m
    fast = run_backtest(cfg, feed=FrameFeed(bars), strategies=[EmaCross(cfg)]).result
    listening = _Listening(cfg)
    slow = run_backtest(cfg, feed=FrameFeed(bars), strategies=[listening]).result
    partial = fast.orders["filled_qty"] < fast.orders["qty"]
    assert fast.fills.height > 20 and partial.any() and (fast.orders["filled_qty"] > 0).any()
    assert listening.heard >= fast.fills.height  # the slow run did go through OrderUpdates
    assert fast.orders.equals(slow.orders)
    assert fast.fills.equals(slow.fills)
    assert fast.equity.equals(slow.equity)
    assert fast.positions.equals(slow.positions)
    assert fast.skipped == slow.skipped and fast.events == slow.events


class _WatchingBroker(SimBroker):
    """A SimBroker subclass that watches `submit` (so `submit_from` must call it)."""

    def __init__(self, simulator: FillSimulator) -> None:
        super().__init__(simulator)
        self.submitted: list[str] = []

    def submit(self, client_order_id: str, request: OrderRequest, ts_ns: int) -> None:
        self.submitted.append(client_order_id)
        super().submit(client_order_id, request, ts_ns)


def test_submit_from_places_the_order_as_submit_then_the_broker_do(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    requests = [
        OrderRequest("AAA", "buy", 30.0),
        OrderRequest("BBB", "sell", 5.0, "limit", "gtc", limit_price=19.5),
        OrderRequest("AAA", "sell", 7.0, "stop", "day", stop_price=48.0),
        OrderRequest("CCC", "buy", 2.0, "market", "opg"),
    ]
    now = 1_704_207_600_000_000_000  # 2024-01-02 15:00 UTC, in a session
    runs = []
    for broker_type, one_call in ((SimBroker, True), (SimBroker, False), (_WatchingBroker, True)):
        slippage = SlippageModel(cfg)
        broker = broker_type(FillSimulator(FillSettings(), slippage))
        flow = OrderFlowCore(Ledger(1e6), ExposureManager(cfg), slippage, PRICES.__getitem__)
        for k, r in enumerate(requests):
            args = ("s1", "intraday", f"leg{k}", r, now + k, 20.0, 20.0)
            if one_call:
                cid = broker.submit_from(flow, *args)
            else:
                cid = flow.submit(*args)
                broker.submit(cid, r, now + k)
            assert cid == client_order_id("s1", r.symbol, now + k, f"leg{k}")
        runs.append((flow.orders, broker.sim.orders(), broker.has_open_orders(), broker))
    (one, sim_one, open_one, _), (two, sim_two, open_two, _), (three, sim_three, _, watching) = runs
    assert one == two == three and open_one and open_two
    assert sim_one.equals(sim_two) and sim_one.equals(sim_three) and sim_one.height == len(requests)
    assert watching.submitted == list(three)
