"""Parser unit tests on hand-written frames of both providers (wire shapes from the providers' docs)."""

from __future__ import annotations

from datetime import UTC, datetime

import msgpack
import orjson
import polars as pl
import pytest
from hybridtrader.stream.messages import BAR_SCHEMA, QUOTE_SCHEMA, TRADE_SCHEMA, FrameParser
from hypothesis import given, settings
from hypothesis import strategies as st


def ns(text: str) -> int:
    """Independent reference: the stdlib's parse of an RFC 3339 timestamp (to microseconds) in ns."""
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return int(dt.timestamp()) * 1_000_000_000 + dt.microsecond * 1000


ALPACA_FRAME = [
    {"T": "success", "msg": "authenticated"},
    {
        "T": "t",
        "S": "AAPL",
        "i": 52983525029461,
        "x": "V",
        "p": 187.15,
        "s": 100,
        "c": ["@"],
        "t": "2024-01-02T14:30:00.123456789Z",
        "z": "C",
    },
    {
        "T": "t",
        "S": "MSFT",
        "i": 7,
        "x": "V",
        "p": 370,
        "s": 5,
        "c": ["@", "I"],
        "t": "2024-01-02T14:30:01Z",
        "z": "C",
    },
    {
        "T": "q",
        "S": "AAPL",
        "bx": "V",
        "bp": 187.1,
        "bs": 3,
        "ax": "V",
        "ap": 187.2,
        "as": 4,
        "c": ["R"],
        "t": "2024-01-02T14:30:00.5Z",
        "z": "C",
    },
    {
        "T": "b",
        "S": "AAPL",
        "o": 187.0,
        "h": 187.5,
        "l": 186.9,
        "c": 187.2,
        "v": 12000,
        "t": "2024-01-02T14:30:00Z",
        "n": 120,
        "vw": 187.21,
    },
    {"T": "s", "S": "AAPL", "sc": "H", "sm": "Trading Halt"},
    {"T": "l", "S": "AAPL", "u": 190.0, "d": 180.0},
]


def test_alpaca_json_frame() -> None:
    f = FrameParser("alpaca").parse(orjson.dumps(ALPACA_FRAME))
    assert f.messages == 7 and f.malformed == 0
    assert f.control == [{"T": "success", "msg": "authenticated"}]
    assert dict(f.unknown) == {"s": 1, "l": 1}
    trades = f.trades.frame()
    assert trades.schema == pl.Schema(TRADE_SCHEMA)
    assert trades["symbol"].to_list() == ["AAPL", "MSFT"]
    # ns precision survives: the stdlib only has microseconds, so the last 3 digits are added by hand.
    assert trades["ts"].dt.epoch("ns").to_list() == [
        ns("2024-01-02T14:30:00.123456Z") + 789,
        ns("2024-01-02T14:30:01Z"),
    ]
    assert trades["price"].to_list() == [187.15, 370.0]
    assert trades["size"].to_list() == [100.0, 5.0]
    q = f.quotes.frame()
    assert q.schema == pl.Schema(QUOTE_SCHEMA)
    assert q.row(0) == ("AAPL", datetime(2024, 1, 2, 14, 30, 0, 500000, tzinfo=UTC), 187.1, 187.2, 3.0, 4.0)
    b = f.bars.frame()
    assert b.schema == pl.Schema(BAR_SCHEMA)
    assert b.row(0)[2:] == (187.0, 187.5, 186.9, 187.2, 12000.0, 187.21, 120)


def test_alpaca_timestamp_with_offset() -> None:
    frame = [{"T": "t", "S": "A", "p": 1.0, "s": 1, "t": "2024-01-02T09:30:00.25-05:00"}]
    t = FrameParser("alpaca").parse(orjson.dumps(frame)).trades.frame()
    assert t["ts"].dt.epoch("ns").to_list() == [ns("2024-01-02T14:30:00.25Z")]


def test_alpaca_msgpack_frame_as_alpaca_py_sends_it() -> None:
    frame = [
        {"T": "t", "S": "AAPL", "p": 187.15, "s": 100, "t": msgpack.Timestamp(1704205800, 123456789)},
        {
            "T": "b",
            "S": "AAPL",
            "o": 1.0,
            "h": 2.0,
            "l": 0.5,
            "c": 1.5,
            "v": 10,
            "n": 2,
            "vw": 1.2,
            "t": msgpack.Timestamp(1704205800, 0),
        },
        {"T": "subscription", "trades": ["AAPL"], "quotes": [], "bars": []},
    ]
    f = FrameParser("alpaca", "msgpack").parse(msgpack.packb(frame))
    assert f.trades.data["ts"].tolist() == [1704205800_123456789]
    assert f.bars.data["ts"].tolist() == [1704205800_000000000]
    assert f.control[0]["T"] == "subscription"
    assert f.malformed == 0


def test_polygon_frame() -> None:
    frame = [
        {"ev": "status", "status": "auth_success", "message": "authenticated"},
        {
            "ev": "T",
            "sym": "MSFT",
            "x": 4,
            "i": "12345",
            "z": 3,
            "p": 114.125,
            "s": 100,
            "c": [0, 12],
            "t": 1536036818784,
            "q": 3681328,
        },
        {
            "ev": "Q",
            "sym": "MSFT",
            "bx": 4,
            "bp": 114.125,
            "bs": 100,
            "ax": 7,
            "ap": 114.128,
            "as": 160,
            "c": 0,
            "i": [604],
            "t": 1536036818784,
            "q": 50385480,
            "z": 3,
        },
        {
            "ev": "AM",
            "sym": "GTE",
            "v": 4110,
            "av": 9470157,
            "op": 0.4372,
            "vw": 0.4488,
            "o": 0.4488,
            "c": 0.4486,
            "h": 0.4489,
            "l": 0.4486,
            "a": 0.4352,
            "z": 685,
            "s": 1610144640000,
            "e": 1610144700000,
        },
        {"ev": "LULD", "T": "MSFT"},
    ]
    f = FrameParser("polygon").parse(orjson.dumps(frame))
    assert f.control[0]["status"] == "auth_success"
    assert f.trades.data["ts"].tolist() == [1536036818784 * 1_000_000]
    assert f.trades.frame().row(0)[2:] == (114.125, 100.0)
    assert f.quotes.frame().row(0)[2:] == (114.125, 114.128, 100.0, 160.0)
    bars = f.bars.frame()
    assert bars["ts"].dt.epoch("ms").to_list() == [1610144640000]
    assert bars["trades"].to_list() == [None]  # Polygon sends no trade count
    assert dict(f.unknown) == {"LULD": 1}


@pytest.mark.parametrize(
    "bad",
    [
        {"T": "t", "S": "AAPL", "p": "187.15", "s": 100, "t": "2024-01-02T14:30:00Z"},  # price as text
        {"T": "t", "S": "AAPL", "s": 100, "t": "2024-01-02T14:30:00Z"},  # no price
        {"T": "t", "S": "AAPL", "p": 187.0, "s": 100, "t": "yesterday"},  # not a timestamp
        {"T": "t", "S": "AAPL", "p": -1.0, "s": 100, "t": "2024-01-02T14:30:00Z"},  # negative price
        {"T": "t", "S": "AAPL", "p": 1.0, "s": 0, "t": "2024-01-02T14:30:00Z"},  # zero size
        {"T": "t", "S": "", "p": 1.0, "s": 1, "t": "2024-01-02T14:30:00Z"},  # no symbol
        {
            "T": "t",
            "S": "AAPL",
            "p": float("nan"),
            "s": 1,
            "t": "2024-01-02T14:30:00Z",
        },  # NaN -> null in JSON
        {"S": "AAPL"},  # no type
        ["not", "an", "object"],
        17,
    ],
)
def test_malformed_message_is_counted_and_the_rest_survives(bad: object) -> None:
    good = {"T": "t", "S": "MSFT", "p": 370.0, "s": 5, "t": "2024-01-02T14:30:01Z"}
    f = FrameParser("alpaca").parse(orjson.dumps([good, bad, good]))
    assert f.malformed == 1
    assert f.trades.frame()["symbol"].to_list() == ["MSFT", "MSFT"]


@pytest.mark.parametrize("raw", [b"\x00\xff garbage", b'[{"T":"t",', b'"just a string"', b"", b"null"])
def test_undecodable_frame_is_one_malformed_message(raw: bytes) -> None:
    f = FrameParser("alpaca").parse(raw)
    assert (f.messages, f.malformed, f.trades) == (1, 1, None)


def test_garbage_on_a_msgpack_connection() -> None:
    f = FrameParser("alpaca", "msgpack").parse(b"\xc1\xc1\xc1")
    assert f.malformed == 1


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="provider"):
        FrameParser("iex")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="msgpack"):
        FrameParser("polygon", "msgpack")


_trade = st.fixed_dictionaries(
    {
        "T": st.just("t"),
        "S": st.sampled_from(["AAPL", "MSFT", "SPY"]),
        "p": st.floats(0.01, 1e5),
        "s": st.integers(1, 10**6),
        "t": st.integers(1_600_000_000_000_000_000, 1_800_000_000_000_000_000),
    }
)
_junk = st.one_of(
    st.fixed_dictionaries(
        {
            "T": st.just("t"),
            "S": st.just("X"),
            "p": st.text(max_size=3),
            "s": st.integers(1, 9),
            "t": st.integers(0, 10**18),
        }
    ),
    st.fixed_dictionaries({"T": st.sampled_from(["s", "l", "n", "zz"])}),
    st.integers(-(2**63), 2**63 - 1),
    st.none(),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(_trade.map(lambda m: ("ok", m)), _junk.map(lambda m: ("bad", m))), max_size=40))
def test_every_message_is_accounted_for(items: list[tuple[str, object]]) -> None:
    """Property: parsed + malformed + unknown == messages, and the parsed trades are exactly the good ones,
    in order, whatever junk is mixed in (msgpack with ns timestamps, as alpaca-py's wire)."""
    frame = [m if tag == "bad" else dict(m, t=msgpack.Timestamp.from_unix_nano(m["t"])) for tag, m in items]
    f = FrameParser("alpaca", "msgpack").parse(msgpack.packb(frame))
    goods = [m for tag, m in items if tag == "ok"]
    parsed = len(f.trades) if f.trades is not None else 0
    assert parsed == len(goods)
    assert parsed + f.malformed + sum(f.unknown.values()) == len(items) == f.messages
    if goods:
        assert f.trades.data["ts"].tolist() == [m["t"] for m in goods]
        assert f.trades.data["price"].tolist() == [m["p"] for m in goods]


def _rfc3339(ns_: int, digits: int, suffix: str) -> str:
    secs, frac = divmod(ns_, 10**9)
    text = datetime.fromtimestamp(secs, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    if digits:
        text += "." + f"{frac:09d}"[:digits]
    return text + suffix


_number = st.one_of(st.floats(0.01, 1e5), st.integers(1, 10**6))
_spoilt = st.sampled_from([0, -1.5, "1.5", True, None, float("inf")])  # what no provider sends
_ts_ns = st.integers(946_684_800 * 10**9, 4_102_444_800 * 10**9 - 1)


@st.composite
def _wire_message(draw: st.DrawFn, provider: str) -> dict[str, object]:
    """A trade, quote or bar as the provider sends it; one in ten is spoilt somehow (a bad value, a
    missing field, another message type, an odd symbol, a timestamp with an offset instead of Z)."""
    kind = draw(st.sampled_from(["trade", "quote", "bar"]))
    ts = draw(_ts_ns)
    alpaca = provider == "alpaca"
    m: dict[str, object] = (
        {"T": {"trade": "t", "quote": "q", "bar": "b"}[kind], "S": "AAPL",
         "t": _rfc3339(ts, draw(st.integers(0, 9)), "Z")}
        if alpaca else
        {"ev": {"trade": "T", "quote": "Q", "bar": "AM"}[kind], "sym": "AAPL", "t": ts // 10**6}
    )
    fields = {"trade": ["p", "s"], "quote": ["bp", "ap", "bs", "as"], "bar": ["o", "h", "l", "c", "v", "vw"]}
    for k in fields[kind]:
        m[k] = draw(_number)
    if kind == "bar":
        m["l"] = m["h"] = max(m["o"], m["c"])  # type: ignore[type-var]
        if alpaca:
            m["n"] = draw(st.integers(0, 10**6))
        else:
            m["s"] = ts // 10**6
    m[("S" if alpaca else "sym")] = draw(st.sampled_from(["AAPL", "MSFT", "BRK.B", "\u00c9TF"]))
    if draw(st.integers(0, 9)) == 0:
        spoil = draw(st.sampled_from(["value", "missing", "type", "symbol", "offset", "count"]))
        key = draw(st.sampled_from(sorted(m)))
        if spoil == "value":
            m[key] = draw(_spoilt)
        elif spoil == "missing":
            del m[key]
        elif spoil == "type":
            m["T" if alpaca else "ev"] = draw(st.sampled_from(["zz", "success", "LULD", "A"]))
        elif spoil == "symbol":
            m["S" if alpaca else "sym"] = draw(st.sampled_from(["", 7]))
        elif spoil == "offset" and alpaca:
            m["t"] = _rfc3339(ts, 3, "+00:00")
        elif spoil == "count" and kind == "bar":
            m["n"] = 3.0
    return m


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_rust_fast_path_equals_the_general_parser(data: st.DataObject) -> None:
    """The Rust fast path (JSON frames of only well-formed trades, quotes and bars) gives exactly what the
    Python parser gives, and hands every other frame to it: random frames of both providers mixing good
    messages with bad values, missing fields, other types and timestamps in several forms."""
    provider = data.draw(st.sampled_from(["alpaca", "polygon"]))
    msgs = data.draw(st.lists(_wire_message(provider), min_size=1, max_size=12))
    raw = orjson.dumps(msgs)
    fast, general = FrameParser(provider), FrameParser(provider)  # type: ignore[arg-type]
    general._fast = None
    a, b = fast.parse(raw), general.parse(raw)
    assert (a.messages, a.malformed, a.unknown, a.control) == (b.messages, b.malformed, b.unknown, b.control)
    for kind in ("trades", "quotes", "bars"):
        ca, cb = getattr(a, kind), getattr(b, kind)
        assert (ca is None) == (cb is None), kind
        if ca is not None:
            assert ca.frame().equals(cb.frame()), kind


def test_fast_path_takes_the_common_frames() -> None:
    """Frames of well-formed trades, quotes and bars (as the venue and the providers send them) are taken
    by the Rust path, with the same str object for a symbol frame after frame."""
    from hybridtrader import _core

    dec = _core.FrameDecoder("alpaca")
    trades = [m for m in ALPACA_FRAME if m["T"] in ("t", "q", "b")]
    first, second = dec.decode(orjson.dumps(trades)), dec.decode(orjson.dumps(trades).decode())
    assert first is not None and second is not None and first[0] == len(trades)
    assert first[1][0][0] is second[1][0][0]  # the interned "AAPL"
    assert dec.decode(orjson.dumps(ALPACA_FRAME)) is None  # a control message: the general parser's
    with pytest.raises(TypeError, match="bytes or str"):
        dec.decode(17)
    with pytest.raises(ValueError, match="provider"):
        _core.FrameDecoder("iex")
