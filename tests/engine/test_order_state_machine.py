"""The order state machine against an independent table of Alpaca's order lifecycle, over random event
sequences (hypothesis), and the deterministic client order ids."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hybridtrader.engine.events import UPDATE_KINDS, OrderUpdate
from hybridtrader.engine.orders import MAX_CLIENT_ORDER_ID, Order, OrderRequest, client_order_id
from hybridtrader.errors import ConfigError, StateError
from hypothesis import given, settings
from hypothesis import strategies as st

# (state, event) -> next state, written out by hand from the lifecycle (not from the module's table)
LEGAL = {
    ("new", "accepted"): "accepted",
    ("new", "rejected"): "rejected",
    **{(s, "partial_fill"): "partially_filled" for s in ("new", "accepted", "partially_filled")},
    **{(s, "fill"): "filled" for s in ("new", "accepted", "partially_filled")},
    **{(s, "canceled"): "canceled" for s in ("new", "accepted", "partially_filled")},
    **{(s, "expired"): "expired" for s in ("new", "accepted", "partially_filled")},
    **{(s, "replaced"): "replaced" for s in ("new", "accepted", "partially_filled")},
}
QTY = 10.0


def _order() -> Order:
    return Order("cid", "s", "intraday", "entry", OrderRequest("AAA", "buy", QTY), 0, 100.0, 0.0)


def _update(kind: str, qty: float = 0.0, ts: int = 1) -> OrderUpdate:
    return OrderUpdate(ts, "cid", "AAA", "buy", kind, qty=qty, price=100.0 if qty else 0.0)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(UPDATE_KINDS), st.integers(1, 12)), max_size=8))
def test_random_event_sequences_follow_the_lifecycle(events: list[tuple[str, int]]) -> None:
    order = _order()
    for kind, shares in events:
        qty = float(shares) if kind in ("partial_fill", "fill") else 0.0
        if kind == "fill":
            qty = QTY - order.filled_qty  # a fill completes the order
        before = (order.status, order.filled_qty)
        nxt = LEGAL.get((order.status, kind))
        fills_ok = kind not in ("partial_fill", "fill") or (
            qty > 0 and (order.filled_qty + qty < QTY if kind == "partial_fill" else True)
        )
        if nxt is not None and fills_ok:
            order.apply(_update(kind, qty))
            assert order.status == nxt
        else:
            with pytest.raises(StateError):
                order.apply(_update(kind, qty))
            assert (order.status, order.filled_qty) == before  # an illegal update changes nothing
        assert 0.0 <= order.filled_qty <= QTY
        assert (order.status == "filled") == (order.filled_qty == QTY)
        assert order.leaves_qty == (QTY - order.filled_qty if order.is_open else 0.0)


def test_fills_accumulate_average_price_and_fees() -> None:
    order = _order()
    order.apply(OrderUpdate(1, "cid", "AAA", "buy", "accepted"))
    order.apply(OrderUpdate(2, "cid", "AAA", "buy", "partial_fill", qty=4, price=100.0, fee=0.1))
    order.apply(OrderUpdate(3, "cid", "AAA", "buy", "fill", qty=6, price=101.0, fee=0.2))
    assert order.avg_price == pytest.approx((4 * 100 + 6 * 101) / 10)
    assert order.fees == pytest.approx(0.3)
    assert order.history == ["accepted", "partial_fill", "fill"]
    with pytest.raises(StateError, match="illegal transition filled -> canceled"):
        order.apply(OrderUpdate(4, "cid", "AAA", "buy", "canceled"))


def test_overfill_and_foreign_updates_are_refused() -> None:
    order = _order()
    with pytest.raises(StateError, match=r"makes 11\.0 of 10\.0"):
        order.apply(_update("partial_fill", 11.0))
    with pytest.raises(StateError, match="update for other"):
        order.apply(OrderUpdate(1, "other", "AAA", "buy", "accepted"))


def test_requests_are_validated() -> None:
    with pytest.raises(ConfigError, match="side"):
        OrderRequest("AAA", "hold", 1)
    with pytest.raises(ConfigError, match="qty"):
        OrderRequest("AAA", "buy", 0)
    with pytest.raises(ConfigError, match="limit_price required"):
        OrderRequest("AAA", "buy", 1, type="limit")
    with pytest.raises(ConfigError, match="stop_price not allowed"):
        OrderRequest("AAA", "buy", 1, type="limit", limit_price=1.0, stop_price=2.0)
    with pytest.raises(ConfigError, match="time_in_force"):
        OrderRequest("AAA", "buy", 1, time_in_force="gtd")


def test_client_order_ids_are_short_distinct_and_stable_across_processes() -> None:
    ids = {client_order_id(s, sym, t, leg) for s in ("a", "b") for sym in ("X", "Y") for t in (1, 2)
           for leg in ("entry", "exit")}  # fmt: skip
    assert len(ids) == 16
    cid = client_order_id("intraday_mean_reversion", "SAAA", 1_704_205_860_000_000_000, "entry.0")
    assert len(cid) <= MAX_CLIENT_ORDER_ID
    code = (
        "from hybridtrader.engine.orders import client_order_id;"
        "print(client_order_id('intraday_mean_reversion', 'SAAA', 1_704_205_860_000_000_000, 'entry.0'))"
    )
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert other.stdout.strip() == cid  # another process (another hash seed) gives the same id
