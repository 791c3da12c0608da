"""SVG charts of the training report: well-formed, and drawing the data they are given."""

from __future__ import annotations

from datetime import date, datetime
from xml.etree import ElementTree

import numpy as np
import polars as pl
import pytest
from hybridtrader.ml.report import equity_svg, importance_svg, nice_ticks

SVG = "{http://www.w3.org/2000/svg}"


@pytest.mark.parametrize(
    ("lo", "hi", "want"),
    [
        (0.95, 1.3, [0.9, 1.0, 1.1, 1.2, 1.3]),
        (0.0, 12_345.6, [0.0, 2500.0, 5000.0, 7500.0, 10_000.0, 12_500.0]),
        (1.0, 1.0, [1.0, 1.2]),  # flat: a span around the value
    ],
)
def test_nice_ticks(lo: float, hi: float, want: list[float]) -> None:
    assert nice_ticks(lo, hi) == pytest.approx(want)


def test_importance_bars_are_proportional_and_sorted() -> None:
    names, gain = ["a", "bb", "c<d"], [10.0, 40.0, 0.0]
    root = ElementTree.fromstring(importance_svg(names, gain, "t & u"))
    bars = root.findall(f"{SVG}rect")[1:-1]  # background first, plot frame last
    widths = [float(b.get("width")) for b in bars]
    assert widths[0] > 0 and widths[1] == pytest.approx(widths[0] / 4, abs=0.1) and widths[2] == 0.0
    labels = [t.text for t in root.findall(f"{SVG}text")]
    assert labels[0] == "t & u" and {"a", "bb", "c<d", "total gain"} <= set(labels)


def test_equity_line_follows_the_curve() -> None:
    period = pl.datetime_range(datetime(2024, 1, 2), datetime(2024, 3, 1), "1d", eager=True, time_zone="UTC")
    values = 1.0 + 0.01 * np.sin(np.arange(len(period)))
    root = ElementTree.fromstring(equity_svg(pl.DataFrame({"period": period, "equity": values}), "eq"))
    points = np.array(
        [p.split(",") for p in root.find(f"{SVG}polyline").get("points").split()], dtype=float
    )
    assert len(points) == len(period) and np.all(np.diff(points[:, 0]) > 0)
    # SVG y grows downwards: the highest equity is the smallest y
    assert points[:, 1].argmin() == values.argmax() and points[:, 1].argmax() == values.argmin()
    labels = [t.text for t in root.findall(f"{SVG}text")]
    assert "2024-01-02" in labels and "2024-03-01" in labels
    nothing = pl.DataFrame({"period": period[:0], "equity": values[:0]})
    assert ElementTree.fromstring(equity_svg(nothing, "e")).find(f"{SVG}polyline") is None


def test_equity_skips_values_that_are_not_finite() -> None:
    period = pl.date_range(date(2024, 1, 2), date(2024, 1, 6), eager=True)
    values = [1.0, float("nan"), 1.02, float("inf"), 0.99]
    root = ElementTree.fromstring(equity_svg(pl.DataFrame({"period": period, "equity": values}), "eq"))
    assert len(root.find(f"{SVG}polyline").get("points").split()) == 3
