"""`hybridtrader run`: the main job, end to end on local parts (no keys, no network beyond loopback).

Starts the local venue on a seeded synthetic market, fetches its 1-minute bars over HTTP into a bar store,
trains and gates both seed strategies (MLflow), trades the last session with the live node (the engine that
`hybridtrader live` runs) and the promoted models through the venue's trading API and trade_updates stream,
and prints a summary (also written to `<out>/summary.json`).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import polars as pl
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from hybridtrader.cli.train_cmd import gate_table
from hybridtrader.config import load_config
from hybridtrader.market.calendar import NEW_YORK


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="the main job: venue -> bars -> trained models -> one traded session, on local parts",
        description=__doc__,
    )
    p.add_argument("--config", help="YAML config (default: $HYBRIDTRADER_CONFIG or built-in)")
    p.add_argument("--out", type=Path, help="run directory (default: <data_dir>/run)")
    p.add_argument("--symbols", type=int, default=8, help="synthetic market: number of symbols (default 8)")
    p.add_argument(
        "--sessions",
        type=int,
        default=20,
        help="synthetic market: sessions; all but the last train, the last is traded (default 20)",
    )
    p.add_argument("--seed", type=int, default=0, help="synthetic market: random seed (default 0)")
    p.add_argument(
        "--start", default="2024-01-02", help="synthetic market: first session (default 2024-01-02)"
    )
    p.add_argument(
        "--mean-reversion",
        type=float,
        default=0.3,
        help="planted 1-minute reversal strength in [0, 1) (default 0.3; 0 = pure noise)",
    )
    p.add_argument(
        "--trend", type=float, default=0.0, help="planted multi-day drift strength >= 0 (default 0)"
    )
    p.add_argument(
        "--regime-reversion",
        type=float,
        default=0.0,
        help="planted reversal in volatile minutes, continuation in calm ones, in [0, 1) (default 0)",
    )
    p.set_defaults(run=run)


class RichReporter:
    def __init__(self, console: Console) -> None:
        self.console = console
        self.bar = Progress(
            TextColumn("  {task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
        self.tasks: dict[str, TaskID] = {}
        self.counts: dict[str, int] = {}

    def stage(self, number: int, title: str) -> None:
        self.console.rule(f"[bold]{number}. {title}")
        self.bar.start()

    def progress(self, task: str, done: int, total: int | None) -> None:
        if task not in self.tasks:
            self.tasks[task] = self.bar.add_task(task, total=total)
        if task == "generating market":  # one call per symbol done
            self.counts[task] = self.counts.get(task, 0) + 1
            done = self.counts[task]
        self.bar.update(self.tasks[task], completed=done, total=total)

    def done(self, number: int, result: dict[str, Any]) -> None:
        self.bar.stop()
        for t in list(self.tasks.values()):
            self.bar.remove_task(t)
        self.tasks.clear()
        getattr(self, f"_stage{number}")(result)

    # ---- what each stage shows
    def _stage1(self, r: dict[str, Any]) -> None:
        self.console.print(
            f"venue at {r['url']}: {len(r['symbols'])} symbols ({', '.join(r['symbols'])}), "
            f"{r['sessions']} sessions {r['first_session']} .. {r['last_session']}, "
            f"{r['trades']:,} trades, {r['quotes']:,} quotes"
        )

    def _stage2(self, r: dict[str, Any]) -> None:
        q = r["quality"]
        api = ", ".join(f"{k} {v:g}" for k, v in r["api"].items())
        self.console.print(
            f"fetched {r['bars_fetched']:,} bars ({r['bars_new']:,} new) in {r['chunks']} chunk(s); "
            f"store holds {r['bars_in_store']:,} bars at {r['store']}"
        )
        self.console.print(f"api: {api}")
        verdict = "[green]ok[/]" if q["ok"] else "[yellow]" + "; ".join(q["issues"]) + "[/]"
        self.console.print(
            f"quality: {verdict}; store integrity: "
            + ("[green]ok[/]" if not r["store_problems"] else "; ".join(r["store_problems"]))
        )

    def _stage3(self, r: dict[str, Any]) -> None:
        for res in r["results"]:
            self.console.print(gate_table(res))
            if res.reason:
                self.console.print(f"  not trained: {res.reason}")

    def _stage4(self, r: dict[str, Any]) -> None:
        s, orders = r["summary"], r["orders"]
        if s["no_model_reason"]:
            self.console.print(f"[yellow]{s['no_model_reason']}[/]")
        else:
            self.console.print(f"models: {', '.join(f'{k} ({v})' for k, v in s['models'].items())}")
        self.console.print(
            f"{s['orders']} orders ("
            + (", ".join(f"{k} {v}" for k, v in s["orders_by_leg"].items()) or "none")
            + "); skipped: "
            + (", ".join(f"{k} {v}" for k, v in s["skipped"].items()) or "none")
        )
        for event in s["events"]:
            self.console.print(event)
        sp = s["spreads"]
        self.console.print(
            f"slippage model: ADV and daily volatility of {s['slippage_symbols_calibrated']} symbols from "
            f"daily bars, spreads from {sp['quote_bars']:,} quote bars ({sp['quotes']:,} quotes of "
            f"{sp['session']}); learned from each of the session's {s['fills']} fills"
        )
        self.console.print(
            "earnings blackout today: "
            + (", ".join(s["earnings_blackout"]) or "none")
            + f"; api calls while trading: {s['api_calls']} (rate limited)"
        )
        if orders.height:
            t = Table(
                title="fills per trade leg (slippage vs the decision price, bps; filled-share weighted)"
            )
            for c in ("NY time", "strategy", "symbol", "trade", "leg", "side", "orders", "filled", "avg px",
                      "fcst bps", "real bps"):  # fmt: skip
                t.add_column(c, justify="left" if c in ("strategy", "symbol", "leg", "side") else "right")
            for o in fills_by_leg(orders).iter_rows(named=True):
                t.add_row(
                    f"{o['decision_ts'].astimezone(NEW_YORK):%H:%M}",
                    o["strategy"],
                    o["symbol"],
                    str(o["trade"]),
                    o["leg"],
                    o["side"],
                    str(o["orders"]),
                    f"{o['filled_qty']:g}/{o['qty']:g}",
                    _num(o["avg_price"], ".2f"),
                    _num(o["forecast_bps"], ".1f"),
                    _num(o["realized_bps"], ".1f"),
                )
            self.console.print(t)
            self.console.print(f"every order: {r['orders_path']}")

    def _stage5(self, s: dict[str, Any]) -> None:
        self.console.rule("[bold]summary")
        d, tr = s["data"], s["trading"]
        q = d["quality"]
        rows = [
            (
                "market",
                f"{s['venue']['symbols'].__len__()} symbols x {s['venue']['sessions']} sessions "
                f"(seed {s['settings']['seed']}, mean_reversion {s['settings']['mean_reversion']}, "
                f"trend {s['settings']['trend']}, regime_reversion {s['settings']['regime_reversion']})",
            ),
            ("bars fetched", f"{d['bars_fetched']:,} (store: {d['bars_in_store']:,})"),
            ("quality", "ok" if q["ok"] else "; ".join(q["issues"])),
        ]
        for r in s["training"]:
            failed = [g["name"] for g in r["gates"] if not g["passed"]]
            verdict = "promoted" if r["promoted"] else f"rejected ({', '.join(failed)})"
            rows.append((f"model {r['strategy']}", f"{verdict}; {r['model_id'] or 'not registered'}"))
        rows += [
            ("traded session", f"{tr['session']}: " + (", ".join(tr["models"]) or "no strategy traded")),
            ("orders", f"{tr['orders']} sent, {tr['filled_orders']} filled ({tr['filled_shares']:g} shares)"),
            (
                "slippage (bps)",
                f"forecast {_num(tr['forecast_bps_mean'], '.2f')}, "
                f"realized {_num(tr['realized_bps_mean'], '.2f')} (mean of filled orders)",
            ),
            (
                "PnL",
                f"{tr['pnl']:+,.2f} (account equity {tr['start_equity']:,.2f} -> {tr['end_equity']:,.2f}"
                + (f"; the engine's ledger {tr['ledger_equity']:,.2f})" if "ledger_equity" in tr else ")"),
            ),
            (
                "positions after close",
                ", ".join(f"{k} {v:g}" for k, v in tr["positions_after_close"].items()) or "flat",
            ),
            ("time", ", ".join(f"{k} {v:.1f} s" for k, v in s["seconds"].items())),
        ]
        rows += [(f"file: {k}", v) for k, v in s["files"].items()]
        t = Table(show_header=False, box=None)
        t.add_column(style="bold")
        t.add_column()
        for k, v in rows:
            t.add_row(k, v)
        self.console.print(t)


def fills_by_leg(orders: pl.DataFrame) -> pl.DataFrame:
    """Orders (the engine's ORDER_SCHEMA, in the order sent) summed per trade leg: `trade` numbers the
    entries of a strategy in a symbol (an entry is its leg "entry", or its first slice "entry.0"), and an
    entry's slices ("entry.1", ...) count with it. First decision time, shares sent and filled, average
    fill price, and forecast / realized bps weighted by filled shares."""
    w = pl.col("filled_qty")
    starts = pl.col("leg").is_in(["entry", "entry.0"])
    return (
        orders.with_columns(
            pl.col("leg").str.split(".").list.first(),
            trade=starts.cum_sum().over("strategy", "symbol"),
        )
        .group_by("strategy", "symbol", "trade", "leg", maintain_order=True)
        .agg(
            pl.col("decision_ts").min(),
            pl.col("side").first(),
            pl.len().alias("orders"),
            pl.col("qty").sum(),
            w.sum().alias("filled_qty"),
            ((pl.col("avg_price") * w).sum() / w.sum()).alias("avg_price"),
            ((pl.col("forecast_bps") * w).sum() / w.sum()).alias("forecast_bps"),
            ((pl.col("realized_bps") * w).sum() / w.sum()).alias("realized_bps"),
        )
        .sort("decision_ts", maintain_order=True)
    )


def _num(v: float | None, fmt: str) -> str:
    return "-" if v is None or v != v else format(v, fmt)


def run(args: argparse.Namespace) -> int:
    from hybridtrader.cli.run_job import RunSettings, run_job

    cfg = load_config(args.config)
    settings = RunSettings(
        out=args.out if args.out is not None else cfg.data_dir / "run",
        symbols=args.symbols,
        sessions=args.sessions,
        seed=args.seed,
        start=args.start,
        mean_reversion=args.mean_reversion,
        trend=args.trend,
        regime_reversion=args.regime_reversion,
    )
    run_job(cfg, settings, RichReporter(Console()))
    return 0
