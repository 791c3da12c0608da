"""`hybridtrader venue`: serve the local simulated venue in the foreground and print its URLs."""

from __future__ import annotations

import argparse

from hybridtrader.config import load_config
from hybridtrader.venue import LOCAL_FINNHUB_TOKEN, LOCAL_KEY, LOCAL_SECRET, Venue


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("venue", help="serve the local Alpaca/Polygon/Finnhub-compatible venue")
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
    cfg = load_config(args.config)
    v = cfg.venue
    if args.port is not None:
        v.port = args.port
    if args.speed is not None:
        v.speed = args.speed if args.speed == "max" else float(args.speed)
    for name in ("symbols", "sessions", "seed"):
        if getattr(args, name) is not None:
            setattr(v.market, name, getattr(args, name))
    if args.market is not None:
        v.market.path = args.market
    if args.stream_tick_ms is not None:
        v.stream_tick_ms = args.stream_tick_ms
    if args.record_sends:
        v.record_sends = True

    def ready(venue: Venue) -> None:
        for name, url in venue.urls.items():
            print(f"{name:15s} {url}")
        # fixed local credentials, not secrets: they only make clients send keys as they must
        print(f"{'alpaca_keys':15s} {LOCAL_KEY} / {LOCAL_SECRET}")
        print(f"{'finnhub_token':15s} {LOCAL_FINNHUB_TOKEN}")
        print("serving; Ctrl-C stops", flush=True)

    Venue(cfg).serve(on_ready=ready)
    return 0
