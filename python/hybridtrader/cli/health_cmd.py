"""`hybridtrader health`: venue reachability, cache freshness, store integrity; exit 1 on a failure."""

from __future__ import annotations

import argparse
from pathlib import Path

from hybridtrader.config import load_config


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("health", help="check venue reachability, cache freshness and store integrity")
    p.add_argument("--config", help="YAML config (default: $HYBRIDTRADER_CONFIG or built-in)")
    p.add_argument("--url", help="venue / Alpaca base URL to probe (default: alpaca.data_url)")
    p.add_argument("--store", help="bar store root (default: <data_dir>/bars)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from hybridtrader.data.health import health_report

    cfg = load_config(args.config)
    checks = health_report(cfg, url=args.url, store_root=Path(args.store) if args.store else None)
    for c in checks:
        mark = {True: "OK  ", False: "FAIL", None: "SKIP"}[c.ok]
        print(f"{mark} {c.name:20s} {c.detail}")
    return 1 if any(c.ok is False for c in checks) else 0
