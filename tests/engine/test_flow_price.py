"""`OrderFlowCore.price` (the engine's current price of a symbol, `Trader.price`) against the rule restated
in Python: with a batch's closes, the close of the symbol's column at the bar time the flow is at, else (no
column, or NaN: no bar yet) the ledger's mark, else NaN; before a batch gives closes, the constructor's
price function."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hybridtrader._core import OrderFlowCore
from hybridtrader.config import Config
from hybridtrader.execution.slippage_model import SlippageModel
from hybridtrader.portfolio.ledger import Ledger
from hybridtrader.risk.exposure_manager import ExposureManager
from hypothesis import given, settings
from hypothesis import strategies as st

SYMBOLS = ("AAA", "BBB", "CCC", "DDD")


def _reference(
    symbol: str, index: dict[str, int], closes: np.ndarray, row: int, marks: dict[str, float]
) -> float:
    if symbol not in index:
        return marks.get(symbol, math.nan)
    px = float(closes[row, index[symbol]])
    return px if px == px else marks.get(symbol, math.nan)


@settings(max_examples=100, deadline=None)
@given(
    columns=st.lists(st.sampled_from(SYMBOLS), unique=True, max_size=3),
    rows=st.integers(1, 5),
    marked=st.lists(st.sampled_from(SYMBOLS), unique=True),
    seed=st.integers(0, 2**32 - 1),
)
def test_price_is_the_close_at_the_row_else_the_mark_else_nan(
    tmp_path_factory: pytest.TempPathFactory, columns: list[str], rows: int, marked: list[str], seed: int
) -> None:
    rng = np.random.default_rng(seed)
    cfg = Config(data_dir=tmp_path_factory.getbasetemp())
    ledger = Ledger(1e6)
    for symbol in marked:
        ledger.mark(symbol, float(rng.uniform(1, 100)))
    before = {"AAA": 7.0}
    flow = OrderFlowCore(ledger, ExposureManager(cfg), SlippageModel(cfg), lambda s: before.get(s, math.nan))
    assert flow.price("AAA") == 7.0 and math.isnan(flow.price("BBB"))  # no batch yet: the function
    index = {s: j for j, s in enumerate(columns)}
    closes = rng.uniform(1, 100, (rows, len(columns)))
    closes[rng.random(closes.shape) < 0.3] = np.nan  # no bar yet
    flow.start_batch(index, np.zeros(len(columns)), closes)
    for row in range(rows):
        flow.row = row
        for symbol in SYMBOLS:
            want = _reference(symbol, index, closes, row, ledger.marks)
            got = flow.price(symbol)
            assert got == want or (math.isnan(got) and math.isnan(want))
