"""`hybridtrader health`: venue reachability, cache freshness, store integrity.

Exit status: 0 when at least one check ran and none failed; 1 when a check failed; 3 when every check was
skipped (nothing configured or written yet, so nothing was shown to be healthy).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hybridtrader.config import load_config

ALL_SKIPPED = 3


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "health",
        help="check venue reachability, cache freshness and store integrity",
        description="Probe the Alpaca data and trading APIs (configured URLs, or --url of a running "
        "`hybridtrader venue`), check the shortability and earnings caches and the bar store under "
        "<data_dir> and <data_dir>/run (where `hybridtrader run` writes), or the store given by --store. "
        "Exit status: 0 healthy, 1 a check failed, 3 every check was skipped.",
    )
    p.add_argument("--config", help="YAML config (default: $HYBRIDTRADER_CONFIG or built-in)")
    p.add_argument("--url", help="venue / Alpaca base URL to probe (default: alpaca.data_url)")
    p.add_argument("--store", help="bar store root to check instead of the default ones")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from hybridtrader.data.health import health_report

    cfg = load_config(args.config)
    checks = health_report(cfg, url=args.url, store_root=Path(args.store) if args.store else None)
    for c in checks:
        mark = {True: "OK  ", False: "FAIL", None: "SKIP"}[c.ok]
        print(f"{mark} {c.name:20s} {c.detail}")
    if any(c.ok is False for c in checks):
        return 1
    if all(c.ok is None for c in checks):
        print("nothing checked: every check was skipped (exit 3)")
        return ALL_SKIPPED
    return 0
