"""SimBroker's symbol codes of a batch from the batch's encoding (`BarBatch.symbol_index`) against the
simulator's own codes, given each batch's distinct names in sorted order as before."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import polars as pl
from hybridtrader.backtest.broker import SimBroker
from hybridtrader.engine.orders import OrderRequest
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


def test_on_bars_without_an_index_encodes_the_symbols_itself() -> None:
    """A caller without the batch's encoding (not the engine) gets the same simulator codes: a buy of the
    batch's second symbol fills at that symbol's open, reported under its name."""
    minute = 60_000_000_000
    t0 = int(datetime(2024, 1, 2, 14, 31, tzinfo=UTC).timestamp()) * 1_000_000_000  # 09:31 New York
    rows = [("MSFT", t0, 20.0), ("AAPL", t0, 10.0), ("AAPL", t0 + minute, 11.0), ("MSFT", t0 + minute, 21.0)]
    frame = pl.DataFrame(
        {
            "symbol": [r[0] for r in rows],
            "ts": pl.Series([r[1] for r in rows]).cast(pl.Datetime("ns", "UTC")),
            **{c: [r[2] for r in rows] for c in ("open", "high", "low", "close")},
            "volume": [1e6] * len(rows),
        }
    )
    broker = SimBroker(FillSimulator())
    broker.on_bars(frame, minute)
    assert broker._names == ["AAPL", "MSFT"]
    broker.submit("b1", OrderRequest("MSFT", "buy", 10), t0)
    fills = [u for u in broker.poll(t0 + 3 * minute) if u.kind == "fill"]
    assert [(u.symbol, u.price) for u in fills] == [("MSFT", 21.0)]
