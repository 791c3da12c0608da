"""`hybridtrader data ...`: market data commands (`data synth` generates a synthetic market, `data fetch`
fetches bars into the parquet store)."""

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
    f = dsub.add_parser(
        "fetch",
        help="fetch bars into the parquet store (resumes an interrupted fetch)",
        description="Fetch historical bars from Alpaca's market data API (or, with no alpaca.data_url "
        "configured, from a local venue started for the run, which serves SYNTHETIC prices) into the "
        "parquet bar store, then check their quality. Rerun the same command to resume an interrupted "
        "fetch; bars already stored are never duplicated.",
    )
    f.add_argument("--symbols", nargs="+", required=True, help="tickers (space- or comma-separated)")
    f.add_argument("--start", required=True, help="first day or time (ISO, UTC)")
    f.add_argument("--end", required=True, help="last day or time (ISO, UTC, inclusive)")
    f.add_argument("--timeframe", default="1Min", help="1Min, 5Min, 1Hour, 1Day ... (default 1Min)")
    f.add_argument("--store", help="store root (default: <data_dir>/bars)")
    f.add_argument("--config", help="YAML config (default: $HYBRIDTRADER_CONFIG or built-in)")
    f.add_argument("--no-progress", action="store_true", help="no progress bar")
    f.set_defaults(run=run_fetch)


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


def run_fetch(args: argparse.Namespace) -> int:
    from hybridtrader.data.alpaca_client import AlpacaClient
    from hybridtrader.data.bar_store import BarStore
    from hybridtrader.data.fetch import fetch_to_store
    from hybridtrader.data.quality import check_data_quality
    from hybridtrader.errors import ConfigError
    from hybridtrader.market.schema import normalize_symbols
    from hybridtrader.market.timeconv import to_utc, to_utc_end
    from hybridtrader.market.timeframe import Timeframe
    from hybridtrader.metrics import METRICS
    from hybridtrader.venue.server import service_urls

    cfg = load_config(args.config)
    # Everything the request needs is checked before a venue starts or a progress bar is drawn.
    symbols = normalize_symbols([s for item in args.symbols for s in item.split(",") if s.strip()])
    start, end = to_utc("--start", args.start), to_utc_end("--end", args.end)
    if end < start:
        raise ConfigError(f"--end {args.end} is before --start {args.start}")
    Timeframe.parse(args.timeframe)
    store = BarStore(Path(args.store) if args.store else Path(cfg.data_dir) / "bars")
    if store.root.exists() and not store.root.is_dir():
        raise ConfigError(f"--store {store.root} is not a directory")
    print(f"alpaca data: {cfg.alpaca.data_url or 'a local venue started for this fetch (SYNTHETIC prices)'}")
    before = METRICS.snapshot()
    with service_urls(cfg, needs=("alpaca_data",)) as urls, Progress(
        TextColumn("fetch {task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[bars]:,} bars"), TimeElapsedColumn(), disable=args.no_progress,
    ) as bar:
        client = AlpacaClient(cfg, data_url=urls["alpaca_data"])
        task = bar.add_task(f"{args.timeframe} {','.join(symbols)}", total=None, bars=0)

        def progress(done: int, total: int, bars: int) -> None:
            bar.update(task, completed=done, total=total, bars=bars)

        source = cfg.alpaca.data_url or f"local venue ({cfg.venue.market.model_dump_json()})"
        result = fetch_to_store(client, store, symbols, args.timeframe, args.start, args.end,
                                progress=progress, source=source)
    print(f"fetched {result.bars} bars ({result.added} new) in {result.chunks - result.skipped} chunk(s); "
          f"{result.skipped} chunk(s) already done by an earlier run; store {store.root}")
    report = check_data_quality(store.read(symbols, args.timeframe, start, end),
                                timeframe=args.timeframe, jump_zscore=cfg.data.jump_zscore,
                                max_abs_log_return=cfg.data.max_abs_log_return)
    print("quality: ok" if report.ok else f"quality: {'; '.join(report.issues)}")
    print("api: " + ", ".join(f"{k} {v:g}" for k, v in METRICS.since(before).items()))
    return 0
