"""`hybridtrader venue`: serve the local simulated venue in the foreground and print its URLs."""

from __future__ import annotations

import argparse
from typing import Any

from hybridtrader.config import load_config, with_overrides
from hybridtrader.venue import LOCAL_FINNHUB_TOKEN, LOCAL_KEY, LOCAL_SECRET, Venue


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "venue",
        help="serve the local Alpaca/Polygon/Finnhub-compatible venue",
        description="Serve a local simulated venue on loopback: Alpaca market data and trading REST, the "
        "Alpaca and Polygon streams and a Finnhub earnings calendar, replaying a seeded SYNTHETIC market "
        "(or recorded parquet with --market). Prints its URLs, local keys, symbols and sessions.",
    )
    p.add_argument("--config", help="YAML config (default: $HYBRIDTRADER_CONFIG or built-in)")
    p.add_argument("--port", type=int, help="TCP port on 127.0.0.1 (0: a free one; default from config)")
    p.add_argument("--speed", help="replay speed: 1 real time, 60, ... or 'max' (default from config)")
    p.add_argument("--market", help="directory of recorded parquet (trades/quotes/bars) to replay")
    p.add_argument("--symbols", type=int, help="synthetic market: number of symbols")
    p.add_argument("--sessions", type=int, help="synthetic market: number of sessions")
    p.add_argument("--seed", type=int, help="synthetic market: random seed")
    p.add_argument("--stream-tick-ms", type=float,
                   help="at a finite speed, batch what is due into one frame per tape every N ms (0: a frame "
                        "per event; default from config)")
    p.add_argument("--record-sends", action="store_true",
                   help="log when each streamed event is sent (GET /venue/sends), to measure client latency")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    market = {k: getattr(args, k) for k in ("symbols", "sessions", "seed") if getattr(args, k) is not None}
    if args.market is not None:
        market["path"] = args.market
    options: dict[str, Any] = {"market": market}
    if args.port is not None:
        options["port"] = args.port
    if args.speed is not None:
        options["speed"] = args.speed  # "max" or a number: validated by the config model
    if args.stream_tick_ms is not None:
        options["stream_tick_ms"] = args.stream_tick_ms
    if args.record_sends:
        options["record_sends"] = True
    cfg = with_overrides(load_config(args.config), {"venue": options})

    def ready(venue: Venue) -> None:
        m = venue.market.describe()
        print(f"{'market':15s} {m['source']}")
        print(f"{'symbols':15s} {', '.join(m['symbols'])}")
        print(f"{'sessions':15s} {m['sessions']}: {m['first_session']} .. {m['last_session']}")
        for name, url in venue.urls.items():
            print(f"{name:15s} {url}")
        # fixed local credentials, not secrets: they only make clients send keys as they must
        print(f"{'alpaca_keys':15s} {LOCAL_KEY} / {LOCAL_SECRET}")
        print(f"{'finnhub_token':15s} {LOCAL_FINNHUB_TOKEN}")
        print("serving; Ctrl-C stops", flush=True)

    Venue(cfg).serve(on_ready=ready)
    return 0
