"""Alpaca and Polygon streams of the venue: alpaca-py's StockDataStream (msgpack) and `websockets`
clients (JSON) over loopback."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from typing import Any

import msgpack
import numpy as np
import orjson
import polars as pl
import pytest
import websockets
from alpaca.data.live import StockDataStream
from hybridtrader.config import VenueConfig
from hybridtrader.market.timeframe import Timeframe
from hybridtrader.venue import LOCAL_KEY, LOCAL_SECRET, ReplayMarket, Venue

AUTH = {"action": "auth", "key": LOCAL_KEY, "secret": LOCAL_SECRET}


def _by_symbol(frame: pl.DataFrame, symbol: str) -> pl.DataFrame:
    return frame.filter(pl.col("symbol") == symbol).sort("ts", maintain_order=True)


def test_alpaca_py_stream_msgpack(venue: Venue, market: ReplayMarket) -> None:
    stream = StockDataStream(LOCAL_KEY, LOCAL_SECRET, url_override=venue.urls["alpaca_stream"])
    trades: list[Any] = []
    bars: list[Any] = []
    done = threading.Event()

    async def on_trade(t: Any) -> None:
        trades.append(t)
        if len(trades) >= 300 and bars:
            done.set()

    async def on_bar(b: Any) -> None:
        bars.append(b)

    stream.subscribe_trades(on_trade, "S01")
    stream.subscribe_bars(on_bar, "S01")
    thread = threading.Thread(target=stream.run, daemon=True)
    thread.start()
    assert done.wait(20), f"got {len(trades)} trades, {len(bars)} bars"
    stream.stop()
    thread.join(10)
    assert not thread.is_alive()
    ref = _by_symbol(market.trades.frame, "S01")
    n = 300
    assert [t.price for t in trades[:n]] == ref["price"].head(n).to_list()
    assert [t.timestamp for t in trades[:n]] == ref["ts"].head(n).to_list()  # msgpack Timestamp, ns cut to us
    assert {t.symbol for t in trades} == {"S01"}
    ref_bar = _by_symbol(market.bars(Timeframe(1, "Min")).frame, "S01").row(0, named=True)
    assert (bars[0].open, bars[0].close, bars[0].volume) == (ref_bar["open"], ref_bar["close"],
                                                             ref_bar["volume"])


async def _recv(ws: Any) -> list[dict[str, Any]]:
    return orjson.loads(await asyncio.wait_for(ws.recv(), 10))


def test_alpaca_json_protocol_and_errors(venue: Venue, market: ReplayMarket) -> None:
    async def main() -> list[dict[str, Any]]:
        async with websockets.connect(venue.urls["alpaca_stream"], compression=None) as ws:
            assert await _recv(ws) == [{"T": "success", "msg": "connected"}]
            await ws.send(orjson.dumps({"action": "subscribe", "trades": ["S00"]}))
            assert await _recv(ws) == [{"T": "error", "code": 401, "msg": "not authenticated"}]
            await ws.send("not json")
            assert (await _recv(ws))[0]["code"] == 400
            await ws.send(orjson.dumps(AUTH))
            assert await _recv(ws) == [{"T": "success", "msg": "authenticated"}]
            await ws.send(orjson.dumps(AUTH))
            assert (await _recv(ws))[0]["code"] == 403
            await ws.send(orjson.dumps({"action": "subscribe", "trades": ["S00"], "quotes": ["s02"]}))
            sub = (await _recv(ws))[0]
            assert sub["T"] == "subscription" and sub["trades"] == ["S00"] and sub["quotes"] == ["S02"]
            got: list[dict[str, Any]] = []
            while sum(m["T"] == "t" for m in got) < 50 or not any(m["T"] == "q" for m in got):
                got.extend(await _recv(ws))
            return got

    got = asyncio.run(main())
    trades = [m for m in got if m["T"] == "t"]
    ref = _by_symbol(market.trades.frame, "S00")
    assert [m["p"] for m in trades[:50]] == ref["price"].head(50).to_list()
    assert trades[0]["t"] == ref["ts"].dt.strftime("%Y-%m-%dT%H:%M:%S%.9fZ")[0]
    assert set(trades[0]) == {"T", "S", "i", "x", "p", "s", "c", "t", "z"}
    q = next(m for m in got if m["T"] == "q")
    assert q["S"] == "S02" and set(q) == {"T", "S", "bx", "bp", "bs", "ax", "ap", "as", "c", "t", "z"}


def _expect_error(url: str, messages: list[dict[str, Any]], code: int, binary: bool = False) -> None:
    async def main() -> None:
        headers = {"Content-Type": "application/msgpack"} if binary else None
        async with websockets.connect(url, additional_headers=headers) as ws:
            decode = msgpack.unpackb if binary else orjson.loads
            assert decode(await ws.recv())[0]["msg"] == "connected"
            last: list[dict[str, Any]] = []
            for m in messages:
                await ws.send(msgpack.packb(m) if binary else orjson.dumps(m))
                last = decode(await asyncio.wait_for(ws.recv(), 10))
            if not messages:
                last = decode(await asyncio.wait_for(ws.recv(), 10))
            assert last[0]["T"] == "error" and last[0]["code"] == code, last

    asyncio.run(main())


def test_auth_failed_timeout_symbol_and_connection_limits(market: ReplayMarket) -> None:
    cfg = VenueConfig(speed="max", stream_auth_timeout_s=0.3, stream_max_symbols=2)
    with Venue(cfg, market=market) as v:
        url = v.urls["alpaca_stream"]
        _expect_error(url, [{"action": "auth", "key": LOCAL_KEY, "secret": "wrong"}], 402, binary=True)
        _expect_error(url, [], 404)
        _expect_error(url, [AUTH, {"action": "subscribe", "trades": ["S00", "S01", "S02"]}], 405)

        async def second_connection() -> None:
            async with websockets.connect(url) as first:
                await first.recv()
                await first.send(orjson.dumps(AUTH))
                assert (await _recv(first))[0]["msg"] == "authenticated"
                async with websockets.connect(url) as second:
                    await second.recv()
                    await second.send(orjson.dumps(AUTH))
                    assert (await _recv(second))[0]["code"] == 406

        asyncio.run(second_connection())


def test_replay_follows_the_clock_speed(market: ReplayMarket) -> None:
    speed = 120.0
    with Venue(VenueConfig(speed=speed), market=market) as v:
        async def main() -> tuple[list[dict[str, Any]], float, int]:
            async with websockets.connect(v.urls["alpaca_stream"]) as ws:
                await ws.recv()
                await ws.send(orjson.dumps(AUTH))
                await ws.recv()
                await ws.send(orjson.dumps({"action": "subscribe", "trades": ["*"]}))
                await ws.recv()
                got: list[dict[str, Any]] = []
                t0 = time.monotonic()
                while time.monotonic() - t0 < 1.0:
                    with contextlib.suppress(TimeoutError):
                        got.extend(orjson.loads(await asyncio.wait_for(ws.recv(), 0.2)))
                return got, time.monotonic() - t0, v.clock.now_ns()

        got, _, now = asyncio.run(main())
    assert got, "nothing streamed in one second at 120x"
    latest = pl.Series([m["t"] for m in got]).str.to_datetime(time_unit="ns", time_zone="UTC").max()
    assert latest.timestamp() * 1e9 <= now  # never ahead of the replay clock
    assert {m["S"] for m in got} == set(market.names)


def test_polygon_stream(venue: Venue, market: ReplayMarket) -> None:
    async def main() -> list[dict[str, Any]]:
        async with websockets.connect(venue.urls["polygon_stream"]) as ws:
            assert (await _recv(ws))[0] == {"ev": "status", "status": "connected",
                                            "message": "Connected Successfully"}
            await ws.send(orjson.dumps({"action": "auth", "params": LOCAL_KEY}))
            assert (await _recv(ws))[0]["status"] == "auth_success"
            await ws.send(orjson.dumps({"action": "subscribe", "params": "T.S02,AM.*,Q.S02,A.S02"}))
            statuses = await _recv(ws)
            assert [s["message"] for s in statuses] == ["subscribed to: T.S02", "subscribed to: AM.*",
                                                        "subscribed to: Q.S02", "subscribed to: A.S02"]
            got: list[dict[str, Any]] = []
            while sum(m["ev"] == "AM" for m in got) < 3:
                got.extend(await _recv(ws))
            return got

    got = asyncio.run(main())
    trades = [m for m in got if m["ev"] == "T"]
    ref = _by_symbol(market.trades.frame, "S02")
    assert [m["p"] for m in trades[:20]] == ref["price"].head(20).to_list()
    assert trades[0]["t"] == ref["ts"].dt.epoch("ms")[0]
    assert set(trades[0]) == {"ev", "sym", "x", "i", "z", "p", "s", "c", "t", "q"}
    am = [m for m in got if m["ev"] == "AM"]
    bars = market.bars(Timeframe(1, "Min")).frame.sort("ts", "symbol").head(3)
    expected = list(zip(bars["symbol"], bars["open"], bars["close"], strict=True))
    assert [(m["sym"], m["o"], m["c"]) for m in am[:3]] == expected
    assert am[0]["e"] - am[0]["s"] == 60_000 and am[0]["av"] == am[0]["v"] and am[0]["op"] == am[0]["o"]
    a = next(m for m in got if m["ev"] == "A")
    assert a["e"] - a["s"] == 1000 and a["sym"] == "S02"
    q = next(m for m in got if m["ev"] == "Q")
    assert set(q) == {"ev", "sym", "bx", "bp", "bs", "ax", "ap", "as", "c", "i", "t", "q", "z"}


def test_polygon_bad_key(venue: Venue) -> None:
    async def main() -> None:
        async with websockets.connect(venue.urls["polygon_stream"]) as ws:
            await ws.recv()
            await ws.send(orjson.dumps({"action": "auth", "params": "nope"}))
            assert (await _recv(ws))[0]["status"] == "auth_failed"

    asyncio.run(main())


@pytest.mark.parametrize("fault", ["drop", "malformed"])
def test_stream_faults(venue: Venue, fault: str) -> None:
    if fault == "drop":
        venue.set_faults(stream_drop_after_frames=3)
    else:
        venue.set_faults(stream_malformed_every=2)

    async def main() -> tuple[int, Exception | None]:
        frames, bad = 0, None
        async with websockets.connect(venue.urls["alpaca_stream"]) as ws:
            await ws.recv()
            await ws.send(orjson.dumps(AUTH))
            await ws.recv()
            await ws.send(orjson.dumps({"action": "subscribe", "trades": ["*"]}))
            await ws.recv()
            try:
                for _ in range(10):
                    raw = await asyncio.wait_for(ws.recv(), 10)
                    frames += 1
                    orjson.loads(raw)
            except (websockets.ConnectionClosed, orjson.JSONDecodeError) as e:
                bad = e
        return frames, bad

    frames, bad = asyncio.run(main())
    if fault == "drop":
        assert isinstance(bad, websockets.ConnectionClosedError) and frames == 3
    else:
        assert isinstance(bad, orjson.JSONDecodeError) and frames == 2


def test_test_feed_streams_fakepaca(venue: Venue, market: ReplayMarket) -> None:
    test_feed = venue.url.replace("http", "ws") + "/v2/test"
    stream = StockDataStream(LOCAL_KEY, LOCAL_SECRET, url_override=test_feed)
    got: list[Any] = []
    done = threading.Event()

    async def on_trade(t: Any) -> None:
        got.append(t)
        if len(got) >= 20:
            done.set()

    stream.subscribe_trades(on_trade, "FAKEPACA")
    thread = threading.Thread(target=stream.run, daemon=True)
    thread.start()
    assert done.wait(20)
    stream.stop()
    thread.join(10)
    first = _by_symbol(market.trades.frame, market.names[0])
    assert {t.symbol for t in got} == {"FAKEPACA"}
    assert [t.price for t in got[:20]] == first["price"].head(20).to_list()

    async def json_feed() -> list[dict[str, Any]]:
        async with websockets.connect(test_feed) as ws:
            await ws.recv()
            await ws.send(orjson.dumps(AUTH))
            await ws.recv()
            await ws.send(orjson.dumps({"action": "subscribe", "quotes": ["FAKEPACA"]}))
            await ws.recv()
            return await _recv(ws)

    assert {m["S"] for m in asyncio.run(json_feed())} == {"FAKEPACA"}


async def _subscribed(url: str, provider: str, binary: bool = False) -> Any:
    """A websockets client on `url`, authenticated and subscribed to every trade."""
    headers = {"Content-Type": "application/msgpack"} if binary else None
    ws = await websockets.connect(url, additional_headers=headers, compression=None)
    await ws.recv()
    if provider == "alpaca":
        await ws.send(msgpack.packb(AUTH) if binary else orjson.dumps(AUTH))
        await ws.recv()
        sub = {"action": "subscribe", "trades": ["*"]}
        await ws.send(msgpack.packb(sub) if binary else orjson.dumps(sub))
    else:
        await ws.send(orjson.dumps({"action": "auth", "params": LOCAL_KEY}))
        await ws.recv()
        await ws.send(orjson.dumps({"action": "subscribe", "params": "T.*"}))
    await ws.recv()
    return ws


@pytest.mark.parametrize(("provider", "binary"), [("alpaca", False), ("alpaca", True), ("polygon", False)])
def test_unknown_message_fault(venue: Venue, market: ReplayMarket, provider: str, binary: bool) -> None:
    """Every 3rd data frame also carries a message of a type the provider never sends; the data around it
    is untouched."""
    venue.set_faults(stream_unknown_every=3)
    type_key, trade_type, unknown = ("T", "t", "zz") if provider == "alpaca" else ("ev", "T", "ZZ")

    async def main() -> list[list[dict[str, Any]]]:
        ws = await _subscribed(venue.urls[f"{provider}_stream"], provider, binary)
        async with ws:
            decode = msgpack.unpackb if binary else orjson.loads
            return [decode(await asyncio.wait_for(ws.recv(), 10)) for _ in range(9)]

    frames = asyncio.run(main())
    for i, frame in enumerate(frames):
        kinds = [m[type_key] for m in frame]
        expected_first = unknown if i % 3 == 2 else trade_type
        assert kinds[0] == expected_first and set(kinds[1:]) == {trade_type}, (i, kinds[:3])
    prices = [m["p"] for f in frames for m in f if m[type_key] == trade_type]
    ref = market.trades.frame.sort("ts", "symbol")["price"]
    assert prices == ref.head(len(prices)).to_list()  # no trade lost or replaced


def test_streams_down_cuts_and_refuses_one_provider_only(market: ReplayMarket) -> None:
    # A paced venue of its own: at max speed the frames already in flight before the cut are the whole
    # market, which takes seconds to read.
    with Venue(VenueConfig(speed=60.0), market=market) as venue:
        _streams_down(venue)


def _streams_down(venue: Venue) -> None:
    async def main() -> None:
        alpaca = await _subscribed(venue.urls["alpaca_stream"], "alpaca")
        polygon = await _subscribed(venue.urls["polygon_stream"], "polygon")
        async with alpaca, polygon:
            await asyncio.wait_for(alpaca.recv(), 10)
            venue.set_faults(streams_down=["alpaca"])
            # The open Alpaca socket is cut (no close frame) once the frames already in flight are read...
            with pytest.raises(websockets.ConnectionClosedError) as cut:
                while True:
                    await asyncio.wait_for(alpaca.recv(), 10)
            assert cut.value.rcvd is None
            # ... new connections are refused at the upgrade ...
            with pytest.raises(websockets.InvalidStatus) as refused:
                await websockets.connect(venue.urls["alpaca_stream"])
            assert refused.value.response.status_code == 503
            # ... while Polygon keeps streaming on its open socket and accepts new ones.
            for _ in range(5):
                assert orjson.loads(await asyncio.wait_for(polygon.recv(), 10))[0]["ev"] == "T"
            second = await _subscribed(venue.urls["polygon_stream"], "polygon")
            async with second:
                assert orjson.loads(await asyncio.wait_for(second.recv(), 10))[0]["ev"] == "T"
        venue.clear_faults()
        back = await _subscribed(venue.urls["alpaca_stream"], "alpaca")
        async with back:
            assert orjson.loads(await asyncio.wait_for(back.recv(), 10))[0]["T"] == "t"

    asyncio.run(main())


def test_subscription_starts_at_its_own_market_time(market: ReplayMarket) -> None:
    """At a finite speed a subscription made long after connecting gets the ticks from then on, not the
    ones that happened while the connection sat unsubscribed."""
    with Venue(VenueConfig(speed=600.0), market=market) as v:  # ten market minutes per second

        async def main() -> tuple[int, int, list[dict[str, Any]]]:
            async with websockets.connect(v.urls["alpaca_stream"]) as ws:
                await ws.recv()
                await ws.send(orjson.dumps(AUTH))
                await ws.recv()
                connected = v.clock.now_ns()
                await asyncio.sleep(0.3)  # three market minutes, about 180 trades
                subscribed = v.clock.now_ns()
                await ws.send(orjson.dumps({"action": "subscribe", "trades": ["*"]}))
                await ws.recv()
                got = await _recv(ws)
                return connected, subscribed, got

        connected, subscribed, got = asyncio.run(main())
    first = pl.Series([got[0]["t"]]).str.to_datetime(time_unit="ns", time_zone="UTC").dt.epoch("ns")[0]
    assert subscribed - connected >= 120 * 10**9
    assert first > subscribed


def test_stop_closes_connected_streams_promptly(market: ReplayMarket) -> None:
    """stop() sends every open stream a close frame 1001 (going away) instead of waiting for the clients
    to hang up; that includes a client still in the auth handshake."""
    v = Venue(VenueConfig(speed=60.0, stream_auth_timeout_s=60), market=market).start()

    async def main() -> tuple[float, list[Any]]:
        clients = [await _subscribed(v.urls["alpaca_stream"], "alpaca"),
                   await _subscribed(v.urls["polygon_stream"], "polygon"),
                   await websockets.connect(v.urls["polygon_stream"])]  # connected, never authenticates
        await clients[2].recv()

        async def until_closed(ws: Any) -> Any:
            try:
                while True:
                    await ws.recv()
            except websockets.ConnectionClosed as e:
                return e

        readers = [asyncio.ensure_future(until_closed(ws)) for ws in clients]
        t0 = time.monotonic()
        await asyncio.to_thread(v.stop)
        took = time.monotonic() - t0
        return took, await asyncio.wait_for(asyncio.gather(*readers), 10)

    try:
        took, closes = asyncio.run(main())
    finally:
        v.stop()
    assert took < 5.0, f"stop() took {took:.1f}s with clients connected"  # a hang check: it was 30 s+
    for e in closes:
        assert isinstance(e, websockets.ConnectionClosedOK) and e.rcvd is not None
        assert e.rcvd.code == 1001


def test_json_frames_cut_from_cached_blocks_equal_direct_encoding(market: ReplayMarket) -> None:
    """Frames cut out of block-encoded text equal encoding the rows directly: contiguous runs, filtered
    rows (a symbol subscription) and runs across block boundaries, for every Alpaca and Polygon tape."""
    from hybridtrader.venue import alpaca_stream, polygon_stream, streaming
    from hybridtrader.venue.replay import Tapes

    tapes = Tapes(market)
    polygon = polygon_stream.PolygonStream(None, tapes, None, None, auth_timeout_s=1, batch=1)  # type: ignore[arg-type]
    polygon._day_tapes()
    encoders = [(k, e) for k, e in alpaca_stream._json_encoders().items()] + list(polygon.encoders.items())
    rng = np.random.default_rng(5)
    block = streaming.JSON_BLOCK_ROWS
    for kind, enc in encoders:
        tape = tapes.get(kind)
        n = len(tape)
        starts = [0, max(0, block - 3), max(0, n - 40), *rng.integers(0, n, 6).tolist()]
        for start in starts:
            rows = np.arange(start, min(n, start + int(rng.integers(1, 3 * block))))
            for sel in (rows, rows[tape.code[rows] == 1], rows[rng.random(rows.size) < 0.2]):
                if sel.size == 0:
                    continue
                direct = [orjson.loads(line) for line in enc.lines(tape, sel).splitlines()]
                assert orjson.loads(enc(tape, sel)) == direct, (kind, start, sel.size)
        assert len(enc._blocks) <= streaming.JSON_CACHED_BLOCKS


def test_send_log_stamps_every_streamed_trade(market: ReplayMarket) -> None:
    """With venue.record_sends every trade sent is logged with its time and the wall time its frame went
    out: the log holds exactly what the client received, stamped no later than it arrived."""
    import urllib.error
    import urllib.request

    with Venue(VenueConfig(speed="max"), market=market) as off:
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(f"{off.url}/venue/sends")
        assert e.value.code == 409
    with Venue(VenueConfig(speed=600.0, record_sends=True), market=market) as v:

        async def main() -> tuple[list[int], list[int]]:
            ts, arrived = [], []
            async with websockets.connect(v.urls["alpaca_stream"]) as ws:
                await ws.recv()
                await ws.send(orjson.dumps(AUTH))
                await ws.recv()
                await ws.send(orjson.dumps({"action": "subscribe", "trades": ["S00", "S02"]}))
                await ws.recv()
                while len(ts) < 100:
                    got = await _recv(ws)
                    arrived += [time.time_ns()] * len(got)
                    ts += [m["t"] for m in got]
            return ts, arrived

        ts, arrived = asyncio.run(main())
        time.sleep(0.2)  # frames sent after the client's last read are logged too
        with urllib.request.urlopen(f"{v.url}/venue/sends") as r:
            (conn,) = orjson.loads(r.read())["connections"]
        urllib.request.urlopen(urllib.request.Request(f"{v.url}/venue/sends", method="DELETE"))
        with urllib.request.urlopen(f"{v.url}/venue/sends") as r:
            assert orjson.loads(r.read())["connections"] == []
    assert conn["provider"] == "alpaca" and set(conn["tapes"]) == {"trades"}
    got_ns = pl.Series(ts).str.to_datetime(time_unit="ns", time_zone="UTC").dt.epoch("ns").to_list()
    logged = conn["tapes"]["trades"]
    assert logged["ts"][: len(got_ns)] == got_ns
    sent = np.array(logged["sent_ns"][: len(got_ns)])
    assert (sent <= np.array(arrived)).all() and (np.diff(sent) >= 0).all()
