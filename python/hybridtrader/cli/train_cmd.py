"""`hybridtrader train [--strategy NAME] [--data PATH] [--symbols N --sessions D] [--compute BACKEND]`.

Trains, validates and gates the strategies' models, registers them in MLflow, prints the gate table and
writes an HTML report. Without --data it trains on a synthetic market (`hybridtrader.market.synth`).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from hybridtrader.config import Config, load_config
from hybridtrader.errors import ConfigError, DataError, first_line
from hybridtrader.tasks import parse_compute

if TYPE_CHECKING:
    from hybridtrader.ml.result import TrainingResult


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train, validate and gate the strategies' models (MLflow registry)",
        description="Train each enabled strategy's model on 1-minute bars (a parquet file or a "
        "`data synth` directory given by --data, else a SYNTHETIC market generated here), validate it "
        "out of sample (walk-forward or purged k-fold), apply the promotion gates, register it in MLflow "
        "(champion only if every gate passes) and write an HTML report.",
    )
    p.add_argument("--config", help="YAML config (default: $HYBRIDTRADER_CONFIG or built-in)")
    p.add_argument("--strategy", action="append", help="strategy to train (repeatable; default: all enabled)")
    p.add_argument(
        "--data", type=Path, help="bars as a parquet file, or a directory written by SyntheticMarket"
    )
    p.add_argument("--symbols", type=int, default=20, help="synthetic market: number of symbols (default 20)")
    p.add_argument(
        "--sessions", type=int, default=30, help="synthetic market: number of sessions (default 30)"
    )
    p.add_argument("--seed", type=int, default=0, help="synthetic market: random seed")
    p.add_argument("--start", default="2024-01-02", help="synthetic market: first session (YYYY-MM-DD)")
    p.add_argument(
        "--mean-reversion", type=float, default=0.0, help="synthetic market: planted mean reversion"
    )
    p.add_argument("--trend", type=float, default=0.0, help="synthetic market: planted trend")
    p.add_argument(
        "--compute",
        metavar="seq|pool[:N]|ray[:ADDRESS]",
        help="where the fold tasks run (default: the config's compute section)",
    )
    p.add_argument(
        "--regime-reversion",
        type=float,
        default=0.0,
        help="synthetic market: reversal in volatile minutes, continuation in calm ones",
    )
    p.add_argument(
        "--permutations",
        type=int,
        help="permutation control: retrainings on shuffled labels (default: ml_training.controls)",
    )
    p.add_argument("--report", type=Path, help="report directory (default: <data_dir>/reports/train-<time>)")
    p.set_defaults(run=run)


def read_bars_file(path: Path) -> pl.DataFrame:
    """Bars from a parquet file; an unreadable file, missing bar columns or no rows is a DataError naming
    the file."""
    from hybridtrader.ml.features import BAR_COLUMNS

    try:
        bars = pl.read_parquet(path)
    except (pl.exceptions.PolarsError, OSError) as e:
        raise DataError(f"--data {path}: not a readable parquet file ({first_line(e)})") from None
    missing = [c for c in BAR_COLUMNS if c not in bars.columns]
    if missing:
        raise DataError(f"--data {path}: missing bar columns {missing} (has {bars.columns})")
    if bars.is_empty():
        raise DataError(f"--data {path}: no bars (the file has no rows)")
    return bars


def load_bars(args: argparse.Namespace) -> tuple[pl.DataFrame, str]:
    """The bars, and where they came from (the report's provenance)."""
    if args.data is not None:
        path: Path = args.data
        if path.is_file():
            return read_bars_file(path), f"bars file {path.resolve()}"
        if path.is_dir():
            from hybridtrader.market.synth import SyntheticMarket

            market = SyntheticMarket.read(path)
            return market.bars_1m, f"synthetic market read from {path.resolve()}: {_knobs(market.params)}"
        raise DataError(f"--data: no such file or directory: {path}")
    if args.symbols < 1 or args.sessions < 1:
        raise ConfigError(f"--symbols and --sessions must be >= 1, got {args.symbols} and {args.sessions}")
    from hybridtrader.market.synth import generate_market

    market = generate_market(
        symbols=args.symbols,
        sessions=args.sessions,
        seed=args.seed,
        start=args.start,
        ticks=False,
        mean_reversion=args.mean_reversion,
        trend=args.trend,
        regime_reversion=args.regime_reversion,
    )
    return market.bars_1m, f"synthetic market (hybridtrader.market.synth): {_knobs(market.params)}"


def _knobs(params: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in params.items() if k != "symbols") + (
        f", {len(params.get('symbols', []))} symbols"
    )


def gate_table(result: TrainingResult) -> Table:
    verdict = "[green]PROMOTED (champion)" if result.promoted else "[red]rejected (challenger)"
    t = Table(title=f"{result.strategy} — {verdict}[/] — model {result.model_id}")
    for col in ("gate", "value", "threshold", "result"):
        t.add_column(col, justify="left" if col == "gate" else "right")
    for g in result.gates:
        ok = "[green]pass[/]" if g.passed else "[red]FAIL[/]"
        t.add_row(g.name, f"{g.value:.4g}", f"{g.op} {g.threshold:.4g}", ok)
    return t


def run(args: argparse.Namespace) -> int:
    from hybridtrader.ml.pipeline import MLPipeline
    from hybridtrader.ml.report import write_report
    from hybridtrader.ml.strategy_check import check_strategies

    cfg: Config = load_config(args.config)
    check_strategies(cfg)
    if args.compute is not None:
        cfg.compute = parse_compute(args.compute)
    strategies = args.strategy or [n for n, s in cfg.strategies.items() if s.enabled and s.ml_model.enabled]
    unknown = [s for s in strategies if s not in cfg.strategies]
    if unknown:
        raise ConfigError(f"--strategy: unknown {unknown} (configured: {sorted(cfg.strategies)})")
    console = Console()
    with console.status("loading bars"):
        bars, source = load_bars(args)
    console.print(f"{bars.height:,} bars, {bars['symbol'].n_unique()} symbols")
    pipeline = MLPipeline(cfg)
    results = []
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        for name in strategies:
            tasks: dict[str, Any] = {}

            def report(
                stage: str, done: int, total: int, name: str = name, tasks: dict[str, Any] = tasks
            ) -> None:
                if stage not in tasks:
                    tasks[stage] = progress.add_task(f"{name}: {stage}", total=total)
                progress.update(tasks[stage], completed=done, total=total)

            results.append(
                pipeline.train_strategy_model(name, bars, progress=report, permutation_runs=args.permutations)
            )
    for r in results:
        console.print(gate_table(r))
        console.print(f"  {r.verdict}")
    out = args.report or cfg.data_dir / "reports" / f"train-{time.strftime('%Y%m%dT%H%M%S')}"
    path = write_report(results, out, source)
    console.print(f"report: {path}")
    return 0
