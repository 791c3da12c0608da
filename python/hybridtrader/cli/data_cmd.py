"""`hybridtrader data ...`: the historical data commands."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from hybridtrader.config import load_config


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="historical data: fetch bars into the local store")
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    f = dsub.add_parser("fetch", help="fetch bars into the parquet store (resumes an interrupted fetch)")
    f.add_argument("--symbols", nargs="+", required=True, help="tickers (space- or comma-separated)")
    f.add_argument("--start", required=True, help="first day or time (ISO, UTC)")
    f.add_argument("--end", required=True, help="last day or time (ISO, UTC, inclusive)")
    f.add_argument("--timeframe", default="1Min", help="1Min, 5Min, 1Hour, 1Day ... (default 1Min)")
    f.add_argument("--store", help="store root (default: <data_dir>/bars)")
    f.add_argument("--config", help="YAML config (default: $HYBRIDTRADER_CONFIG or built-in)")
    f.add_argument("--no-progress", action="store_true", help="no progress bar")
    f.set_defaults(run=run_fetch)


def run_fetch(args: argparse.Namespace) -> int:
    from hybridtrader.data.alpaca_client import AlpacaClient
    from hybridtrader.data.bar_store import BarStore
    from hybridtrader.data.fetch import fetch_to_store
    from hybridtrader.venue.server import service_urls

    cfg = load_config(args.config)
    symbols = [s for item in args.symbols for s in item.split(",") if s.strip()]
    store = BarStore(Path(args.store) if args.store else Path(cfg.data_dir) / "bars")
    with service_urls(cfg, needs=("alpaca_data",)) as urls, Progress(
        TextColumn("fetch {task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[bars]:,} bars"), TimeElapsedColumn(), disable=args.no_progress,
    ) as bar:
        client = AlpacaClient(cfg, data_url=urls["alpaca_data"])
        task = bar.add_task(f"{args.timeframe} {','.join(symbols)}", total=None, bars=0)

        def progress(done: int, total: int, bars: int) -> None:
            bar.update(task, completed=done, total=total, bars=bars)

        result = fetch_to_store(client, store, symbols, args.timeframe, args.start, args.end,
                                progress=progress)
    print(f"fetched {result.bars} bars ({result.added} new) in {result.chunks - result.skipped} chunk(s); "
          f"{result.skipped} chunk(s) already done by an earlier run; store {store.root}")
    return 0
