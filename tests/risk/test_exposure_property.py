"""Property: any random stream of orders, applying only the allowed ones, never takes a book past a cap it
was within; and risk-reducing orders are refused only when they would do exactly that. Book metrics are
recomputed independently in Python from the applied positions (each valued at its last fill or mark)."""

from __future__ import annotations

from collections import defaultdict

from hybridtrader.risk.exposure_manager import ExposureManager
from hypothesis import given, settings
from hypothesis import strategies as st

BOOKS = {
    # gross, net, symbol, sector (% of equity), order notional, open positions
    "intraday": (50.0, 30.0, 12.0, 25.0, 15_000.0, 4),
    "swing": (100.0, 60.0, 20.0, 45.0, 40_000.0, 5),
}
CONFIG = {
    "risk": {
        "max_gross_exposure_pct_intraday": BOOKS["intraday"][0],
        "max_gross_exposure_pct_swing": BOOKS["swing"][0],
        "exposure": {
            "books": {
                name: {
                    "max_net_exposure_pct": c[1],
                    "max_symbol_exposure_pct": c[2],
                    "max_sector_exposure_pct": c[3],
                    "max_order_notional": c[4],
                    "max_open_positions": c[5],
                }
                for name, c in BOOKS.items()
            }
        },
    }
}
SECTORS = {"S0": "Tech", "S1": "Tech", "S2": "Tech", "S3": "Energy", "S4": "Energy", "S5": None, "S6": None}
NOT_SHORTABLE = {"S2", "S6"}

symbols = st.sampled_from(sorted(SECTORS))
orders = st.tuples(
    st.just("order"),
    st.sampled_from(sorted(BOOKS)),
    symbols,
    st.sampled_from(["buy", "sell"]),
    st.one_of(st.integers(1, 400).map(float), st.integers(1, 40_000).map(lambda c: c / 100)),
    st.integers(100, 30_000).map(lambda c: c / 100),
)
ops = st.lists(
    st.one_of(
        orders,
        orders,
        orders,
        orders,
        st.tuples(st.just("equity"), st.integers(10_000, 300_000).map(float)),
        st.tuples(st.just("mark"), symbols, st.integers(100, 30_000).map(lambda c: c / 100)),
        st.tuples(st.just("state"), st.sampled_from(["ACTIVE", "ACTIVE", "REDUCING"])),
    ),
    min_size=1,
    max_size=120,
)


def snap(new: float, old: float) -> float:
    return 0.0 if abs(new) <= 1e-9 * max(1.0, abs(old)) else new


def metrics(pos: dict[str, tuple[float, float]]) -> dict[str, float]:
    """Every capped quantity of one book, in account currency (open positions as a count)."""
    out: dict[str, float] = defaultdict(float)
    for sym, (q, p) in pos.items():
        if q == 0:
            continue
        mv = q * p
        out["gross"] += abs(mv)
        out["net"] += mv
        out[f"symbol:{sym}"] = abs(mv)
        if SECTORS[sym] is not None:
            out[f"sector:{SECTORS[sym]}"] += abs(mv)
        out["open"] += 1
    out["net"] = abs(out["net"])
    return out


def cap_of(book: str, key: str, equity: float) -> float:
    gross, net, sym, sector, _, open_ = BOOKS[book]
    if key == "open":
        return open_
    pct = {"gross": gross, "net": net}.get(key) or (sym if key.startswith("symbol:") else sector)
    return pct / 100 * equity


def takes_a_cap_past(book: str, equity: float, before: dict, after: dict, tol: float) -> bool:
    """True when some metric goes from clearly within its cap to clearly past it."""
    for key in set(before) | set(after):
        cap, slack = cap_of(book, key, equity), (0 if key == "open" else tol)
        if after[key] > cap + slack and before[key] <= cap - slack:
            return True
    return False


@settings(max_examples=150, deadline=None)
@given(ops)
def test_allowed_orders_never_breach_a_cap_that_held(stream: list[tuple]) -> None:
    m = ExposureManager(CONFIG)
    m.set_sectors(SECTORS)
    for s in NOT_SHORTABLE:
        m.set_shortable(s, False)
    equity = 100_000.0
    m.set_equity(equity)
    state = "ACTIVE"
    model: dict[str, dict[str, tuple[float, float]]] = {b: {} for b in BOOKS}
    for op in stream:
        if op[0] == "equity":
            equity = op[1]
            m.set_equity(equity)
            continue
        if op[0] == "mark":
            _, sym, price = op
            m.mark_price(sym, price)
            for book in model.values():
                if book.get(sym, (0.0, 0.0))[0] != 0:
                    book[sym] = (book[sym][0], price)
            continue
        if op[0] == "state":
            state = op[1]
            m.set_state(state, "property test")
            continue
        _, book, sym, side, qty, price = op
        pos = model[book]
        old = pos.get(sym, (0.0, 0.0))[0]
        new = snap(old + (qty if side == "buy" else -qty), old)
        reducing = old != 0 and new * old >= 0 and abs(new) < abs(old)
        before = metrics(pos)
        after = metrics({**pos, sym: (new, price)})
        tol = 0.01 * (before["open"] + after["open"] + 2)

        allowed, reason = m.check_order(sym, side, qty, price, book)
        assert isinstance(reason, str) and reason
        if reducing and not takes_a_cap_past(book, equity, before, after, tol):
            assert allowed, f"risk-reducing order refused: {reason}"
        if not allowed:
            continue
        assert (allowed, reason) == (True, "ok")
        if state == "REDUCING":
            assert reducing
        if sym in NOT_SHORTABLE and new < 0:
            assert reducing, "a short on a non-shortable symbol was opened or increased"
        assert qty * price <= BOOKS[book][4] + 0.01 or reducing
        m.apply_fill(book, sym, side, qty, price)
        pos[sym] = (new, price)
        for key in set(before) | set(after):
            cap = cap_of(book, key, equity)
            slack = 0 if key == "open" else tol
            if before[key] <= cap - slack:
                assert after[key] <= cap + slack, (
                    f"{book} {key}: {before[key]:.2f} -> {after[key]:.2f} past cap {cap:.2f} "
                    f"after {side} {qty} {sym} @ {price}"
                )
        # the manager's running sums agree with the independent recomputation
        got = m.metrics(book)
        assert abs(got["gross"] - after["gross"]) <= tol
        assert abs(abs(got["net"]) - after["net"]) <= tol
        assert got["open_positions"] == after["open"]
        assert m.position(book, sym) == ((new, price) if new != 0 else (0.0, 0.0))


@settings(max_examples=200, deadline=None)
@given(
    values=st.dictionaries(
        st.sampled_from("ABCDE"), st.integers(-2_000_000, 2_000_000).map(lambda c: c / 100)
    ),
    sym=st.sampled_from("ABCDEF"),
    order=st.integers(-3_000_000, 3_000_000).filter(bool).map(lambda c: c / 100),
    equity=st.integers(1_000, 200_000).map(float),
)
def test_stateless_check_matches_the_stateful_one(
    values: dict[str, float], sym: str, order: float, equity: float
) -> None:
    """check_exposure_limits over market values == check_order on the same positions held at price 1."""
    m = ExposureManager(CONFIG)
    m.set_equity(equity)
    for s, v in values.items():
        m.update_position("intraday", s, v, 1.0)
    stateless = m.check_exposure_limits(equity, values, order, "intraday", symbol=sym)
    stateful = m.check_order(sym, "buy" if order > 0 else "sell", abs(order), 1.0, "intraday")
    assert stateless == stateful
