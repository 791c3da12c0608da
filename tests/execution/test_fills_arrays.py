"""The fill simulator's numpy entry points (`on_bar_arrays`, `drain_by_time`, the engine's per-bar-time path)
against the hand-worked bar case: the same fills as `on_bars`/`drain`, and the raw columns decode to the
same events."""

from __future__ import annotations

import numpy as np
import polars as pl
from helpers import MIN
from hybridtrader._core import FillSimulatorCore
from hybridtrader.execution.fills import FillSettings, FillSimulator
from hybridtrader.market.schema import BAR_SCHEMA

OPEN = 1_704_205_800_000_000_000  # 2024-01-02 14:30 UTC, 09:30 New York
FREE = FillSettings(sec_fee_rate=0.0, taf_per_share=0.0, entry_latency_ms=0.0, ack_latency_ms=0.0)
ROWS = [(OPEN + MIN, 10.5, 10.7, 10.4, 10.6, 109.0), (OPEN + 2 * MIN, 10.6, 10.6, 10.5, 10.5, 160.0)]


def _sim() -> FillSimulator:
    s = FillSimulator(FillSettings(**{**FREE.__dict__, "bar_participation": 0.1}))
    s.submit("mkt", "AAA", "buy", 25, OPEN)
    s.submit("lim", "AAA", "buy", 5, OPEN, type="limit", limit_price=10.4)
    return s


def test_bar_arrays_fill_as_the_frame_path_and_drain_by_time_decodes_to_drain() -> None:
    framed = _sim()
    framed.on_bars(pl.DataFrame([("AAA", *r, r[1], 1) for r in ROWS], schema=BAR_SCHEMA, orient="row"), MIN)
    expected = framed.drain()

    arrays = _sim()
    cols = [np.array(c) for c in zip(*ROWS, strict=True)]
    codes = arrays.symbol_codes(pl.Series(["AAA", "AAA"]))
    arrays.on_bar_arrays(codes, cols[0].astype(np.int64), *cols[1:], every_ns=MIN)
    ts, _slot, sym, side, kind, qty, price, fee, filled, leaves, ids, reasons = arrays.drain_by_time()
    assert set(np.asarray(sym).tolist()) == {int(codes[0])}

    core = FillSimulatorCore
    got = [
        (int(t), i, core.SIDES[sd], core.EVENT_KINDS[k], *map(float, (q, p, f, fq, lq)), r)
        for t, i, sd, k, q, p, f, fq, lq, r in zip(
            ts, ids, side, kind, qty, price, fee, filled, leaves, reasons, strict=True
        )
    ]
    columns = (
        "client_order_id",
        "side",
        "event",
        "qty",
        "price",
        "fee",
        "filled_qty",
        "leaves_qty",
        "reason",
    )
    want = list(expected.select(pl.col("ts").cast(pl.Int64), *columns).iter_rows())
    assert sorted(got) == sorted(want)
    # hand-worked: floor(0.1 x 109) = 10 at the first open, the other 15 at the next; the limit at 10.4
    fills = sorted((g[1], g[0], g[4], g[5]) for g in got if g[3] in ("fill", "partial_fill"))
    assert fills == [
        ("lim", OPEN + MIN, 5.0, 10.4),
        ("mkt", OPEN + MIN, 10.0, 10.5),
        ("mkt", OPEN + 2 * MIN, 15.0, 10.6),
    ]
