"""The one set of time conversions against numpy's datetime64 arithmetic (an independent reference)."""

from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest
from hybridtrader.errors import ConfigError
from hybridtrader.market.timeconv import (
    NS_PER_DAY,
    NS_PER_HOUR,
    NS_PER_MINUTE,
    NS_PER_MS,
    NS_PER_SECOND,
    from_utc_ns,
    rfc3339,
    to_utc_end,
    utc_ns,
)
from hypothesis import given
from hypothesis import strategies as st

AWARE = st.datetimes(
    min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.sampled_from(
        [UTC, timezone(timedelta(hours=-5)), timezone(timedelta(hours=5, minutes=30))]
    )
)


def test_units() -> None:
    assert (NS_PER_MS, NS_PER_SECOND) == (10**6, 10**9)
    assert np.timedelta64(1, "m").astype("timedelta64[ns]").astype(np.int64) == NS_PER_MINUTE
    assert NS_PER_HOUR == 3600 * 10**9 and NS_PER_DAY == 86_400 * 10**9


@given(AWARE)
def test_utc_ns_matches_numpy(dt: datetime) -> None:
    naive_utc = dt.astimezone(UTC).replace(tzinfo=None)
    assert utc_ns(dt) == np.datetime64(naive_utc, "ns").astype(np.int64)


@given(st.integers(min_value=-(2**62), max_value=2**62))
def test_from_utc_ns_truncates_to_the_microsecond(ns: int) -> None:
    dt = from_utc_ns(ns)
    assert dt.tzinfo is UTC
    assert utc_ns(dt) == ns - ns % 1000  # floor: toward the past, also before 1970
    assert rfc3339(ns) == rfc3339(dt)


def test_rfc3339_and_day_ends() -> None:
    assert rfc3339(1_704_205_800_000_000_000) == "2024-01-02T14:30:00Z"
    assert rfc3339(1_704_205_800_123_456_789) == "2024-01-02T14:30:00.123456Z"
    assert to_utc_end("end", "2024-01-02") == datetime(2024, 1, 2, 23, 59, 59, 999999, tzinfo=UTC)


def test_bad_input_names_the_value() -> None:
    assert utc_ns(np.int64(5)) == 5
    with pytest.raises(ConfigError, match="start must be timezone-aware"):
        utc_ns(datetime(2024, 1, 2), "start")
    with pytest.raises(ConfigError, match="ts must be an aware datetime or epoch ns"):
        utc_ns(True)
