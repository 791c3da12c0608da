"""StreamingAdapter against the local venue over real sockets.

Reference bars are computed here with Polars from the ground-truth ticks the venue replays (an
independent batch aggregation); the streamed sequence must equal it bar for bar: no holes, no duplicates,
same values, whatever the venue does to the connections.
"""

from __future__ import annotations

import asyncio
import gc
import random
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import orjson
import polars as pl
import pytest
from bar_reference import ohlcv
from hybridtrader.config import Config, VenueConfig
from hybridtrader.market.synth import SyntheticMarket, generate_market
from hybridtrader.stream import AuthError, ConnectionLimitError, StreamingAdapter
from hybridtrader.stream.connection import Connection
from hybridtrader.stream.providers import AlpacaProtocol, Subscriptions
from hybridtrader.venue import LOCAL_KEY, LOCAL_SECRET, ReplayMarket, Venue
from websockets.asyncio.client import connect

SYMBOLS = ["SAAA", "SAAB", "SAAC"]


@pytest.fixture(scope="module")
def market() -> SyntheticMarket:
    return generate_market(symbols=SYMBOLS, sessions=1, trades_per_minute=12, quotes_per_trade=0.5, seed=3)


@pytest.fixture
def venue_factory(market: SyntheticMarket) -> Iterator[Callable[..., Venue]]:
    started: list[Venue] = []

    def make(speed: float | str = "max", **kw: Any) -> Venue:
        v = Venue(VenueConfig(speed=speed, **kw), market=market).start()
        started.append(v)
        return v

    yield make
    for v in started:
        v.stop()


def ws_url(v: Venue) -> str:
    return v.url.replace("http://", "ws://")


def config(alpaca: Venue, polygon: Venue | None = None, **stream: Any) -> Config:
    stream = {
        # Market time: 0.3 s of wall time at 400x. The venue, the adapter and the REST backfill share one
        # process (and this machine other jobs): a tick delayed past the watermark would be late.
        "watermark_ms": 120_000,
        "stale_after_s": 0.5,
        "open_timeout_s": 5.0,
        "backoff": {"initial_s": 0.02, "max_s": 0.3, "connection_limit_s": 0.5},
        **stream,
    }
    return Config.model_validate(
        {
            "alpaca": {
                "api_key": LOCAL_KEY,
                "secret_key": LOCAL_SECRET,
                "stream_url": ws_url(alpaca),
                "data_url": (polygon or alpaca).url,
                "data_sources": {
                    "primary": "alpaca",
                    "secondary": ["polygon"],
                    "polygon": {"api_key": LOCAL_KEY, "stream_url": ws_url(polygon or alpaca)},
                    "stream": stream,
                },
            }
        }
    )


def reference(trades: pl.DataFrame, every: str = "1m") -> pl.DataFrame:
    """Batch bars of the ground-truth ticks with Polars (arrival order = ts order, as the venue replays)."""
    return (
        trades.sort("ts", maintain_order=True)
        .group_by("symbol", pl.col("ts").dt.truncate(every), maintain_order=True)
        .agg(ohlcv())
        .sort("ts", "symbol")
    )


def assert_same_bars(got: pl.DataFrame, ref: pl.DataFrame) -> None:
    assert got.select("symbol", "ts").is_duplicated().sum() == 0, "a bar was delivered twice"
    g = got.sort("ts", "symbol")
    assert g.select("symbol", "ts").equals(ref.select("symbol", "ts")), "bar sequence has holes or extras"
    for c in ("open", "high", "low", "close", "volume", "trades"):
        assert g[c].to_list() == ref[c].to_list(), c
    assert ((g["vwap"] - ref["vwap"]).abs() <= 1e-9 * ref["vwap"]).all()


def same_span(got: pl.DataFrame, trades: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The streamed non-partial bars and the reference bars over the span the stream covered completely:
    from its first bar to before its last closed interval (where another symbol's bar may still have been
    open, flushed as partial, at close)."""
    full = got.filter(~pl.col("partial"))
    lo, hi = full["ts"].min(), full["ts"].max()
    ref = reference(trades).filter((pl.col("ts") >= lo) & (pl.col("ts") < hi))
    return full.filter(pl.col("ts") < hi), ref


async def wait_for(cond: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


# ------------------------------------------------------------------------ stream == batch
@pytest.mark.parametrize(
    ("provider", "encoding", "unknown_every"),
    [
        ("alpaca", "json", None),
        ("alpaca", "msgpack", None),
        ("polygon", "json", None),
        # the venue slips a message of a type the provider never sends into every 4th data frame
        ("alpaca", "msgpack", 4),
        ("polygon", "json", 4),
    ],
)
def test_stream_bars_equal_batch_aggregation(
    venue_factory: Callable[..., Venue],
    market: SyntheticMarket,
    provider: str,
    encoding: str,
    unknown_every: int | None,
) -> None:
    v = venue_factory("max")
    v.set_faults(stream_unknown_every=unknown_every)
    trades = market.trades.filter(pl.col("symbol").is_in(SYMBOLS[:2]))
    bars: list[pl.DataFrame] = []
    seen = {"trades": 0, "async_calls": 0}

    async def main() -> dict[str, Any]:
        # clock=None: at max replay speed only the ticks' own time moves the bars.
        a = StreamingAdapter(config(v), clock=None)
        a.on_bar(bars.append)

        @a.on_trade
        async def count(frame: pl.DataFrame) -> None:
            seen["trades"] += frame.height
            seen["async_calls"] += 1

        if provider == "alpaca":
            await a.connect_alpaca("sip", encoding=encoding)  # type: ignore[arg-type]
        else:
            await a.connect_polygon()
        await a.subscribe_trades(SYMBOLS[:2])
        await wait_for(lambda: a.counts["trades"] >= trades.height, 60)
        await a.close()
        return a.stats()

    stats = asyncio.run(main())
    got = pl.concat(bars)
    # Bars closed on time except the last of a symbol, which close() flushed flagged partial.
    partial = got.filter(pl.col("partial"))
    last = got.group_by("symbol").agg(pl.col("ts").max())
    assert 1 <= partial.height <= 2
    assert partial.join(last, on=["symbol", "ts"]).height == partial.height
    assert not got["backfilled"].any()
    assert_same_bars(got, reference(trades))
    assert seen["trades"] == trades.height == stats["trades"]
    assert stats["malformed"] == stats["late"] == stats["reconnects"] == 0
    assert stats["latency_p50_us"] is not None and stats["latency_p99_us"] >= stats["latency_p50_us"]
    if unknown_every is None:
        assert stats["unknown"] == 0 and stats["unknown_types"] == {}
    else:  # counted by type, and nothing else disturbed (bars, trades and no reconnect checked above)
        unknown = "zz" if provider == "alpaca" else "ZZ"
        assert stats["unknown_types"] == {unknown: stats["unknown"]}
        assert stats["unknown"] >= stats["frames"] // unknown_every - 1 >= 1


# ------------------------------------------------------------------------------ faults
def test_random_drops_and_malformed_frames_leave_no_hole(
    venue_factory: Callable[..., Venue], market: SyntheticMarket
) -> None:
    v = venue_factory(400.0)  # 6.7 market minutes per second
    bars: list[pl.DataFrame] = []
    rng = random.Random(7)

    async def main() -> dict[str, Any]:
        a = StreamingAdapter(config(v), clock=v.clock.now_ns)
        a.on_bar(bars.append)
        await a.connect_alpaca()
        await a.subscribe_trades(SYMBOLS)
        end = time.monotonic() + 3.0
        while time.monotonic() < end:  # a new random drop point (in frames) every 0.2 s
            v.set_faults(
                stream_drop_after_frames=rng.randint(3, 60),
                stream_malformed_every=rng.randint(5, 20),
                http_5xx_burst=rng.choice([0, 0, 2]),  # and now and then the backfill's REST calls fail
            )
            await asyncio.sleep(0.2)
        v.clear_faults()
        await asyncio.sleep(1.0)
        await a.close()
        return a.stats()

    stats = asyncio.run(main())
    got = pl.concat(bars)
    assert stats["reconnects"] >= 5 and stats["malformed"] >= 1, stats
    assert stats["bars_backfilled"] > 0
    assert stats["gaps_pending"] == 0
    full = got.filter(~pl.col("partial"))
    assert full.height >= 45  # about 20 minutes of three symbols
    assert_same_bars(*same_span(got, market.trades))


def test_primary_dies_secondary_takes_over_and_back(
    venue_factory: Callable[..., Venue], market: SyntheticMarket
) -> None:
    speed = 400.0
    secondary = venue_factory(speed)  # Polygon stream + REST
    primary = Venue(VenueConfig(speed=speed), market=market)
    primary.clock = secondary.clock  # one market clock for both venues
    primary.start()
    bars: list[pl.DataFrame] = []
    sources: list[str | None] = []

    async def main() -> dict[str, Any]:
        a = StreamingAdapter(config(primary, secondary), clock=secondary.clock.now_ns)
        a.on_bar(bars.append)
        a.on_bar(lambda _: sources.append(a.active_source))
        await a.connect_alpaca()
        await a.connect_polygon()
        await a.subscribe_trades(SYMBOLS)
        await asyncio.sleep(0.8)
        assert a.active_source == "alpaca"
        primary.set_faults(stream_drop_after_frames=1)  # every primary connection dies at once
        await wait_for(lambda: a.active_source == "polygon", 5)
        await asyncio.sleep(1.0)  # 6.7 market minutes on the secondary
        primary.clear_faults()
        await wait_for(lambda: a.active_source == "alpaca", 5)
        await asyncio.sleep(0.8)
        await a.close()
        return a.stats()

    try:
        stats = asyncio.run(main())
    finally:
        primary.stop()
    assert stats["failovers"] == 1 and stats["failbacks"] == 1
    assert "polygon" in sources  # bars were delivered while the secondary was active
    got = pl.concat(bars)
    full = got.filter(~pl.col("partial"))
    assert full.height >= 45
    assert_same_bars(*same_span(got, market.trades))
    # Most bars came from the live streams, not from REST.
    assert full["backfilled"].sum() < full.height / 2


def test_primary_stream_down_on_one_venue_fails_over_and_back(
    venue_factory: Callable[..., Venue], market: SyntheticMarket
) -> None:
    """One venue serves both streams; its Alpaca endpoint goes down (open socket cut, reconnects refused
    with 503) while Polygon keeps serving, then comes back."""
    v = venue_factory(400.0)
    bars: list[pl.DataFrame] = []

    async def main() -> tuple[dict[str, Any], Connection]:
        a = StreamingAdapter(config(v), clock=v.clock.now_ns)
        a.on_bar(bars.append)
        await a.connect_alpaca()
        await a.connect_polygon()
        await a.subscribe_trades(SYMBOLS)
        await asyncio.sleep(0.8)
        assert a.active_source == "alpaca"
        v.set_faults(streams_down=["alpaca"])
        await wait_for(lambda: a.active_source == "polygon", 5)
        alpaca = a._sources["alpaca"]
        await wait_for(lambda: alpaca.attempts >= alpaca.connects + 2, 5)  # reconnects are refused...
        assert not alpaca.live and "503" in str(alpaca.last_error)
        await asyncio.sleep(0.5)
        v.clear_faults()  # ... until the endpoint is back
        await wait_for(lambda: a.active_source == "alpaca", 5)
        await asyncio.sleep(0.8)
        await a.close()
        return a.stats(), alpaca

    stats, alpaca = asyncio.run(main())
    assert stats["failovers"] == 1 and stats["failbacks"] == 1
    assert stats["sources"]["alpaca"]["drops"] >= 1 and stats["sources"]["polygon"]["drops"] == 0
    assert alpaca.connects == 2
    got = pl.concat(bars)
    full = got.filter(~pl.col("partial"))
    assert full.height >= 45
    assert_same_bars(*same_span(got, market.trades))
    assert full["backfilled"].sum() < full.height / 2


def test_silent_primary_is_failed_over(venue_factory: Callable[..., Venue], market: SyntheticMarket) -> None:
    """The primary stays connected but its feed stops (its market ends after 8 minutes): stale after
    stale_after_s, the secondary takes over and the bars go on without a hole."""
    speed = 400.0
    secondary = venue_factory(speed)
    cut = market.trades["ts"].min() + timedelta(minutes=8)
    short = ReplayMarket(
        trades=market.trades.filter(pl.col("ts") < cut),
        quotes=market.quotes.filter(pl.col("ts") < cut),
        symbols=market.symbols,
        earnings=market.earnings,
    )
    primary = Venue(VenueConfig(speed=speed), market=short)
    primary.clock = secondary.clock
    primary.start()
    bars: list[pl.DataFrame] = []

    async def main() -> dict[str, Any]:
        a = StreamingAdapter(config(primary, secondary), clock=secondary.clock.now_ns)
        a.on_bar(bars.append)
        await a.connect_alpaca()
        await a.connect_polygon()
        await a.subscribe_trades(SYMBOLS)
        await wait_for(lambda: a.active_source == "polygon", 10)
        await asyncio.sleep(1.0)
        await a.close()
        return a.stats()

    try:
        stats = asyncio.run(main())
    finally:
        primary.stop()
    assert stats["failovers"] == 1 and stats["failbacks"] == 0
    assert stats["sources"]["alpaca"]["drops"] == 0  # it never disconnected: it went quiet
    got = pl.concat(bars)
    full, ref = same_span(got, market.trades)
    assert full["ts"].max() > cut  # bars went on past the primary's end
    assert_same_bars(full, ref)


def test_failing_handler_is_counted_and_the_stream_survives(venue_factory: Callable[..., Venue]) -> None:
    v = venue_factory("max", stream_batch=50)
    calls = {"bad": 0, "good": 0, "quotes": 0}

    async def main() -> dict[str, Any]:
        a = StreamingAdapter(config(v), clock=None)

        @a.on_trade
        def bad(frame: pl.DataFrame) -> None:
            calls["bad"] += 1
            raise RuntimeError("handler bug")

        @a.on_trade
        def good(frame: pl.DataFrame) -> None:
            calls["good"] += 1

        @a.on_quote
        async def quotes(frame: pl.DataFrame) -> None:
            assert frame.columns == ["symbol", "ts", "bid", "ask", "bid_size", "ask_size"]
            calls["quotes"] += 1

        v.set_faults(stream_malformed_every=4)
        await a.connect_alpaca()
        await a.subscribe_trades(SYMBOLS[:1])
        await a.subscribe_quotes(SYMBOLS[:1])
        await wait_for(lambda: calls["good"] >= 30 and calls["quotes"] >= 5, 30)
        await a.close()
        return a.stats()

    stats = asyncio.run(main())
    assert calls["bad"] == calls["good"] >= 30  # both handlers saw every trade batch
    assert stats["handler_errors"] == calls["bad"]
    assert stats["malformed"] >= 10
    assert stats["reconnects"] == 0


@pytest.mark.parametrize("provider", ["alpaca", "polygon"])
def test_provider_bars_and_unsubscribe(
    venue_factory: Callable[..., Venue], market: SyntheticMarket, provider: str
) -> None:
    v = venue_factory(1200.0)  # 20 market minutes per second
    seen: dict[str, list[pl.DataFrame]] = {"trades": [], "provider_bars": []}

    async def main() -> None:
        a = StreamingAdapter(config(v), clock=v.clock.now_ns)
        a.on_trade(seen["trades"].append)
        a.on_provider_bar(seen["provider_bars"].append)
        await (a.connect_alpaca() if provider == "alpaca" else a.connect_polygon())
        await a.subscribe_trades(SYMBOLS[:2])
        await a.subscribe_bars(SYMBOLS[:1])
        await wait_for(lambda: len(seen["provider_bars"]) >= 3, 10)
        await a.unsubscribe_trades(SYMBOLS[1:2])
        await asyncio.sleep(0.3)  # frames already in flight may still carry it
        n = sum(f.filter(pl.col("symbol") == SYMBOLS[1]).height for f in seen["trades"])
        await asyncio.sleep(0.7)  # fourteen market minutes more
        assert sum(f.filter(pl.col("symbol") == SYMBOLS[1]).height for f in seen["trades"]) == n
        assert sum(f.filter(pl.col("symbol") == SYMBOLS[0]).height for f in seen["trades"]) > 0
        await a.close()

    asyncio.run(main())
    got = pl.concat(seen["provider_bars"])
    assert set(got["symbol"]) == {SYMBOLS[0]}
    # The provider's own minute bars are the venue's bars of the same ticks.
    ref = reference(market.trades.filter(pl.col("symbol") == SYMBOLS[0])).join(
        got.select("ts"), on="ts", how="semi"
    )
    assert got.height == ref.height >= 3
    for c in ("open", "high", "low", "close", "volume"):
        assert got.sort("ts")[c].to_list() == ref[c].to_list(), c


# ------------------------------------------------------------------------- auth and limits
@pytest.mark.parametrize("provider", ["alpaca", "polygon"])
def test_bad_credentials_fail_fast_without_retrying(
    venue_factory: Callable[..., Venue], provider: str
) -> None:
    v = venue_factory("max")
    cfg = config(v)
    cfg.alpaca.api_key = cfg.alpaca.data_sources.polygon.api_key = "wrong"  # type: ignore[assignment]

    async def main() -> StreamingAdapter:
        a = StreamingAdapter(cfg, clock=None)
        with pytest.raises(AuthError, match="authentication failed"):
            if provider == "alpaca":
                await a.connect_alpaca()
            else:
                await a.connect_polygon()
        await a.close()
        return a

    a = asyncio.run(main())
    assert a.stats()["sources"] == {}


def test_connection_limit_is_a_clear_error_and_backs_off(venue_factory: Callable[..., Venue]) -> None:
    v = venue_factory(600.0)
    cfg = config(v)

    async def main() -> None:
        # Another client holds the account's only stream slot (the venue allows one, like Alpaca's plans).
        async with connect(ws_url(v) + "/v2/iex", proxy=None) as blocker:
            await blocker.recv()
            await blocker.send(orjson.dumps({"action": "auth", "key": LOCAL_KEY, "secret": LOCAL_SECRET}))
            assert "authenticated" in str(await blocker.recv())
            a = StreamingAdapter(cfg, clock=None)
            with pytest.raises(ConnectionLimitError, match="406"):
                await a.connect_alpaca()
            await a.close()
            # A connection that keeps trying is refused with 406 each time and waits connection_limit_s
            # (0.5 s here) between attempts instead of retrying every 20-300 ms.
            proto = AlpacaProtocol(ws_url(v) + "/v2/iex", LOCAL_KEY, LOCAL_SECRET)
            conn = Connection("alpaca", proto, Subscriptions(), _ignore, cfg.alpaca.data_sources.stream)
            conn.start()
            await asyncio.sleep(1.2)
            assert 2 <= conn.attempts <= 3
            assert isinstance(conn.last_error, ConnectionLimitError) and not conn.live
        await wait_for(lambda: conn.live, 2.0)  # the slot is free again: it comes back by itself
        await conn.close()

    asyncio.run(main())


async def _ignore(*_: object) -> None:
    return None


def test_close_flushes_partial_bars_and_closes_sockets(venue_factory: Callable[..., Venue]) -> None:
    v = venue_factory(60.0)  # one market minute per second: close() lands mid-bar
    bars: list[pl.DataFrame] = []

    async def main() -> StreamingAdapter:
        a = StreamingAdapter(config(v), clock=v.clock.now_ns)
        a.on_bar(bars.append)
        await a.connect_alpaca()
        await a.subscribe_trades(SYMBOLS)
        await asyncio.sleep(0.5)
        await a.close()
        return a

    a = asyncio.run(main())
    got = pl.concat(bars)
    assert got["partial"].all() and set(got["symbol"]) == set(SYMBOLS)
    assert a.stats()["sources"]["alpaca"]["state"] == "closed"


@pytest.mark.parametrize("freeze", [True, False])
def test_start_freezes_the_heap_out_of_the_gc(venue_factory: Callable[..., Venue], freeze: bool) -> None:
    """gc_freeze (default on) moves what is alive when the stream starts out of the collector's scans, so
    a full collection does not stall the loop over the whole heap; off leaves the collector alone."""
    v = venue_factory()
    gc.unfreeze()

    async def main() -> int:
        a = StreamingAdapter(config(v, gc_freeze=freeze))
        await a.connect_alpaca()
        frozen = gc.get_freeze_count()
        await a.close()
        return frozen

    try:
        frozen = asyncio.run(main())
    finally:
        gc.unfreeze()
    assert (frozen > 10_000) if freeze else (frozen == 0)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="every"):
        StreamingAdapter(Config(), every="90s")
    a = StreamingAdapter(Config())
    with pytest.raises(ValueError, match=r"alpaca\.stream_url"):
        asyncio.run(a.connect_alpaca())
    with pytest.raises(ValueError, match="feed"):
        asyncio.run(a.connect_alpaca("nasdaq"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="symbols"):
        asyncio.run(a.subscribe_trades(["AAPL", "not a symbol"]))
    with pytest.raises(ValueError, match="handler"):
        a.on_bar(42)  # type: ignore[arg-type]
