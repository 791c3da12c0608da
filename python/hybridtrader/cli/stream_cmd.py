"""`hybridtrader stream`: stream trades into bars and print the bars as they close.

Without a stream URL in the config it starts the local venue in-process, replaying a synthetic market of
the requested symbols at `--speed`, and streams from it; with `alpaca.stream_url` (and keys in the
environment) it streams from the real provider. Ctrl-C or `--duration` ends it with a stats summary.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import time
from collections import deque
from typing import Any

import polars as pl
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from hybridtrader.config import Config, load_config
from hybridtrader.credentials import drop_keys_for_local_venue
from hybridtrader.errors import ConfigError
from hybridtrader.market.calendar import NEW_YORK
from hybridtrader.stream import StreamingAdapter, parse_every

ROWS = 20  # bars shown in the live table
SYNTHETIC = "SYNTHETIC prices from the local venue, not real market data"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "stream",
        help="stream trades into bars (local venue by default) and print bars as they close",
        description="Stream trades from Alpaca or Polygon into bars built by the Rust aggregator. With no "
        "stream URL configured, a local venue replaying a synthetic market is started in-process.",
    )
    p.add_argument("--symbols", required=True, help="comma-separated symbols, e.g. AAPL,MSFT")
    p.add_argument(
        "--provider",
        choices=["alpaca", "polygon"],
        default=None,
        help="stream source (default: alpaca.data_sources.primary)",
    )
    p.add_argument(
        "--failover",
        action="store_true",
        help="also connect the configured secondary source and fail over to it",
    )
    p.add_argument(
        "--feed",
        choices=["iex", "sip", "delayed_sip", "test"],
        default=None,
        help="Alpaca feed (default: alpaca.feed)",
    )
    p.add_argument("--every", default=None, help="bar interval, e.g. 1m, 5m, 1h (default: from config)")
    p.add_argument(
        "--speed",
        type=float,
        default=60.0,
        help="local venue replay speed: 1 real time, 60 a market minute per second (default 60)",
    )
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds (wall time)")
    p.add_argument("--config", help="YAML config (default: $HYBRIDTRADER_CONFIG or built-in)")
    p.set_defaults(run=run)


def _symbols(text: str) -> list[str]:
    syms = [s.strip().upper() for s in text.split(",") if s.strip()]
    if not syms:
        raise ConfigError(f"--symbols: expected a comma-separated list, got {text!r}")
    return list(dict.fromkeys(syms))


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    symbols = _symbols(args.symbols)
    if args.every is not None:
        parse_every(args.every)
    if args.speed <= 0:
        raise ConfigError(f"--speed: must be > 0, got {args.speed}")
    if args.duration is not None and args.duration <= 0:
        raise ConfigError(f"--duration: must be > 0, got {args.duration}")
    console = Console()
    venue = None
    if cfg.alpaca.stream_url is None:
        venue = _local_venue(cfg, symbols, args.speed, console)
    else:
        polygon = cfg.alpaca.data_sources.polygon.stream_url or "not configured"
        console.print(f"streams: alpaca {cfg.alpaca.stream_url}, polygon {polygon}; REST backfill "
                      f"{cfg.alpaca.data_url or 'not configured'}")
    try:
        stats = asyncio.run(_stream(cfg, args, symbols, venue, console))
    finally:
        if venue is not None:
            venue.stop()
    console.print(_summary(stats))
    return 0


def _local_venue(cfg: Config, symbols: list[str], speed: float, console: Console) -> Any:
    from hybridtrader.market.synth import generate_market
    from hybridtrader.venue import Venue

    with console.status(f"generating a synthetic session of {', '.join(symbols)} for the local venue"):
        market = generate_market(symbols=symbols, sessions=1, seed=cfg.venue.market.seed)
    drop_keys_for_local_venue(cfg)  # the URLs below are the local venue's: real keys must not go there
    vcfg = cfg.venue.model_copy(update={"speed": speed})
    venue = Venue(vcfg, market=market).start()
    ws = venue.url.replace("http://", "ws://")
    cfg.alpaca.stream_url = ws
    cfg.alpaca.data_url = venue.url
    cfg.alpaca.data_sources.polygon.stream_url = ws
    console.print(
        f"local venue at {venue.url}, replaying {', '.join(symbols)} at {speed:g}x: [bold]{SYNTHETIC}[/] "
        "under these tickers"
    )
    return venue


async def _stream(
    cfg: Config, args: argparse.Namespace, symbols: list[str], venue: Any, console: Console
) -> dict:
    clock = venue.clock.now_ns if venue is not None else "wall"
    synthetic = venue is not None and venue.market.synthetic
    ds = cfg.alpaca.data_sources
    first = args.provider or ds.primary
    fallbacks = [s for s in dict.fromkeys([ds.primary, *ds.secondary]) if s != first] if args.failover else []
    ds.primary, ds.secondary = first, fallbacks  # --provider is the preferred source
    adapter = StreamingAdapter(cfg, every=args.every, clock=clock)
    recent: deque[tuple[Any, ...]] = deque(maxlen=ROWS)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = sys.platform != "win32"  # Windows event loops have no signal handlers
    if signals:
        loop.add_signal_handler(signal.SIGINT, stop.set)
    live: Live | None = None

    def on_bar(bars: pl.DataFrame) -> None:
        bars = bars.with_columns(pl.col("ts").dt.convert_time_zone(NEW_YORK.key))  # shown in exchange time
        for row in bars.iter_rows():
            recent.append(row)
            if live is None:
                print(_line(row, bars.columns) + (" [synthetic]" if synthetic else ""), flush=True)
        if live is not None:
            live.update(_view(recent, adapter, last, synthetic))

    adapter.on_bar(on_bar)
    # A trade handler (the last price per symbol, shown in the status line) also gives the latency figures.
    last: dict[str, float] = {}
    adapter.on_trade(lambda t: last.update(zip(t["symbol"].to_list(), t["price"].to_list(), strict=True)))
    try:
        for name in [first, *fallbacks]:
            if name == "alpaca":
                await adapter.connect_alpaca(args.feed or cfg.alpaca.feed)
            else:
                await adapter.connect_polygon()
        await adapter.subscribe_trades(symbols)
        if console.is_terminal:
            live = Live(_view(recent, adapter, last, synthetic), console=console, refresh_per_second=4)
            live.start()
        deadline = None if args.duration is None else time.monotonic() + args.duration
        while not stop.is_set():
            if deadline is not None and time.monotonic() >= deadline:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)
            if live is not None:
                live.update(_view(recent, adapter, last, synthetic))
    finally:
        await adapter.close()
        if live is not None:
            live.stop()
        if signals:
            loop.remove_signal_handler(signal.SIGINT)
    return adapter.stats()


_COLUMNS = (
    "symbol",
    "ts",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "vwap",
    "trades",
    "partial",
    "backfilled",
)


def _flags(row: dict[str, Any]) -> str:
    return ",".join(f for f in ("partial", "backfilled") if row.get(f))


def _line(row: tuple[Any, ...], columns: list[str]) -> str:
    r = dict(zip(columns, row, strict=True))
    return (
        f"{r['ts']:%Y-%m-%d %H:%M %Z} {r['symbol']:<6} o={r['open']:.2f} h={r['high']:.2f} l={r['low']:.2f} "
        f"c={r['close']:.2f} v={r['volume']:.0f} vwap={r['vwap']:.4f} n={r['trades']} {_flags(r)}"
    ).rstrip()


def _view(
    recent: deque[tuple[Any, ...]], adapter: StreamingAdapter, last: dict[str, float], synthetic: bool
) -> Group:
    title = "bars as they close" + (f" — {SYNTHETIC}" if synthetic else "")
    t = Table(title=title, expand=False)
    numbers = ("open", "high", "low", "close", "volume", "vwap", "trades")
    for c in ("time (New York)", "symbol", *numbers, "flags"):
        t.add_column(c, justify="right" if c in numbers else "left")
    for row in recent:
        r = dict(zip(_COLUMNS, row, strict=True))
        t.add_row(
            f"{r['ts']:%H:%M}",
            r["symbol"],
            f"{r['open']:.2f}",
            f"{r['high']:.2f}",
            f"{r['low']:.2f}",
            f"{r['close']:.2f}",
            f"{r['volume']:.0f}",
            f"{r['vwap']:.4f}",
            str(r["trades"]),
            _flags(r),
        )
    s = adapter.stats()
    p99 = s["latency_p99_us"]
    status = (
        f"source {s['active']}  {s['messages_per_s']:.0f} msg/s  bars {s['bars']}  reconnects "
        f"{s['reconnects']}  failovers {s['failovers']}  backfilled {s['bars_backfilled']}  late {s['late']}"
        + (f"  p99 {p99:.0f} us" if p99 is not None else "")
    )
    prices = "  ".join(f"{k} {v:.2f}" for k, v in sorted(last.items()))
    return Group(t, status, f"last trades: {prices}")


def _summary(s: dict[str, Any]) -> Table:
    t = Table(title="stream summary", show_header=False)
    t.add_column("stat")
    t.add_column("value", justify="right")

    def us(v: float | None) -> str:
        return "-" if v is None else f"{v:.1f} us"

    rows = [
        ("elapsed", f"{s['elapsed_s']:.1f} s"),
        ("messages", str(s["messages"])),
        ("messages/s (last 5 s)", f"{s['messages_per_s']:.0f}"),
        ("trades", str(s["trades"])),
        ("bars delivered", str(s["bars"])),
        ("  backfilled (REST)", str(s["bars_backfilled"])),
        ("  partial (at close)", str(s["bars_partial"])),
        ("socket-to-handler p50", us(s["latency_p50_us"])),
        ("socket-to-handler p99", us(s["latency_p99_us"])),
        ("reconnects", str(s["reconnects"])),
        ("failovers / failbacks", f"{s['failovers']} / {s['failbacks']}"),
        ("late ticks", str(s["late"])),
        ("malformed messages", str(s["malformed"])),
        ("unknown message types", str(s["unknown"])),
        ("handler errors", str(s["handler_errors"])),
        ("quote batches dropped", str(s["quotes_dropped"])),
    ]
    for k, v in rows:
        t.add_row(k, v)
    return t
