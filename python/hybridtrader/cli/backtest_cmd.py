"""`hybridtrader backtest`: run strategies through the trading engine on historical bars.

With no data configured it runs on the seeded synthetic market. Outputs (under --out, default
<data_dir>/backtest): orders, fills, positions, equity (with drawdown and exposure), daily and monthly
returns, per-strategy and per-symbol tables (parquet) and summary.json with the run's provenance, written
together. Same inputs and seed give byte-identical outputs.
"""

from __future__ import annotations

import argparse
import tempfile
from datetime import date
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from hybridtrader.config import Config, load_config, with_overrides


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "backtest", help="run strategies through the trading engine on historical bars", description=__doc__
    )
    add_backtest_arguments(p, "backtest", "synthetic market and fill simulator seed")
    p.set_defaults(run=run)


def add_backtest_arguments(p: argparse.ArgumentParser, out: str, seed_help: str) -> None:
    """The options that choose a backtest's config, strategies and data (shared with `sweep`)."""
    p.add_argument("--config", help="YAML config (default: $HYBRIDTRADER_CONFIG or built-in)")
    p.add_argument(
        "--strategy",
        action="append",
        metavar="NAME|module:Class|file.py:Class",
        help="strategy to run (repeatable; default: backtest.strategies)",
    )
    p.add_argument("--start", help="first session (YYYY-MM-DD)")
    p.add_argument("--end", help="last session (YYYY-MM-DD)")
    p.add_argument("--symbols", help="comma-separated tickers, or a count for the synthetic market")
    p.add_argument(
        "--data", choices=["store", "synth"], help="bar store or synthetic market (default: backtest.data)"
    )
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    p.add_argument("--out", type=Path, help=f"output directory (default: <data_dir>/{out})")
    p.add_argument("--seed", type=int, default=0, help=f"{seed_help} (default 0)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def backtest_config(args: argparse.Namespace) -> tuple[Config, list[str] | None]:
    """The config the options give, and the --symbols tickers (None: a count or the config's)."""
    sets = list(args.set)
    if args.strategy:
        sets.append(f"backtest.strategies=[{', '.join(args.strategy)}]")
    if args.data:
        sets.append(f"backtest.data={args.data}")
    symbols = None
    if args.symbols:
        if args.symbols.strip().isdigit():
            sets.append(f"backtest.synth.symbols={int(args.symbols)}")
        else:
            symbols = [s.strip().upper() for s in args.symbols.split(",") if s.strip()]
    sets.append(f"execution.fills.seed={args.seed}")
    return with_overrides(load_config(args.config), sets), symbols


def run(args: argparse.Namespace) -> int:
    from hybridtrader.backtest.run import make_feed, run_backtest, write_outputs

    cfg, symbols = backtest_config(args)
    out = args.out if args.out is not None else cfg.data_dir / "backtest"
    console = Console(stderr=True)
    with console.status("loading bars"):
        feed, data, info = make_feed(cfg, start=args.start, end=args.end, symbols=symbols, seed=args.seed)
    total = len(getattr(feed, "days", None) or []) or None
    with Progress(
        TextColumn("backtest"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=console,
        disable=args.no_progress,
        transient=True,
    ) as bar:
        task = bar.add_task("", total=total)

        def progress(session: date, bars: int) -> None:
            bar.update(task, advance=1, description=session.isoformat())

        out.parent.mkdir(parents=True, exist_ok=True)
        # the run's rows spill beside the outputs (memory flat in the sessions), gone once they are written
        with tempfile.TemporaryDirectory(prefix=f".{out.name}.rows.", dir=out.parent) as spill:
            bt = run_backtest(
                cfg,
                feed=feed,
                seed=args.seed,
                progress=progress,
                data=data,
                symbol_info=info,
                spill=Path(spill),
            )
            write_outputs(bt, out)
    _print_summary(Console(), bt.summary, bt.tables["strategies"], out)
    return 0


def _print_summary(console: Console, s: dict, strategies: object, out: Path) -> None:
    t = Table(title="backtest", show_header=False)
    rows = [
        ("sessions / bars", f"{s['sessions']} / {s['bars']:,}"),
        ("orders / fills", f"{s['orders']:,} / {s['fills']:,}"),
        ("start cash -> end equity", f"{s['start_cash']:,.2f} -> {s['end_equity']:,.2f}"),
        ("total return", f"{s['total_return']:+.4%}"),
        ("sharpe (annualised)", "n/a" if s["sharpe"] is None else f"{s['sharpe']:.2f}"),
        ("max drawdown", f"{s['max_drawdown']:.4%}"),
        ("fees", f"{s['fees']:,.2f}"),
        (
            "slippage forecast / realised (bps)",
            f"{_num(s['forecast_slippage_bps'])} / {_num(s['realized_slippage_bps'])}",
        ),
    ]
    for k, v in rows:
        t.add_row(k, v)
    console.print(t)
    for name, row in zip(strategies["strategy"], strategies.iter_rows(named=True), strict=True):  # type: ignore[index,attr-defined]
        console.print(f"  {name}: orders {row['orders']}, net P&L {_num(row['net_pnl'], '{:,.2f}')}")
    for line in s["events"][:10]:
        console.print(f"  {line}")
    console.print(f"outputs: {out}")


def _num(v: float | None, fmt: str = "{:.2f}") -> str:
    return "n/a" if v is None else fmt.format(v)
