"""The ledger against hand-computed positions, cash, P&L and fees."""

from __future__ import annotations

import pytest
from hybridtrader.errors import DataError
from hybridtrader.portfolio.ledger import Ledger
from hypothesis import given, settings
from hypothesis import strategies as st


def test_round_trip_long_then_short_by_hand() -> None:
    led = Ledger(10_000.0)
    assert led.apply_fill("s", "AAA", "buy", 100, 10.0, 1.0) == 0.0
    assert led.apply_fill("s", "AAA", "buy", 100, 12.0, 1.0) == 0.0
    # average 11.00 on 200 shares; cash 10000 - 1000 - 1200 - 2
    assert led.cash == pytest.approx(7_798.0)
    led.mark("AAA", 13.0)
    assert led.unrealized() == pytest.approx(200 * 2.0)
    assert led.equity() == pytest.approx(7_798.0 + 200 * 13.0)
    assert led.totals() == pytest.approx((7_798.0 + 2_600.0, 2_600.0, 2_600.0))
    # sell 300: closes 200 at 12.5 (realised 200 x 1.5 = 300) and opens a 100 short at 12.5
    assert led.apply_fill("s", "AAA", "sell", 300, 12.5, 1.5) == pytest.approx(300.0)
    assert led.position("AAA") == -100
    assert led.book[("s", "AAA")].avg_price == 12.5
    led.mark("AAA", 12.0)
    assert led.unrealized() == pytest.approx(100 * 0.5)
    assert led.fees() == pytest.approx(3.5)
    # identity: realised + unrealised - fees = equity - starting cash
    assert led.realized() + led.unrealized() - led.fees() == pytest.approx(led.equity() - 10_000.0)
    pos = led.positions()
    assert pos.row(0, named=True)["bought"] == pytest.approx(2_200.0)
    assert pos.row(0, named=True)["sold"] == pytest.approx(3_750.0)


def test_strategies_keep_their_own_positions() -> None:
    led = Ledger(1_000.0)
    led.apply_fill("a", "X", "buy", 10, 5.0, 0.0)
    led.apply_fill("b", "X", "sell", 4, 5.0, 0.0)
    assert led.position("X", "a") == 10 and led.position("X", "b") == -4 and led.position("X") == 6


def test_bad_fills_are_refused() -> None:
    led = Ledger(1_000.0)
    with pytest.raises(DataError, match="side"):
        led.apply_fill("s", "X", "short", 1, 1.0, 0.0)
    with pytest.raises(DataError, match="bad fill"):
        led.apply_fill("s", "X", "buy", 1, -1.0, 0.0)
    with pytest.raises(DataError, match="starting cash"):
        Ledger(0.0)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["buy", "sell"]), st.integers(1, 500), st.floats(1.0, 200.0),
                          st.floats(0.0, 5.0)), min_size=1, max_size=30),
       st.floats(1.0, 200.0))  # fmt: skip
def test_pnl_identity_holds_for_any_fills(fills: list[tuple[str, int, float, float]], mark: float) -> None:
    led = Ledger(1e6)
    for side, qty, price, fee in fills:
        led.apply_fill("s", "X", side, qty, price, fee)
    led.mark("X", mark)
    net = sum(q if s == "buy" else -q for s, q, _, _ in fills)
    assert led.position("X") == pytest.approx(net)
    assert led.realized() + led.unrealized() - led.fees() == pytest.approx(led.equity() - 1e6, abs=1e-6)


def _reference(
    fills: list[tuple[str, str, str, float, float, float]],
) -> tuple[float, dict, dict, list[float]]:
    """Average-cost bookkeeping written out plainly: cash, (strategy, symbol) -> [qty, avg, realised, fees,
    bought, sold], the account's nonzero shares per symbol, and each fill's realised P&L."""
    cash, book, net, realized = 1e6, {}, {}, []
    for strategy, symbol, side, qty, price, fee in fills:
        q, avg, real, fees, bought, sold = book.get((strategy, symbol), [0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
        signed = qty if side == "buy" else -qty
        r = 0.0
        if q == 0 or (q > 0) == (signed > 0):  # opens or adds: weighted average price
            avg = (avg * abs(q) + price * qty) / abs(q + signed)
            q += signed
        else:  # reduces, closes or crosses zero
            r = (price - avg) * min(qty, abs(q)) * (1.0 if q > 0 else -1.0)
            q += signed
            if abs(q) < 1e-9:
                q, avg = 0.0, 0.0
            elif (q > 0) == (signed > 0):
                avg = price  # the remainder opens at the fill price
        if side == "buy":
            bought += qty * price
        else:
            sold += qty * price
        book[(strategy, symbol)] = [q, avg, real + r, fees + fee, bought, sold]
        cash -= signed * price + fee
        shares = net.pop(symbol, 0.0) + signed
        if abs(shares) >= 1e-9:
            net[symbol] = shares
        realized.append(r)
    return cash, book, net, realized


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["s1", "s2"]),
            st.sampled_from(["X", "Y"]),
            st.sampled_from(["buy", "sell"]),
            st.sampled_from([0.5, 1.0, 3.0, 100.0, 250.0]),
            st.floats(1.0, 200.0),
            st.sampled_from([0.0, 0.35, 1.0]),
        ),
        max_size=40,
    )
)
def test_booking_matches_a_plain_restatement(fills: list[tuple[str, str, str, float, float, float]]) -> None:
    """Buys, sells, crossing zero, fractional shares and fees across strategies and symbols: every figure the
    ledger keeps equals the plain re-statement's, bit for bit."""
    led = Ledger(1e6)
    realized = [led.apply_fill(*f) for f in fills]
    cash, book, net, expected = _reference(fills)
    assert realized == expected and led.cash == cash and led.net == net
    got = {k: [p.qty, p.avg_price, p.realized, p.fees, p.bought, p.sold] for k, p in led.book.items()}
    assert got == book
    assert led.marks == {s: next(f[4] for f in fills if f[1] == s) for s in {f[1] for f in fills}}
