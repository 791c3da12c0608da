"""Time slicing: TWAP children sum to the parent, participation caps hold, leftovers are reported."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import numpy as np
import polars as pl
import pytest
from helpers import MIN, ny
from hybridtrader import SlippageModel
from hybridtrader.config import ExecutionConfig, TimeSlicingConfig
from hybridtrader.execution.time_slicing import expected_volume, plan_parent_order, slice_order
from hybridtrader.market.calendar import UTC, session_bounds
from hybridtrader.market.timeconv import utc_ns
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.integrate import quad

NORMAL = date(2024, 5, 1)
EARLY = date(2024, 11, 29)  # day after Thanksgiving: closes 13:00 New York


def test_twap_slices_sum_exactly_and_are_equal() -> None:
    start = ny(NORMAL, 10, 0)
    plan = slice_order(1003, start, start + timedelta(minutes=50), slices=10)
    qty = plan.children["qty"].to_list()
    assert sum(qty) == 1003 and plan.unfilled == 0 and plan.scheduled == 1003
    assert qty == [101, 101, 101] + [100] * 7
    ts = plan.children["ts"].cast(pl.Int64).to_numpy()
    assert ts[0] == utc_ns(start)
    assert set(np.diff(ts)) == {5 * MIN}
    assert plan.children["cap"].null_count() == 10
    assert plan.children.schema["ts"] == pl.Datetime("ns", "UTC")


def test_u_shaped_volume_matches_numerical_integral() -> None:
    o, c = session_bounds(NORMAL)
    o_ns, c_ns = utc_ns(o), utc_ns(c)
    assert expected_volume(o_ns, c_ns, 1e6) == pytest.approx(1e6)

    # Reference: integrate the density 1 + b (2u - 1)^2 (b = u_shape - 1), normalised, with scipy.
    def share(u0: float, u1: float, u_shape: float) -> float:
        f = lambda u: 1 + (u_shape - 1) * (2 * u - 1) ** 2  # noqa: E731
        return quad(f, u0, u1)[0] / quad(f, 0, 1)[0]

    for u0, u1, shape in [(0, 30 / 390, 3.0), (180 / 390, 210 / 390, 3.0), (0.5, 1.0, 5.0), (0.1, 0.2, 1.0)]:
        got = expected_volume(o_ns + round(u0 * 390 * MIN), o_ns + round(u1 * 390 * MIN), 1e6, shape)
        assert got == pytest.approx(1e6 * share(u0, u1, shape), rel=1e-9)
    first = expected_volume(o_ns, o_ns + 30 * MIN, 1e6)
    middle = expected_volume(o_ns + 180 * MIN, o_ns + 210 * MIN, 1e6)
    last = expected_volume(c_ns - 30 * MIN, c_ns, 1e6)
    assert first == pytest.approx(last) and first > 2 * middle
    # No volume outside sessions (overnight, weekend); an early close is a 210-minute day.
    assert expected_volume(c_ns, utc_ns(ny(NORMAL + timedelta(days=1), 9, 30)), 1e6) == 0.0
    assert (
        expected_volume(utc_ns(ny(date(2024, 5, 4), 0, 0)), utc_ns(ny(date(2024, 5, 6), 0, 0)), 1e6)
        == 0
    )
    eo, ec = session_bounds(EARLY)
    assert expected_volume(utc_ns(eo), utc_ns(ec), 1e6) == pytest.approx(1e6 * 210 / 390)
    # Two whole sessions in one window.
    nxt = session_bounds(date(2024, 5, 2))
    assert expected_volume(o_ns, utc_ns(nxt[1]), 1e6) == pytest.approx(2e6)


def test_participation_cap_rolls_forward_and_reports_unfilled() -> None:
    start = ny(NORMAL, 12, 0)
    plan = slice_order(
        20_000, start, start + timedelta(minutes=30), slices=6, max_participation=0.05, adv_shares=2e6
    )
    ch = plan.children
    caps = (0.05 * ch["expected_volume"]).floor().cast(pl.Int64)
    assert ch["cap"].to_list() == caps.to_list()
    assert (ch["qty"] <= ch["cap"]).all()
    # A window too short for the order: every slice at its cap, the rest reported, nothing dropped.
    assert ch["qty"].to_list() == ch["cap"].to_list()
    assert plan.unfilled == 20_000 - ch["qty"].sum() > 0

    # The last hour: volume rises into the close, so only the first slice's cap binds; its remainder rolls
    # into the next slices and the order completes.
    _, c = session_bounds(NORMAL)
    plan = slice_order(1200, c - timedelta(minutes=60), c, slices=4, max_participation=0.06, adv_shares=1e5)
    caps, qty = plan.children["cap"].to_list(), plan.children["qty"].to_list()
    assert caps[0] < 300 < caps[2] < caps[3]
    assert qty[0] == caps[0] and plan.unfilled == 0 and sum(qty) == 1200
    assert sum(qty[:2]) <= 600 and sum(qty[:2]) == min(600, caps[0] + caps[1])
    # A slice entirely after the close has no volume: its share cannot be placed and is reported.
    late = slice_order(
        100,
        c - timedelta(minutes=10),
        c + timedelta(minutes=10),
        slices=2,
        max_participation=0.5,
        adv_shares=1e6,
    )
    assert late.children["cap"].to_list()[1] == 0 and late.children["qty"].to_list() == [50, 0]
    assert late.unfilled == 50


@settings(max_examples=150, deadline=None)
@given(
    qty=st.integers(1, 5_000_000),
    slices=st.integers(1, 40),
    minutes=st.integers(1, 390),
    offset=st.integers(0, 389),
    cap=st.one_of(st.none(), st.floats(0.001, 1.0)),
    adv=st.floats(1e3, 1e8),
)
def test_plan_invariants(
    qty: int, slices: int, minutes: int, offset: int, cap: float | None, adv: float
) -> None:
    o, _ = session_bounds(NORMAL)
    start = o + timedelta(minutes=offset)
    plan = slice_order(
        qty, start, start + timedelta(minutes=minutes), slices=slices, max_participation=cap, adv_shares=adv
    )
    ch = plan.children
    assert ch.height == slices
    assert ch["qty"].sum() + plan.unfilled == qty  # never silently drops quantity
    assert (ch["qty"] >= 0).all() and plan.unfilled >= 0
    if cap is None:
        assert ch["qty"].max() - ch["qty"].min() <= 1 and plan.unfilled == 0
    else:
        assert (ch["qty"] <= ch["cap"]).all()
        if plan.unfilled:  # something is left only when the last slice ran at its cap
            assert ch["qty"][-1] == ch["cap"][-1]
    # Cumulative quantity never runs ahead of the TWAP schedule.
    twap = np.cumsum([qty // slices + (1 if i < qty % slices else 0) for i in range(slices)])
    assert (np.cumsum(ch["qty"].to_numpy()) <= twap).all()


def test_bad_arguments_are_named() -> None:
    s = ny(NORMAL, 10, 0)
    e = s + timedelta(minutes=10)
    for kwargs, match in [
        ({"qty": 0}, "qty"),
        ({"qty": 1.5}, "qty"),
        ({"qty": True}, "qty"),
        ({"slices": 0}, "slices"),
        ({"end": s}, "end must be after start"),
        ({"max_participation": 1.5, "adv_shares": 1e6}, "max_participation"),
        ({"max_participation": 0.1}, "adv_shares"),
        ({"start": datetime(2024, 5, 1, 10)}, "timezone-aware"),
    ]:
        args = {"qty": 100, "start": s, "end": e, "slices": 2} | kwargs
        with pytest.raises(ValueError, match=match):
            slice_order(**args)


def test_plan_parent_order_from_config_and_model() -> None:
    model = SlippageModel()
    model.set_daily_stats("AAPL", 5e7, 150.0)
    cfg = ExecutionConfig(time_slicing=TimeSlicingConfig(window_minutes=20, slices=4, max_participation=0.1))
    start = ny(NORMAL, 11, 0)
    plan = plan_parent_order(10_000, start, config=cfg, model=model, symbol="AAPL")
    assert plan.children.height == 4 and plan.unfilled == 0 and plan.children["qty"].to_list() == [2500] * 4
    ref = expected_volume(utc_ns(start), utc_ns(start + timedelta(minutes=5)), 5e7)
    assert plan.children["expected_volume"][0] == pytest.approx(ref)
    # A thin symbol: the cap binds and the plan says how much is left.
    model.set_daily_stats("THIN", 2e5, 300.0)
    thin = plan_parent_order(10_000, start, config=cfg, model=model, symbol="THIN")
    assert thin.unfilled > 0 and thin.scheduled + thin.unfilled == 10_000
    # Unknown symbol: the pooled (median) ADV of the model.
    pooled = plan_parent_order(10_000, start, config=cfg, model=model, symbol="NEW")
    adv = model.symbol_params("NEW")["adv_shares"]
    assert adv == pytest.approx((5e7 + 2e5) / 2)
    assert pooled.children["expected_volume"][0] == pytest.approx(ref * adv / 5e7)
    # Disabled: one child with everything, at start.
    off = plan_parent_order(10_000, start, config=ExecutionConfig(enable_time_slicing=False), adv_shares=1e6)
    assert off.children["qty"].to_list() == [10_000] and off.children["ts"][0] == start.astimezone(UTC)
    # Early close: the window is cut at 13:00 New York.
    late = plan_parent_order(600, ny(EARLY, 12, 50), config=cfg, adv_shares=1e7)
    assert late.children["ts"][-1] < ny(EARLY, 13, 0) and late.children.height == 4
    assert late.children["ts"][1] - late.children["ts"][0] == timedelta(seconds=150)
    with pytest.raises(ValueError, match="outside the regular NYSE session"):
        plan_parent_order(100, ny(EARLY, 13, 30), config=cfg, adv_shares=1e6)
    with pytest.raises(ValueError, match="adv_shares"):
        plan_parent_order(100, start, config=cfg)
