"""Polars frames from numpy columns, built cheaply enough for small batches on hot paths.

The bar engine and the stream parser hand over a few rows at a time; `pl.Series(...)`'s Python-level type
dispatch then costs more than the data (tens of microseconds a frame). `build_frame` uses Polars' native
series constructors instead (about 5x less overhead), and only after a probe at import showed they build
exactly what the public constructors build; otherwise (a Polars version without them, or one where they
changed) it falls back to the public path, so an upgrade can only make it slower, never wrong.

Columns: String from a list of str or a Series; Datetime("ns", "UTC") from int64 ns; Int64 from int64;
Float64 from float64 (NaN stays NaN, never null); Boolean from bool.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import polars as pl

from hybridtrader.market.schema import TS

Schema = Mapping[str, pl.DataType]
Builder = Callable[[Schema, Mapping[str, Any]], pl.DataFrame]


def _public(schema: Schema, columns: Mapping[str, Any]) -> pl.DataFrame:
    series = []
    for name, dtype in schema.items():
        v = columns[name]
        if dtype == TS:
            series.append(pl.Series(name, v, dtype=pl.Int64).cast(TS))
        elif isinstance(v, pl.Series):
            series.append(v.alias(name).cast(dtype))
        else:
            series.append(pl.Series(name, v, dtype=dtype))
    return pl.DataFrame(series)


def _native(schema: Schema, columns: Mapping[str, Any]) -> pl.DataFrame:
    series = []
    for name, make in _plan(schema):
        v = columns[name]
        series.append(v.alias(name)._s if isinstance(v, pl.Series) else make(name, v))
    return pl.DataFrame._from_pydf(_plr.PyDataFrame(series))


_PLANS: dict[int, tuple[Schema, list[tuple[str, Callable[[str, Any], Any]]]]] = {}
_MAX_PLANS = 64


def _plan(schema: Schema) -> list[tuple[str, Callable[[str, Any], Any]]]:
    """The native constructor of each column, worked out once per schema object (comparing Polars dtypes
    costs more than building a small series)."""
    hit = _PLANS.get(id(schema))
    if hit is not None and hit[0] is schema:
        return hit[1]
    plan = []
    for name, dtype in schema.items():
        if dtype == pl.String:
            make = lambda n, v: _plr.PySeries.new_str(n, v, True)  # noqa: E731
        elif dtype == TS:
            make = lambda n, v: _plr.PySeries.new_i64(n, v, True).cast(TS, True, False)  # noqa: E731
        elif dtype == pl.Int64:
            make = lambda n, v: _plr.PySeries.new_i64(n, v, True)  # noqa: E731
        elif dtype == pl.Float64:
            make = lambda n, v: _plr.PySeries.new_f64(n, v, False)  # noqa: E731  # NaN stays NaN
        elif dtype == pl.Boolean:
            make = lambda n, v: _plr.PySeries.new_bool(n, v, True)  # noqa: E731
        else:
            raise TypeError(f"build_frame: column {name!r} has unsupported dtype {dtype}")
        plan.append((name, make))
    if len(_PLANS) >= _MAX_PLANS:  # callers pass module constants; a caller building schemas per call
        _PLANS.clear()  # must not grow this without bound
    _PLANS[id(schema)] = (schema, plan)  # the entry keeps the schema alive: its id is not reused
    return plan


_PROBE_SCHEMA: dict[str, pl.DataType] = {
    "s": pl.String(), "t": TS, "i": pl.Int64(), "f": pl.Float64(), "b": pl.Boolean()
}
_PROBE = {
    "s": ["A", "B"],
    "t": np.array([0, 1_700_000_000_123_456_789]),
    "i": np.array([2, -3]),
    "f": np.array([1.5, np.nan]),
    "b": np.array([True, False]),
}


def _pick() -> Builder:
    """The native builder when it agrees with the public one on every supported dtype, else public."""
    try:
        if _native(_PROBE_SCHEMA, _PROBE).equals(_public(_PROBE_SCHEMA, _PROBE)):
            return _native
    except (AttributeError, TypeError, ValueError, NameError):
        pass
    return _public


try:
    from polars import _plr
except ImportError:  # older Polars: the public path is used
    _plr = None

build_frame: Builder = _pick()
