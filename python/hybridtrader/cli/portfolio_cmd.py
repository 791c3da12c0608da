"""`hybridtrader portfolio`: the current allocation and universe from the persisted state, and what a
rebalance (and, with --select, a universe rotation) would change. Nothing is written.

State: `portfolio.allocation.state_path` and `portfolio.universe.history_path` (default under
`<data_dir>/portfolio/`). Without state the allocation shown is the one the stated too-little-history rule
gives (equal shares). `--synthetic` needs no state, keys or network: it generates a seeded synthetic market
and feeds the allocator proxy daily returns derived from it, since no strategy has traded yet: a strategy
whose name contains "reversion" gets a one-day reversal rule (-sign of yesterday's return x today's return,
averaged over the symbols), any other a five-day momentum rule (sign of the last five days' return x
today's return); the universe is selected from the market's daily bars in a temporary bar store.
"""

from __future__ import annotations

import argparse
import tempfile
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import polars as pl

from hybridtrader.config import Config, load_config

DEFAULT_EQUITY = 100_000.0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("portfolio",
                       help="show the capital allocation and universe, and what a rebalance would change")
    p.add_argument("--config", help="YAML config (default: $HYBRIDTRADER_CONFIG or built-in)")
    p.add_argument("--equity", type=float, help="equity to allocate (default: the last allocation's, else "
                   f"{DEFAULT_EQUITY:,.0f})")
    p.add_argument("--select", action="store_true",
                   help="also run the universe filters on the bar store; show what a rotation would change")
    p.add_argument("--store", help="bar store root for --select (default: <data_dir>/bars)")
    p.add_argument("--asof", help="session date for --select (default: the last stored session)")
    p.add_argument("--synthetic", action="store_true",
                   help="no state needed: proxy strategy returns and a universe from a synthetic market")
    p.add_argument("--sessions", type=int, default=60, help="synthetic market sessions (default 60)")
    p.add_argument("--symbols", type=int, default=12, help="synthetic market symbols (default 12)")
    p.add_argument("--seed", type=int, default=0, help="synthetic market seed (default 0)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(run=run)


def proxy_returns(bars_1d: pl.DataFrame, strategies: list[str]) -> dict[str, dict[date, float]]:
    """Daily returns of simple rules on daily bars (see the module docstring), one series per strategy."""
    day = pl.col("ts").dt.convert_time_zone("America/New_York").dt.date().alias("date")
    r = bars_1d.sort("symbol", "ts").select(
        "symbol", day, ret=pl.col("close").pct_change().over("symbol"),
        mom=pl.col("close").pct_change(5).over("symbol"))
    rules = r.with_columns(
        reversion=-pl.col("ret").shift(1).sign().over("symbol") * pl.col("ret"),
        momentum=pl.col("mom").shift(1).sign().over("symbol") * pl.col("ret"),
    ).group_by("date").agg(pl.col("reversion").mean(), pl.col("momentum").mean()).drop_nulls().sort("date")
    out = {}
    for name in strategies:
        column = "reversion" if "reversion" in name else "momentum"
        out[name] = dict(zip(rules["date"].to_list(), rules[column].to_list(), strict=True))
    return out


def report(cfg: Config, args: argparse.Namespace) -> dict[str, Any]:
    from hybridtrader.data.bar_store import BarStore
    from hybridtrader.portfolio.capital_allocator import CapitalAllocator
    from hybridtrader.portfolio.universe import select_universe
    from hybridtrader.portfolio.universe_rotation import UniverseRotationTracker

    allocator = CapitalAllocator(cfg, persist=not args.synthetic)
    tracker = UniverseRotationTracker(cfg, persist=not args.synthetic)
    out: dict[str, Any] = {"source": "synthetic market (proxy returns)" if args.synthetic else
                           f"state {allocator.path}, {tracker.path}"}
    store_root = Path(args.store) if args.store else Path(cfg.data_dir) / "bars"
    with tempfile.TemporaryDirectory() as tmp:
        if args.synthetic:
            from hybridtrader.market.synth import generate_market

            market = generate_market(symbols=args.symbols, sessions=args.sessions, seed=args.seed,
                                     ticks=False)
            for name, series in proxy_returns(market.bars_1d, allocator.strategies).items():
                allocator.update_strategy_performance(name, series)
            store_root = Path(tmp)
            BarStore(store_root).upsert(market.bars_1d, cfg.portfolio.universe.timeframe)
        equity = args.equity if args.equity is not None else allocator.equity or DEFAULT_EQUITY
        plan = allocator.plan(equity)
        current = {n: w * equity for n, w in allocator.weights.items()}
        out["allocation"] = {
            "method": plan.method, "equity": equity,
            "last_rebalance": allocator.last_rebalance.isoformat() if allocator.last_rebalance else None,
            "history_days": {n: allocator.history_length(n) for n in allocator.strategies},
            "current": current, "target": plan.capital, "probation": plan.probation, "notes": plan.notes,
            "rebalance": allocator.rebalance_needed(current, plan.capital, equity=equity).reason
            if current else "no allocation recorded yet",
        }
        universe: dict[str, Any] = {
            "members": {s: {**m, "stability": round(tracker.get_symbol_stability_score(s), 4)}
                        for s, m in tracker.members.items()},
            "rotation": tracker.should_rotate().reason,
        }
        if args.select or args.synthetic:
            sel = select_universe(BarStore(store_root), cfg, asof=args.asof)
            universe["selection"] = {
                "asof": sel.asof.isoformat(), "candidates": len(sel.candidates), "selected": sel.symbols,
                "steps": [{"filter": s.name, "removed": s.removed, "skipped": s.skipped} for s in sel.steps],
                "would_add": sorted(set(sel.symbols) - set(tracker.members)),
                "would_remove": sorted(set(tracker.members) - set(sel.symbols)),
            }
        out["universe"] = universe
    return out


def _print(rep: dict[str, Any]) -> None:
    a = rep["allocation"]
    print(f"source: {rep['source']}")
    last = a["last_rebalance"] or "never"
    print(f"allocation ({a['method']}, equity {a['equity']:,.2f}; last rebalance {last})")
    print(f"  {'strategy':<28}{'days':>6}{'current':>16}{'target':>16}{'change':>16}")
    for name in sorted({*a["current"], *a["target"]}):
        cur, tgt = a["current"].get(name, 0.0), a["target"].get(name, 0.0)
        days = a["history_days"].get(name, 0)
        print(f"  {name:<28}{days:>6}{cur:>16,.2f}{tgt:>16,.2f}{tgt - cur:>+16,.2f}")
    for name, why in a["probation"].items():
        print(f"  probation: {name}: {why} (equal share)")
    for note in a["notes"]:
        print(f"  note: {note}")
    print(f"  rebalance: {a['rebalance']}")
    u = rep["universe"]
    print(f"universe: {len(u['members'])} symbols; rotation: {u['rotation']}")
    for sym, m in sorted(u["members"].items()):
        print(f"  {sym:<8} since {m['since']}  stability {m['stability']:.2f}  ({m['reason']})")
    sel = u.get("selection")
    if sel:
        print(f"selection as of {sel['asof']}: {len(sel['selected'])} of {sel['candidates']} candidates")
        for step in sel["steps"]:
            if step["skipped"]:
                print(f"  {step['filter']:<13} skipped: {step['skipped']}")
                continue
            print(f"  {step['filter']:<13} removed {len(step['removed'])}")
            for sym, why in sorted(step["removed"].items()):
                print(f"    {sym:<8} {why}")
        print(f"  rotation would add: {', '.join(sel['would_add']) or '-'}; "
              f"remove: {', '.join(sel['would_remove']) or '-'}")


def run(args: argparse.Namespace) -> int:
    rep = report(load_config(args.config), args)
    if args.json:
        print(orjson.dumps(rep, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode())
    else:
        _print(rep)
    return 0
