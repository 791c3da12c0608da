"""SimBroker's symbol codes of a batch from the batch's encoding (`BarBatch.symbol_index`) against the
simulator's own codes, given each batch's distinct names in sorted order as before."""

from __future__ import annotations

import numpy as np
import polars as pl
from hybridtrader.backtest.broker import SimBroker
from hybridtrader.execution.fills import FillSimulator
from hypothesis import given, settings
from hypothesis import strategies as st

SYMBOLS = ["AAPL", "B", "CC", "MSFT", "Z"]


def _encoding(rows: list[str]) -> tuple[list[str], np.ndarray]:
    """A straightforward encoding: sorted distinct names and each row's position in them."""
    names = sorted(set(rows))
    return names, np.array([names.index(s) for s in rows], dtype=np.intp)


@settings(max_examples=100, deadline=None)
@given(batches=st.lists(st.lists(st.sampled_from(SYMBOLS), min_size=1, max_size=30), min_size=1, max_size=5))
def test_batch_codes_are_the_simulators_codes(batches: list[list[str]]) -> None:
    broker = SimBroker(FillSimulator())
    reference = FillSimulator()
    for rows in batches:
        column = pl.Series("symbol", rows)
        codes = broker._symbol_codes(*_encoding(rows))
        reference.symbol_codes(pl.Series(sorted(set(rows))))  # what the simulator was given before
        assert codes.dtype == np.uint32
        assert codes.tolist() == reference.symbol_codes(column).tolist()
        assert [broker._names[c] for c in codes] == rows  # the updates' symbols by code
