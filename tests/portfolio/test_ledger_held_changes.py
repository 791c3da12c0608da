"""`Ledger.held_changes` counts every time a symbol enters or leaves the account's held set (`net`), checked
over random fill sequences against the membership changes observed from outside."""

from __future__ import annotations

from hybridtrader.portfolio.ledger import Ledger
from hypothesis import given, settings
from hypothesis import strategies as st

FILLS = st.lists(
    st.tuples(
        st.sampled_from(["s1", "s2"]), st.sampled_from(["A", "B", "C"]), st.sampled_from(["buy", "sell"]),
        st.integers(1, 3),
    ),
    max_size=40,
)  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(FILLS)
def test_held_changes_counts_entries_and_exits(fills: list[tuple[str, str, str, int]]) -> None:
    ledger = Ledger(1e6)
    expected = 0
    for strategy, symbol, side, qty in fills:
        before = set(ledger.net)
        ledger.apply_fill(strategy, symbol, side, float(qty), 10.0, 0.0)
        expected += len(before ^ set(ledger.net))
        assert ledger.held_changes == expected
    # the held set is the symbols whose strategies' positions do not sum to zero
    sums: dict[str, float] = {}
    for (_, symbol), p in ledger.book.items():
        sums[symbol] = sums.get(symbol, 0.0) + p.qty
    assert set(ledger.net) == {s for s, q in sums.items() if q != 0}
