"""`hybridtrader bars`: aggregate a trades (or quotes) parquet file into bars.

The file is read in slices of rows and streamed through the Rust `BarAggregator`, with a progress bar.
Streaming needs each symbol's ticks in time order; if the file is not (the aggregator reports late ticks),
the whole file is aggregated again by the batch path, which sorts, so no tick is lost either way.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import polars as pl
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from hybridtrader import BarAggregator
from hybridtrader.cli.outputs import check_output
from hybridtrader.data.atomic import write_parquet_atomic
from hybridtrader.errors import ConfigError, DataError, HybridTraderError, first_line
from hybridtrader.market.bars import aggregate_quotes, aggregate_trades, push_frame

CHUNK_ROWS = 1_000_000


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bars",
        help="aggregate a trades (or quotes) parquet file into bars",
        description="Aggregate ticks (symbol, ts, price, size; or bid, ask with --quotes) into bars "
        "(symbol, ts, open, high, low, close, volume, vwap, trades), written as parquet.",
    )
    p.add_argument("--input", "-i", required=True, type=Path, help="trades or quotes parquet file")
    p.add_argument("--output", "-o", required=True, type=Path, help="bars parquet file to write")
    rule = p.add_mutually_exclusive_group(required=True)
    rule.add_argument("--every", help='time bars, e.g. "1s", "5m", "1h", "1d"')
    rule.add_argument("--ticks", type=int, help="a bar every N trades (or quotes)")
    rule.add_argument("--volume", type=float, help="a bar every V shares")
    rule.add_argument("--dollars", type=float, help="a bar every D of notional")
    p.add_argument("--origin", type=int, default=0, help="time-bar alignment in UTC ns (default: the epoch)")
    p.add_argument("--quotes", action="store_true", help="input is quotes: build quote bars (mid, spread)")
    p.add_argument("--chunk-rows", type=int, default=CHUNK_ROWS, help="rows read per slice")
    p.add_argument("--force", action="store_true", help="replace the output file if it exists")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.chunk_rows <= 0:
        raise ConfigError(f"--chunk-rows must be positive, got {args.chunk_rows}")
    if not args.input.is_file():
        raise DataError(f"input file not found: {args.input}")
    check_output(args.output, args.force, inputs=[args.input])
    rule = {k: v for k in ("every", "ticks", "volume", "dollars") if (v := getattr(args, k)) is not None}
    source = "quotes" if args.quotes else "trades"
    try:
        agg = BarAggregator(origin=args.origin, source=source, **rule)  # checks the rule before any reading
    except ValueError as e:
        raise ConfigError(f"bar rule: {e}") from None
    try:
        scan = pl.scan_parquet(args.input)
        n_rows = scan.select(pl.len()).collect().item()
        bars, stats = _stream(agg, scan, n_rows, args.chunk_rows)
        note = ""
        if stats["late"]:
            # Not in time order per symbol: the batch path sorts and loses nothing.
            frame = scan.collect()
            if source == "quotes":
                bars = aggregate_quotes(frame, origin=args.origin, **rule)
            else:
                bars = aggregate_trades(frame, origin=args.origin, **rule)
            note = "; input not in time order per symbol, so it was sorted"
        write_parquet_atomic(bars, args.output)
    except pl.exceptions.PolarsError as e:
        raise DataError(f"cannot read {args.input}: {first_line(e)}") from e
    except ValueError as e:  # the bar engine's verdict on the ticks (a missing column, naive times...)
        if isinstance(e, HybridTraderError):
            raise
        raise DataError(f"{args.input}: {e}") from e
    print(
        f"wrote {len(bars):,} {source[:-1]} bars for {bars['symbol'].n_unique():,} symbols from "
        f"{stats['ticks']:,} ticks ({stats['rejected']:,} rejected{note}) to {args.output}"
    )
    return 0


def _stream(
    agg: BarAggregator, scan: pl.LazyFrame, n_rows: int, chunk_rows: int
) -> tuple[pl.DataFrame, dict[str, int]]:
    out: list[pl.DataFrame] = []
    progress = Progress(
        TextColumn("[bold]bars[/]"), BarColumn(), MofNCompleteColumn(), TextColumn("ticks"),
        TimeRemainingColumn(), console=Console(file=sys.stderr), transient=True,
        disable=n_rows <= chunk_rows,
    )
    with progress:
        task = progress.add_task("aggregate", total=n_rows)
        for offset in range(0, n_rows, chunk_rows):
            chunk = scan.slice(offset, chunk_rows).collect()
            out.append(push_frame(agg, chunk))
            progress.advance(task, len(chunk))
    out.append(agg.close())
    return pl.concat(out).sort("symbol", "ts", maintain_order=True), agg.stats()

