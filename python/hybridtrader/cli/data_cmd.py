"""`hybridtrader data ...`: market data commands (`data synth` generates a synthetic market)."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from hybridtrader.config import load_config
from hybridtrader.market.synth import generate_market


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="generate, fetch and inspect market data")
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    synth = dsub.add_parser(
        "synth",
        help="generate a deterministic synthetic market and write it as parquet",
        description="Generate trades, quotes, 1-minute and daily bars, symbol info and earnings dates for "
        "N symbols over D NYSE sessions (seeded, reproducible) and write them as parquet files.",
    )
    synth.add_argument("--symbols", type=int, default=10, help="number of symbols (default 10)")
    synth.add_argument("--sessions", type=int, default=5, help="number of NYSE sessions (default 5)")
    synth.add_argument("--start", default="2024-01-02", help="first date, YYYY-MM-DD (default 2024-01-02)")
    synth.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    synth.add_argument(
        "--out", type=Path, default=None, help="output directory (default: <config data_dir>/synth)"
    )
    synth.add_argument(
        "--config", default=None, help="config file (default: $HYBRIDTRADER_CONFIG or built-in)"
    )
    synth.add_argument("--no-ticks", action="store_true", help="bars only (fast; no trades or quotes)")
    synth.add_argument(
        "--trades-per-minute", type=float, default=20.0, help="average trades per symbol-minute (default 20)"
    )
    synth.add_argument(
        "--mean-reversion", type=float, default=0.0, help="planted 1-minute reversal strength in [0, 1)"
    )
    synth.add_argument("--trend", type=float, default=0.0, help="planted multi-day drift strength (>= 0)")
    synth.set_defaults(run=run_synth)


def run_synth(args: argparse.Namespace) -> int:
    out = args.out if args.out is not None else load_config(args.config).data_dir / "synth"
    console = Console()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("generating symbols", total=args.symbols)
        market = generate_market(
            symbols=args.symbols,
            sessions=args.sessions,
            start=args.start,
            seed=args.seed,
            ticks=not args.no_ticks,
            trades_per_minute=args.trades_per_minute,
            mean_reversion=args.mean_reversion,
            trend=args.trend,
            progress=lambda _symbol: progress.advance(task),
        )
        progress.add_task("writing parquet", total=None)
        files = market.write(out)
    first, last = market.bars_1d["ts"].min(), market.bars_1d["ts"].max()
    console.print(
        f"synthetic market: {args.symbols} symbols, {args.sessions} sessions "
        f"({first:%Y-%m-%d} .. {last:%Y-%m-%d}), seed {args.seed}"
    )
    for name in ("trades", "quotes", "bars_1m", "bars_1d", "symbols", "earnings"):
        console.print(f"  {name:<9} {getattr(market, name).height:>12,} rows")
    console.print(f"wrote {len(files)} files to {out}:")
    for path in files:
        console.print(f"  {path.name}")
    return 0
