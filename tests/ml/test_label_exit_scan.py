"""The labels' batch exit scans (`_core.reversion_exits`, `_core.barrier_exits`) against their definition:
a plain loop over each event's later closes applying the per-bar rules the strategies call
(`ml.labels.reverted`, `ml.labels.barrier_touch`), the first touch ending the trade, else the last bar of
its room. Hypothesis draws price paths cut into groups (symbols or sessions), events and barriers."""

from __future__ import annotations

import numpy as np
import pytest
from hybridtrader._core import barrier_exits, reversion_exits
from hybridtrader.config import TripleBarrierLabelConfig
from hybridtrader.ml.labels import barrier_touch, reverted
from hypothesis import given, settings
from hypothesis import strategies as st


def loop_exits(close: np.ndarray, rows: np.ndarray, room: np.ndarray, touch) -> tuple[list[int], list[int]]:
    """touch(event i, close) -> (touched, kind): the reference scan, one bar at a time."""
    exit_rows, kinds = [], []
    for i, (row, n) in enumerate(zip(rows, room, strict=True)):
        end, kind = row + n, 0
        for j in range(row + 1, row + n + 1):
            touched, k = touch(i, close[j])
            if touched:
                end, kind = j, int(k)
                break
        exit_rows.append(int(end))
        kinds.append(kind)
    return exit_rows, kinds


@st.composite
def paths(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Closes (cent prices, so that equal prices and exact ties with the mean occur), group cuts, and
    events with their forward room (bars left in the group, at most the horizon)."""
    n = draw(st.integers(2, 80))
    cents = draw(st.lists(st.integers(9_000, 11_000), min_size=n, max_size=n))
    close = np.array(cents, dtype=np.float64) / 100.0
    cuts = sorted(draw(st.sets(st.integers(1, n - 1), max_size=4)))
    group = np.zeros(n, dtype=np.int64)
    for c in cuts:
        group[c:] += 1
    horizon = draw(st.integers(1, 30))
    candidates = [i for i in range(n - 1) if group[i + 1] == group[i]]
    if not candidates:
        return close, np.empty(0, np.int64), np.empty(0, np.int64)
    rows = np.array(sorted(draw(st.sets(st.sampled_from(candidates), min_size=1))), dtype=np.int64)
    group_end = np.searchsorted(group, group[rows], side="right") - 1
    return close, rows, np.minimum(group_end - rows, horizon)


@settings(max_examples=200, deadline=None)
@given(paths(), st.data())
def test_reversion_scan_is_the_loop_over_reverted(path, data: st.DataObject) -> None:
    close, rows, room = path
    side = np.array(data.draw(st.lists(st.sampled_from([1.0, -1.0]), min_size=len(rows), max_size=len(rows))))
    # the entry-time mean: a nearby cent price (ties with closes happen), or NaN (warm-up: never touches)
    means = st.one_of(st.integers(9_000, 11_000).map(lambda c: c / 100.0), st.just(float("nan")))
    mean = np.array(data.draw(st.lists(means, min_size=len(rows), max_size=len(rows))), dtype=np.float64)
    got_rows, got_kind = reversion_exits(close, rows, room, side, mean)
    want = loop_exits(close, rows, room, lambda i, c: (reverted(side[i], mean[i], c), 1))
    assert (got_rows.tolist(), got_kind.tolist()) == want


@settings(max_examples=200, deadline=None)
@given(
    paths(),
    st.data(),
    st.floats(0.1, 4.0),
    st.floats(0.1, 4.0),
)
def test_barrier_scan_is_the_loop_over_barrier_touch(path, data: st.DataObject, pt: float, sl: float) -> None:
    close, rows, room = path
    cfg = TripleBarrierLabelConfig(profit_take=pt, stop_loss=sl)
    side = np.array(data.draw(st.lists(st.sampled_from([1.0, -1.0]), min_size=len(rows), max_size=len(rows))))
    trgt = np.array(data.draw(st.lists(st.floats(1e-4, 0.05), min_size=len(rows), max_size=len(rows))))
    got_rows, got_kind = barrier_exits(close, rows, room, side, pt * trgt, -sl * trgt)
    want = loop_exits(close, rows, room, lambda i, c: barrier_touch(side[i], close[rows[i]], trgt[i], c, cfg))
    assert (got_rows.tolist(), got_kind.tolist()) == want


def test_bad_event_rows_are_one_clear_error() -> None:
    close = np.array([1.0, 2.0, 3.0])
    one = np.array([1.0])
    with pytest.raises(ValueError, match="event 0 at row 1 with room 2 does not fit in 3 bars"):
        reversion_exits(close, np.array([1]), np.array([2]), one, one)
    with pytest.raises(ValueError, match="lower has 0 values for 1 events"):
        barrier_exits(close, np.array([0]), np.array([1]), one, one, np.empty(0))
