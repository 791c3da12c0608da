"""Parse Alpaca (JSON or msgpack) and Polygon stream frames into column batches.

One call per websocket frame returns one `Frame`: trades, quotes and provider bars as columns (numpy
arrays + a symbol list, turned into Polars frames only when a handler wants one), the control messages
(connected / authenticated / subscription / errors) as dicts, and counts of malformed messages and of
message types we do not handle. A bad message is counted and skipped; it never spoils the rest of its
frame. A JSON frame made only of well-formed trades, quotes and bars is parsed in Rust
(`_core.FrameDecoder`); any other frame (and every msgpack frame) takes the Python path, which extracts
whole columns with list comprehensions and only when that fails checks its messages one by one.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import chain, repeat
from typing import Any, Literal

import msgpack
import numpy as np
import orjson
import polars as pl

from hybridtrader import _core
from hybridtrader.errors import DataError
from hybridtrader.market.frames import build_frame
from hybridtrader.market.schema import BAR_SCHEMA, QUOTE_SCHEMA, TRADE_SCHEMA, TS
from hybridtrader.market.timeconv import NS_PER_MS

Provider = Literal["alpaca", "polygon"]
Encoding = Literal["json", "msgpack"]


@dataclass(slots=True)
class Columns:
    """One message kind of one frame as columns: `symbol` a list, every other column an ndarray."""

    schema: dict[str, pl.DataType]
    data: dict[str, Any]

    def __len__(self) -> int:
        return len(self.data["symbol"])

    def frame(self) -> pl.DataFrame:
        df = build_frame(self.schema, self.data)
        counts = self.data.get("trades")  # bars only: -1 marks a count the provider does not send (null)
        if counts is not None and (counts < 0).any():
            df = df.with_columns(df["trades"].scatter(np.flatnonzero(counts < 0), None))
        return df

    def take(self, idx: np.ndarray) -> Columns:
        """The rows at `idx` (integer positions or a boolean mask), in that order."""
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        sym = self.data["symbol"]
        return Columns(
            self.schema,
            {k: [sym[i] for i in idx.tolist()] if k == "symbol" else v[idx] for k, v in self.data.items()},
        )

    @classmethod
    def concat(cls, parts: list[Columns]) -> Columns:
        if len(parts) == 1:
            return parts[0]
        data: dict[str, Any] = {}
        for k in parts[0].data:
            if k == "symbol":
                data[k] = list(chain.from_iterable(p.data[k] for p in parts))
            else:
                data[k] = np.concatenate([p.data[k] for p in parts])
        return cls(parts[0].schema, data)

    @classmethod
    def empty(cls, schema: dict[str, pl.DataType]) -> Columns:
        return cls(schema, {k: [] if k == "symbol" else np.empty(0, _np_dtype(d)) for k, d in schema.items()})


def _np_dtype(d: pl.DataType) -> type:
    if d == pl.Boolean:
        return np.bool_
    return np.int64 if d in (TS, pl.Int64) else np.float64


@dataclass(slots=True)
class Frame:
    """Everything one websocket frame carried."""

    trades: Columns | None = None
    quotes: Columns | None = None
    bars: Columns | None = None
    control: list[dict[str, Any]] = field(default_factory=list)
    messages: int = 0
    malformed: int = 0
    unknown: Counter[str] = field(default_factory=Counter)


# ------------------------------------------------------------------------------ value converters
# Each converter turns a list of wire values into a column and raises (TypeError/ValueError/KeyError) on
# anything that is not what the protocol promises; `_extract` then falls back to per-message checks.


def _symbols(values: list[Any]) -> list[str]:
    if set(map(type, values)) != {str} or "" in values:
        raise TypeError("symbol must be a non-empty string")
    return values


def _floats(values: list[Any]) -> np.ndarray:
    # numpy infers one dtype for the whole list in C: numbers give int/float, any text/None/bool does not
    # (np.array(values, dtype=float) would silently accept "1.5").
    a = np.array(values)
    if a.dtype.kind not in "fi":
        raise TypeError("expected numbers")
    return a.astype(np.float64, copy=False)


def _ints(values: list[Any]) -> np.ndarray:
    a = np.array(values)
    if a.dtype.kind != "i":
        raise TypeError("expected integers")
    return a.astype(np.int64, copy=False)


def _optional_ints(values: list[Any]) -> np.ndarray:
    """Polygon aggregates carry no trade count: -1 marks it unknown here and becomes null in frames."""
    return np.array([-1 if v is None else v for v in values], dtype=np.int64)


def _rfc3339_ns(values: list[Any]) -> np.ndarray:
    """Alpaca JSON timestamps ("2024-01-02T14:30:00.123456789Z") -> int64 ns since the epoch, UTC."""
    if set(map(type, values)) == {str} and all(map(str.endswith, values, repeat("Z"))):
        # numpy parses ISO 8601 at ~0.1 us a value; the UTC designator is stripped because numpy has no zones.
        return np.array([v[:-1] for v in values], dtype="datetime64[ns]").view(np.int64)
    # Explicit offsets ("+00:00"), maybe mixed with "Z": slower, zone-aware parse. Raises on anything that
    # is not a timestamp.
    values = [v[:-1] + "+00:00" if isinstance(v, str) and v.endswith("Z") else v for v in values]
    try:
        s = pl.Series(values, dtype=pl.Utf8, strict=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = s.str.to_datetime("%Y-%m-%dT%H:%M:%S%.f%:z", time_unit="ns", time_zone="UTC", strict=True)
    except (pl.exceptions.PolarsError, TypeError) as e:
        raise DataError(f"not an RFC 3339 timestamp: {e}") from None
    if out.null_count():
        raise DataError("timestamp missing")
    return out.to_physical().to_numpy()


def _ns(values: list[Any]) -> np.ndarray:
    """msgpack Timestamps, unpacked with timestamp=2, arrive as int ns already."""
    return _ints(values)


def _ms_to_ns(values: list[Any]) -> np.ndarray:
    return _ints(values) * NS_PER_MS


Converter = Callable[[list[Any]], Any]
Spec = Sequence[tuple[str, str, Converter]]  # (column, wire key, converter)


def _spec(kind: str, provider: Provider, encoding: Encoding) -> Spec:
    if provider == "alpaca":
        ts: Converter = _ns if encoding == "msgpack" else _rfc3339_ns
        sym, tkey = "S", "t"
    else:
        ts, sym, tkey = _ms_to_ns, "sym", "t"
    if kind == "trade":
        return (("symbol", sym, _symbols), ("ts", tkey, ts), ("price", "p", _floats), ("size", "s", _floats))
    if kind == "quote":
        return (
            ("symbol", sym, _symbols),
            ("ts", tkey, ts),
            ("bid", "bp", _floats),
            ("ask", "ap", _floats),
            ("bid_size", "bs", _floats),
            ("ask_size", "as", _floats),
        )
    if provider == "alpaca":
        count: tuple[str, str, Converter] = ("trades", "n", _ints)
        start = ("ts", "t", ts)
    else:
        count = ("trades", "n", _optional_ints)  # absent on the wire: filled with None below
        start = ("ts", "s", _ms_to_ns)
    return (
        ("symbol", sym, _symbols),
        start,
        ("open", "o", _floats),
        ("high", "h", _floats),
        ("low", "l", _floats),
        ("close", "c", _floats),
        ("volume", "v", _floats),
        ("vwap", "vw", _floats),
        count,
    )


def _convert(msgs: list[dict[str, Any]], spec: Spec) -> dict[str, Any]:
    return {
        col: conv([m.get(key) if conv is _optional_ints else m[key] for m in msgs]) for col, key, conv in spec
    }


def _valid_rows(data: dict[str, Any], kind: str) -> np.ndarray:
    """Values a well-formed message never has: non-positive or non-finite prices, negative sizes."""
    if kind == "trade":
        p = data["price"]
        return np.isfinite(p) & (p > 0) & np.isfinite(data["size"]) & (data["size"] > 0)
    if kind == "quote":
        ok = np.ones(len(data["symbol"]), dtype=bool)
        for c in ("bid", "ask", "bid_size", "ask_size"):
            ok &= np.isfinite(data[c]) & (data[c] >= 0)
        return ok
    ok = np.ones(len(data["symbol"]), dtype=bool)
    for c in ("open", "high", "low", "close", "vwap"):
        ok &= np.isfinite(data[c]) & (data[c] > 0)
    return ok & (data["high"] >= data["low"]) & np.isfinite(data["volume"]) & (data["volume"] >= 0)


def _extract(
    msgs: list[dict[str, Any]], kind: str, spec: Spec, schema: dict[str, pl.DataType]
) -> tuple[Columns, int]:
    """Columns of the well-formed messages and the number of malformed ones."""
    try:
        data = _convert(msgs, spec)
    except (KeyError, TypeError, ValueError, OverflowError):
        good = []
        for m in msgs:
            try:
                _convert([m], spec)
            except (KeyError, TypeError, ValueError, OverflowError):
                continue
            good.append(m)
        if not good:
            return Columns.empty(schema), len(msgs)
        data = _convert(good, spec)
    bad = len(msgs) - len(data["symbol"])
    ok = _valid_rows(data, kind)
    if not ok.all():
        bad += int((~ok).sum())
        idx = np.flatnonzero(ok)
        data = {k: [v[i] for i in idx] if k == "symbol" else v[ok] for k, v in data.items()}
    return Columns(schema, data), bad


_ALPACA_KIND = {"t": "trade", "q": "quote", "b": "bar", "u": "bar", "d": "bar"}
_ALPACA_CONTROL = {"success", "error", "subscription"}
_POLYGON_KIND = {"T": "trade", "Q": "quote", "A": "bar", "AM": "bar"}
_SCHEMAS = {"trade": TRADE_SCHEMA, "quote": QUOTE_SCHEMA, "bar": BAR_SCHEMA}


def _fast_frame(messages: int, trades: tuple | None, quotes: tuple | None, bars: tuple | None) -> Frame:
    """A Frame from the Rust fast path's columns (see `_core.FrameDecoder.decode`)."""
    out = Frame(messages=messages)
    for attr, cols, schema in (("trades", trades, TRADE_SCHEMA), ("quotes", quotes, QUOTE_SCHEMA),
                               ("bars", bars, BAR_SCHEMA)):
        if cols is not None:
            setattr(out, attr, Columns(schema, dict(zip(schema, cols, strict=True))))
    return out


class FrameParser:
    """Parses the frames of one connection. Alpaca "u" (updated) and "d" (daily) bars and Polygon second
    aggregates ("A") are returned with the minute bars; the adapter subscribes only to what it wants."""

    def __init__(self, provider: Provider, encoding: Encoding = "json") -> None:
        if provider not in ("alpaca", "polygon"):
            raise DataError(f"provider must be 'alpaca' or 'polygon', got {provider!r}")
        if encoding not in ("json", "msgpack"):
            raise DataError(f"encoding must be 'json' or 'msgpack', got {encoding!r}")
        if provider == "polygon" and encoding == "msgpack":
            raise DataError("encoding 'msgpack' is only spoken by Alpaca")
        self.provider: Provider = provider
        self.encoding: Encoding = encoding
        self._type_key = "T" if provider == "alpaca" else "ev"
        self._kinds = _ALPACA_KIND if provider == "alpaca" else _POLYGON_KIND
        self._control = _ALPACA_CONTROL if provider == "alpaca" else {"status"}
        self._specs = {k: _spec(k, provider, encoding) for k in _SCHEMAS}
        self._fast = _core.FrameDecoder(provider).decode if encoding == "json" else None

    def decode(self, raw: bytes | str) -> Any:
        """The frame's payload; raises ValueError when it is not valid JSON / msgpack."""
        if self.encoding == "msgpack":
            if isinstance(raw, str):
                raise DataError("text frame on a msgpack connection")
            try:
                return msgpack.unpackb(raw, timestamp=2, strict_map_key=False)
            except Exception as e:  # msgpack raises a handful of unrelated types for bad input
                raise DataError(f"bad msgpack frame: {e}") from None
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as e:
            raise DataError(f"bad JSON frame: {e}") from None

    def _one_kind(self, payload: list[Any]) -> dict[str, list[dict[str, Any]]]:
        """The usual data frame holds messages of one kind only: group it without a per-message loop."""
        try:
            types = {m[self._type_key] for m in payload}
        except (TypeError, KeyError):
            return {}
        if len(types) != 1:
            return {}
        kind = self._kinds.get(types.pop())
        return {kind: payload} if kind is not None else {}

    def parse(self, raw: bytes | str) -> Frame:
        if self._fast is not None:
            fast = self._fast(raw)
            if fast is not None:
                return _fast_frame(*fast)
        out = Frame()
        try:
            payload = self.decode(raw)
        except ValueError:
            out.malformed = 1
            out.messages = 1
            return out
        if isinstance(payload, dict):  # a bare object instead of the usual array: accept it as one message
            payload = [payload]
        if not isinstance(payload, list):
            out.malformed = 1
            out.messages = 1
            return out
        out.messages = len(payload)
        key, kinds, control = self._type_key, self._kinds, self._control
        groups = self._one_kind(payload)
        for m in () if groups else payload:
            if type(m) is not dict:
                out.malformed += 1
                continue
            t = m.get(key)
            kind = kinds.get(t)  # type: ignore[arg-type]
            if kind is not None:
                g = groups.get(kind)
                if g is None:
                    groups[kind] = [m]
                else:
                    g.append(m)
            elif t in control:
                out.control.append(m)
            elif isinstance(t, str):
                out.unknown[t] += 1
            else:
                out.malformed += 1
        for kind, msgs in groups.items():
            cols, bad = _extract(msgs, kind, self._specs[kind], _SCHEMAS[kind])
            out.malformed += bad
            if len(cols):
                setattr(out, {"trade": "trades", "quote": "quotes", "bar": "bars"}[kind], cols)
        return out
