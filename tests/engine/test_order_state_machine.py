"""The order state machine against an independent table of Alpaca's order lifecycle, over random event
sequences (hypothesis), and the deterministic client order ids."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import pytest
from hybridtrader._core import order_columns
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


def _fields(order: Order) -> tuple[object, ...]:
    return (order.status, order.filled_qty, order.notional, order.fees, order.updated_ns, order.reason,
            order.history, order.leaves_qty, order.is_open)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([*UPDATE_KINDS, "filled", "pending_new"]),  # two names that are no update kind
            st.sampled_from([0.0, 0.25, 1.5, 2.5, 5.0, 10.0, 11.0, -1.0]),
            st.sampled_from([99.5, 100.0, 101.25]),
            st.sampled_from(["", "why"]),
        ),
        max_size=10,
    )
)
def test_every_update_is_all_or_nothing(events: list[tuple[str, float, float, str]]) -> None:
    """Fractional fills, foreign kinds, bad quantities: a refused update changes no field (history and
    reason included); an accepted one moves each field as the lifecycle and the fill arithmetic say, and
    returns the change of leaves_qty."""
    order = _order()
    for ts, (kind, qty, price, reason) in enumerate(events, start=1):
        before = _fields(order)
        nxt = LEGAL.get((order.status, kind))
        filled = order.filled_qty + qty
        is_fill = kind in ("partial_fill", "fill")
        complete = abs(filled - QTY) <= 1e-9
        legal = nxt is not None and (
            not is_fill or (qty > 0 and filled <= QTY + 1e-9 and complete == (kind == "fill"))
        )
        update = OrderUpdate(ts, "cid", "AAA", "buy", kind, qty=qty, price=price, fee=0.01, reason=reason)
        if not legal:
            with pytest.raises(StateError, match=r"^order cid: "):
                order.apply(update)
            assert _fields(order) == before
            continue
        change = order.apply(update)
        _, old_filled, notional, fees, _, old_reason, history, leaves, _ = before
        assert order.status == nxt and order.updated_ns == ts
        assert order.history == [*history, kind]
        assert order.reason == (reason or old_reason)
        assert order.filled_qty == (filled if is_fill else old_filled)
        assert order.notional == (notional + qty * price if is_fill else notional)
        assert order.fees == (fees + 0.01 if is_fill else fees)
        assert change == order.leaves_qty - leaves
        assert order.is_open == (nxt in ("accepted", "partially_filled"))


def test_refusals_name_the_order_and_what_is_wrong() -> None:
    order = _order()
    with pytest.raises(StateError, match=r"^order cid: illegal transition new -> filled$"):
        order.apply(_update("filled"))
    with pytest.raises(StateError, match=r"^order cid: fill -1\.0 makes -1\.0 of 10\.0$"):
        order.apply(_update("partial_fill", -1.0))
    with pytest.raises(StateError, match=r"^order cid: fill leaves 6\.0 open$"):
        order.apply(_update("fill", 4.0))
    with pytest.raises(StateError, match=r"^order cid: partial_fill leaves 0\.0 open$"):
        order.apply(_update("partial_fill", 10.0))
    assert _fields(order) == ("new", 0.0, 0.0, 0.0, 0, "", [], QTY, True)


def test_orders_compare_by_value_and_copy_their_request_fields() -> None:
    r = OrderRequest("AAA", "sell", 3.0)
    a = Order("x", "s", "swing", "flip", r, 5, 10.0, 1.5, updated_ns=5)
    assert (a.symbol, a.sign, a.decision_ns, a.updated_ns) == ("AAA", -1, 5, 5)
    assert a == Order("x", "s", "swing", "flip", OrderRequest("AAA", "sell", 3.0), 5, 10.0, 1.5, updated_ns=5)
    assert a != Order("x", "s", "swing", "flip", r, 5, 10.0, 1.5)  # another updated_ns
    b = Order("x", "s", "swing", "flip", r, 5, 10.0, 1.5, updated_ns=5)
    b.apply(OrderUpdate(6, "x", "AAA", "sell", "accepted"))
    assert a != b and b.history == ["accepted"]
    with pytest.raises(ValueError, match="unknown update kind"):
        Order("x", "s", "swing", "flip", r, 5, 10.0, 1.5, history=["done"])


def test_order_columns_match_each_orders_fields() -> None:
    orders = [
        Order("a", "s1", "intraday", "entry", OrderRequest("AAA", "buy", 10.0), 1, 100.0, 2.0, updated_ns=1),
        Order(
            "b", "s2", "swing", "exit", OrderRequest("BBB", "sell", 4.0, "limit", "day", 9.5), 2, 9.0, -1.0
        ),
    ]
    orders[0].apply(OrderUpdate(3, "a", "AAA", "buy", "partial_fill", qty=4.0, price=101.0, fee=0.5))
    orders[1].apply(OrderUpdate(4, "b", "BBB", "sell", "canceled", reason="user"))
    text, numbers, (decision_ns, updated_ns), signs = order_columns(orders)
    names = ("client_order_id", "strategy", "book", "leg", "status", "reason")
    requested = ("symbol", "side", "type", "time_in_force", "limit_price", "stop_price")
    expected = [[getattr(o, n) for o in orders] for n in names]
    expected += [[getattr(o.request, n) for o in orders] for n in requested]
    assert [list(c) for c in text] == expected
    floats = ("decision_price", "forecast_bps", "filled_qty", "notional", "fees")
    assert [list(c) for c in numbers] == [[o.request.qty for o in orders]] + [
        [getattr(o, n) for o in orders] for n in floats
    ]
    assert list(decision_ns) == [1, 2] and list(updated_ns) == [3, 4] and list(signs) == [1, -1]
    dtypes = [c.dtype.name for c in (*numbers, decision_ns, updated_ns, signs)]
    assert dtypes == ["float64"] * 6 + ["int64"] * 3


@settings(max_examples=300, deadline=None)
@given(
    st.text(max_size=200),
    st.text(min_size=1, max_size=12),
    st.integers(-(2**63), 2**63 - 1),
    st.text(max_size=40),
)
def test_client_order_ids_are_blake2b_of_the_four_fields(
    strategy: str, symbol: str, ns: int, leg: str
) -> None:
    """Against hashlib: any text (multi-byte UTF-8, keys past one 128-byte block), any int64 time."""
    key = f"{strategy}\x1f{symbol}\x1f{ns}\x1f{leg}".encode()
    assert (
        client_order_id(strategy, symbol, ns, leg) == "ht-" + hashlib.blake2b(key, digest_size=16).hexdigest()
    )
