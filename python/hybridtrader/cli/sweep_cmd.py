"""`hybridtrader sweep`: a grid of engine backtests, one task per cell, on the task runner.

Each `--grid key.path=v1,v2,...` names a config key (e.g. `ml_training.labels.mean_reversion.entry_z`);
every combination of the values is one cell, backtested with those overrides and the fill simulator seeded
from the sweep seed and the cell's key. The objective is the Sharpe ratio of the cell's daily returns; the
deflated Sharpe of the best cell counts every cell tried. Outputs under --out (default <data_dir>/sweep):
results.parquet, index.html with the heatmap (two grid keys), walk_forward.parquet with --walk-forward, and
tasks/<sweep id>/ holding each finished cell, so an interrupted sweep run again resumes where it stopped.
"""

from __future__ import annotations

import argparse
import hashlib

import orjson
import polars as pl
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from hybridtrader.cli.backtest_cmd import add_backtest_arguments, backtest_config


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sweep", help="a grid of backtests over config parameters", description=__doc__)
    add_backtest_arguments(p, "sweep", "synthetic market seed and sweep seed")
    p.add_argument(
        "--grid", action="append", required=True, metavar="KEY.PATH=V1,V2,...", help="a swept config key"
    )
    p.add_argument("--walk-forward", action="store_true", help="also choose cells walk-forward over time")
    p.add_argument("--compute", help="seq, pool[:N] or ray[:ADDRESS] (default: the config's compute)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from hybridtrader.backtest.run import make_feed
    from hybridtrader.backtest.sweep import (
        EngineData,
        check_grid_keys,
        engine_backtest,
        parse_grid,
        sweep,
        walk_forward,
        write_sweep_report,
    )
    from hybridtrader.data.atomic import write_parquet_atomic
    from hybridtrader.tasks import parse_compute

    grid = parse_grid(args.grid)
    cfg, symbols = backtest_config(args)
    check_grid_keys(cfg, grid)
    compute = parse_compute(args.compute) if args.compute else cfg.compute
    out = args.out if args.out is not None else cfg.data_dir / "sweep"
    console = Console(stderr=True)
    with console.status("loading bars"):
        feed, data, info = make_feed(cfg, start=args.start, end=args.end, symbols=symbols, seed=args.seed)
    bars = getattr(feed, "bars", None) if cfg.backtest.data == "synth" else None
    shared = EngineData(cfg, bars, data, info, args.start, args.end, symbols)
    # The task store belongs to this sweep's fixed inputs (config, data, grid): another sweep into the same
    # --out gets its own, so cells are never resumed from a different sweep's results.
    ident = {"config": cfg.masked(), "data": data, "grid": grid, "start": args.start, "end": args.end}
    sweep_id = hashlib.sha256(orjson.dumps(ident, option=orjson.OPT_SORT_KEYS, default=str)).hexdigest()[:16]
    with Progress(
        TextColumn("sweep"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=args.no_progress,
        transient=True,
    ) as bar:
        task = bar.add_task("", total=None)
        result = sweep(
            engine_backtest,
            grid,
            shared,
            compute,
            seed=args.seed,
            store=out / "tasks" / sweep_id,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    page = write_sweep_report(result, out, f"sweep of {', '.join(cfg.backtest.strategies)}")
    show = Console()
    show.print(_results_table(result.table))
    dsr = "n/a" if result.deflated_sharpe is None else f"{result.deflated_sharpe:.4f}"
    show.print(f"best cell: {result.best}; deflated Sharpe counting all {result.n_trials} cells: {dsr}")
    failed = result.table.filter(result.table["error"].is_not_null()).height
    if failed:
        show.print(f"[red]{failed} cell(s) failed[/]; their errors are in the table")
    if args.walk_forward:
        wf = walk_forward(result, cfg.ml_training.validation.walk_forward)
        write_parquet_atomic(wf.folds, out / "walk_forward.parquet")
        show.print(_results_table(wf.folds, "walk-forward"))
        show.print(f"walk-forward out-of-sample: Sharpe {wf.sharpe:.4f} per day, PSR(0) {wf.psr:.4f}")
    show.print(f"report: {page}")
    return 0


def _results_table(frame: pl.DataFrame, title: str = "sweep") -> Table:
    from hybridtrader.backtest.sweep import cell_text

    t = Table(title=title)
    for c in frame.columns:
        t.add_column(c, justify="right")
    for row in frame.iter_rows():
        t.add_row(*(cell_text(v) for v in row))
    return t
