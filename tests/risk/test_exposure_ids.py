"""`ExposureManager.max_allowed_qty` and `mark_ids` against references: a linear scan of `check_order`, and
`mark_price` per pair."""

from __future__ import annotations

import numpy as np
import pytest
from hybridtrader.risk.exposure_manager import ExposureManager
from hypothesis import given, settings
from hypothesis import strategies as st

CAPS = {
    "risk": {
        "max_gross_exposure_pct_intraday": 50,
        "exposure": {
            "books": {
                "intraday": {
                    "max_net_exposure_pct": 25,
                    "max_symbol_exposure_pct": 10,
                    "max_sector_exposure_pct": 20,
                    "max_order_notional": 20_000,
                    "max_open_positions": 3,
                }
            }
        },
    }
}


def _manager(held: list[tuple[str, float, float]]) -> ExposureManager:
    m = ExposureManager(CAPS)
    m.set_equity(100_000.0)
    for sym, qty, price in held:
        m.update_position("intraday", sym, qty, price)
    return m


@settings(max_examples=60, deadline=None)
@given(
    held=st.lists(
        st.tuples(
            st.sampled_from(["A", "B", "C", "D"]),
            st.integers(-200, 200).map(float),
            st.floats(5.0, 200.0).map(lambda p: round(p, 2)),
        ),
        max_size=4,
    ),
    symbol=st.sampled_from(["A", "B", "E"]),
    side=st.sampled_from(["buy", "sell"]),
    qty=st.integers(-5, 400),
    price=st.floats(5.0, 200.0).map(lambda p: round(p, 2)),
)
def test_max_allowed_qty_is_the_largest_quantity_check_order_allows(
    held: list[tuple[str, float, float]], symbol: str, side: str, qty: int, price: float
) -> None:
    m = _manager(held)
    allowed = [q for q in range(1, qty + 1) if m.check_order(symbol, side, float(q), price, "intraday")[0]]
    assert m.max_allowed_qty(symbol, side, qty, price, "intraday") == max(allowed, default=0)


def test_max_allowed_qty_rejects_a_bad_price() -> None:
    with pytest.raises(ValueError, match="price"):
        _manager([]).max_allowed_qty("A", "buy", 10, float("nan"), "intraday")


def test_mark_ids_is_mark_price_per_pair_and_an_error_changes_nothing() -> None:
    held = [("A", 10.0, 100.0), ("B", -5.0, 20.0)]
    one, ids = _manager(held), _manager(held)
    pairs = [("A", 101.0), ("unknown", 3.0), ("B", 21.5), ("A", 102.0)]
    for sym, price in pairs:
        one.mark_price(sym, price)
    codes = ids.symbol_ids([s for s, _ in pairs])
    assert codes.dtype == np.uint32 and codes[1] == np.iinfo(np.uint32).max  # unknown: nothing to mark
    ids.mark_ids(codes, np.array([p for _, p in pairs]))
    assert ids.metrics("intraday") == one.metrics("intraday")
    assert ids.positions("intraday") == one.positions("intraday")
    with pytest.raises(ValueError, match="symbol B: price must be finite"):
        ids.mark_ids(ids.symbol_ids(["A", "B"]), np.array([50.0, float("nan")]))
    assert ids.position("intraday", "A") == (10.0, 102.0)  # A not re-marked either
    with pytest.raises(ValueError, match="2 ids but 1 prices"):
        ids.mark_ids(ids.symbol_ids(["A", "B"]), np.array([50.0]))
