"""`timeconv.epoch_ns`: a Datetime series' epoch nanoseconds, as Polars' own `dt.epoch("ns")` gives them, for
every time unit and time zone, nulls included."""

from __future__ import annotations

import numpy as np
import polars as pl
from hybridtrader.market.timeconv import epoch_ns
from hypothesis import given
from hypothesis import strategies as st

NS = st.integers(min_value=-(2**62), max_value=2**62)


@given(
    values=st.lists(NS, max_size=30),
    unit=st.sampled_from(["ns", "us", "ms"]),
    zone=st.sampled_from([None, "UTC", "America/New_York"]),
)
def test_epoch_ns_is_polars_dt_epoch(values: list[int], unit: str, zone: str | None) -> None:
    ts = pl.Series("ts", values, dtype=pl.Int64).cast(pl.Datetime("ns")).dt.cast_time_unit(unit)  # type: ignore[arg-type]
    if zone is not None:
        ts = ts.dt.replace_time_zone("UTC").dt.convert_time_zone(zone)
    np.testing.assert_array_equal(epoch_ns(ts), ts.dt.epoch("ns").to_numpy())


def test_epoch_ns_keeps_nulls_as_polars_does() -> None:
    ts = pl.Series("ts", [1_000_000, None, 3_000_000], dtype=pl.Int64).cast(pl.Datetime("us", "UTC"))
    np.testing.assert_array_equal(epoch_ns(ts), ts.dt.epoch("ns").to_numpy())
