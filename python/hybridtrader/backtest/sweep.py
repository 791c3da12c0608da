"""Backtest parameter sweeps: a grid of parameter cells, one backtest task per cell on `hybridtrader.tasks`
(sequential, process pool or Ray), a results table, the deflated Sharpe of the best cell, and an HTML page
with a heatmap of the objective over a 2-D grid.

The backtest is a parameter: a module-level function `backtest(params, ctx) -> per-period returns` where
`ctx.shared` is the data every cell reads (bars; it travels once) and `ctx.seed` the cell's own seed. The
objective is the per-period Sharpe ratio (mean / std, ddof 1). Picking the best of N cells is selection, so
its deflated Sharpe counts every cell tried, failed cells included, with V the variance of the cells'
Sharpe ratios (`ml.sharpe.deflated_sharpe_ratio`, conservative form, as the promotion gate uses).

Walk-forward over parameters (`walk_forward`): the periods are cut into the walk-forward windows of
`ml.validation.walk_forward_splits`; in each, the cell with the best Sharpe on the training window is
chosen and its returns on the following test window are kept. The joined test returns are out of sample
(every choice was made on the past), so their Sharpe needs no deflation; their PSR(0) is reported.
"""

from __future__ import annotations

import html
import itertools
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from hybridtrader.backtest.feed import FrameFeed
from hybridtrader.backtest.run import make_feed, run_backtest
from hybridtrader.config import ComputeConfig, Config, WalkForwardConfig, with_overrides
from hybridtrader.data.atomic import write_atomic, write_parquet_atomic
from hybridtrader.errors import ConfigError, DataError
from hybridtrader.ml.sharpe import (
    ReturnMoments,
    deflated_sharpe_ratio,
    probabilistic_sharpe_ratio,
    return_moments,
)
from hybridtrader.ml.validation import walk_forward_splits
from hybridtrader.tasks import Progress, TaskContext, run

Value = int | float | bool | str
Grid = dict[str, list[Value]]
Backtest = Callable[[dict[str, Value], TaskContext], np.ndarray]

METRICS = ("sharpe", "total_return", "max_drawdown", "n_periods", "error")


def _value(text: str) -> Value:
    """A grid value as the narrowest of int, float, bool and str that reads it."""
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def parse_grid(specs: Sequence[str]) -> Grid:
    """`["fast=5,10", "slow=20,50"]` -> {"fast": [5, 10], "slow": [20, 50]} (the `--grid` options)."""
    grid: Grid = {}
    for spec in specs:
        key, sep, values = spec.partition("=")
        key = key.strip()
        items = [v.strip() for v in values.split(",")]
        if not sep or not key or not all(items):
            raise ConfigError(f"--grid: expected key=v1,v2,... got {spec!r}")
        if key in grid:
            raise ConfigError(f"--grid: key {key!r} given twice")
        if key in METRICS:
            raise ConfigError(f"--grid: {key!r} names a result column; rename the parameter")
        parsed = [_value(v) for v in items]
        if all(type(v) in (int, float) for v in parsed) and float in map(type, parsed):
            parsed = [float(v) for v in parsed]  # one column type: "0.5,1" is two floats
        if len(set(parsed)) != len(parsed):
            raise ConfigError(f"--grid: {key} repeats a value in {spec!r}")
        grid[key] = parsed
    if not grid:
        raise ConfigError("--grid: give at least one key=v1,v2,...")
    return grid


def grid_cells(grid: Grid) -> dict[str, dict[str, Value]]:
    """Every combination of the grid's values, keyed "k1=v1,k2=v2" (the task key), first key slowest."""
    keys = list(grid)
    return {
        ",".join(f"{k}={v}" for k, v in zip(keys, combo, strict=True)): dict(zip(keys, combo, strict=True))
        for combo in itertools.product(*grid.values())
    }


def max_drawdown(returns: np.ndarray) -> float:
    """Largest fall of the compounded equity from its running peak, as a fraction (0.2 = 20%)."""
    equity = np.cumprod(1.0 + np.concatenate([[0.0], returns]))
    return float((1.0 - equity / np.maximum.accumulate(equity)).max())


@dataclass(frozen=True)
class SweepResult:
    grid: Grid
    table: pl.DataFrame  # one row per cell in grid order: the parameters, then METRICS
    best: str | None  # key of the cell with the highest Sharpe (None if every cell failed)
    deflated_sharpe: float | None  # of the best cell, counting every cell tried
    seed: int
    returns: dict[str, np.ndarray] = field(repr=False)  # per-period returns of each cell that ran

    @property
    def n_trials(self) -> int:
        return self.table.height


def sweep(
    backtest: Backtest,
    grid: Grid,
    data: Any,
    compute: ComputeConfig | None = None,
    *,
    seed: int = 0,
    store: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
) -> SweepResult:
    """Run `backtest` on every cell of `grid` (data shared by all cells) and score the cells."""
    cells = grid_cells(grid)
    outcome = run(backtest, cells, compute, seed=seed, shared=data, store=store, progress=progress)
    rows = []
    best: tuple[str, ReturnMoments] | None = None
    for key, params in cells.items():
        row: dict[str, Any] = dict(params)
        if key in outcome.results:
            r = np.asarray(outcome.results[key], dtype=float)
            m = return_moments(r)
            total = float(np.prod(1.0 + r) - 1.0)
            row |= {"sharpe": m.sharpe, "total_return": total, "max_drawdown": max_drawdown(r)}
            row |= {"n_periods": len(r), "error": None}
            if best is None or m.sharpe > best[1].sharpe:
                best = (key, m)
        else:
            row |= {"sharpe": None, "total_return": None, "max_drawdown": None, "n_periods": None}
            row["error"] = outcome.failures[key].error
        rows.append(row)
    schema = {k: pl.Series([v[0]]).dtype for k, v in grid.items()}
    schema |= {"sharpe": pl.Float64, "total_return": pl.Float64, "max_drawdown": pl.Float64}
    schema |= {"n_periods": pl.Int64, "error": pl.String}
    table = pl.DataFrame(rows, schema=schema, orient="row")
    dsr = None
    if best is not None and best[1].n >= 2:
        sharpes = table["sharpe"].drop_nulls().to_numpy()
        var = float(sharpes.var(ddof=1)) if len(sharpes) > 1 else 0.0
        m = best[1]
        dsr = deflated_sharpe_ratio(m.sharpe, m.n, m.skew, m.kurtosis, table.height, var, conservative=True)
    returns = {k: np.asarray(r, dtype=float) for k, r in outcome.results.items()}
    return SweepResult(grid, table, best[0] if best else None, dsr, seed, returns)


@dataclass(frozen=True)
class WalkForward:
    folds: pl.DataFrame  # per test window: fold, first and last period, chosen cell, its train/test Sharpe
    returns: np.ndarray  # the out-of-sample returns: each window's chosen cell on that window
    sharpe: float  # per period, of `returns`
    psr: float  # probabilistic Sharpe ratio of `returns` against 0


def walk_forward(result: SweepResult, cfg: WalkForwardConfig | None = None) -> WalkForward:
    """Choose the best cell on each walk-forward training window and keep its next test window."""
    cfg = cfg or WalkForwardConfig()
    if not result.returns:
        raise DataError("walk-forward: no cell of the sweep produced returns")
    lengths = {k: len(r) for k, r in result.returns.items()}
    if len(set(lengths.values())) != 1:
        raise DataError(f"walk-forward needs every cell's returns on the same periods; lengths: {lengths}")
    periods = np.arange(next(iter(lengths.values())))
    rows, pieces = [], []
    tested = 0  # a period in two test windows (step < test) keeps the first window's choice
    for f, split in enumerate(walk_forward_splits(periods, periods, cfg)):
        train_sr = {k: return_moments(r[split.train]).sharpe for k, r in result.returns.items()}
        chosen = max(train_sr, key=lambda k: train_sr[k])  # first cell in grid order on ties
        test = split.test[split.test >= tested]
        if len(test) == 0:
            continue
        oos = result.returns[chosen][test]
        pieces.append(oos)
        tested = int(test[-1]) + 1
        rows.append((f, int(test[0]), int(test[-1]), chosen, train_sr[chosen], return_moments(oos).sharpe))
    cols = ["fold", "first_period", "last_period", "chosen", "train_sharpe", "test_sharpe"]
    folds = pl.DataFrame(rows, schema=cols, orient="row")
    returns = np.concatenate(pieces)
    m = return_moments(returns)
    psr = probabilistic_sharpe_ratio(m.sharpe, 0.0, m.n, m.skew, m.kurtosis, conservative=True)
    return WalkForward(folds, returns, m.sharpe, psr)


# ------------------------------------------------------------------------------------------ report
def _colour(v: float, lo: float, hi: float) -> str:
    """Diverging red (below zero) - white - green (above); the scale's end is the largest |value|."""
    top = max(abs(lo), abs(hi)) or 1.0
    t = max(-1.0, min(1.0, v / top))
    fade = int(255 * (1.0 - abs(t)))
    return f"rgb({fade},{255 - int(80 * abs(t))},{fade})" if t >= 0 else f"rgb(255,{fade},{fade})"


def heatmap_svg(result: SweepResult, x: str, y: str, objective: str = "sharpe") -> bytes:
    """The objective over the 2-D grid of parameters `x` (columns) and `y` (rows); failed cells grey.
    Each cell is a <rect class='cell'> whose <title> gives its parameters and value."""
    xs, ys = result.grid[x], result.grid[y]
    if set(result.grid) != {x, y}:
        raise ConfigError(f"heatmap: the grid has keys {list(result.grid)}, need exactly {x!r} and {y!r}")
    cw, ch, left, top = 80, 36, 110, 50
    width, height = left + cw * len(xs) + 20, top + ch * len(ys) + 50
    values = {(r[x], r[y]): r[objective] for r in result.table.iter_rows(named=True)}
    finite = [v for v in values.values() if v is not None and math.isfinite(v)]
    lo, hi = (min(finite), max(finite)) if finite else (0.0, 0.0)
    font = "font-family='sans-serif' font-size='11'"
    parts = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}'>"
        "<rect width='100%' height='100%' fill='white'/>",
        f"<text x='{width / 2}' y='20' text-anchor='middle' font-family='sans-serif' font-size='13'>"
        f"{html.escape(objective)} over {html.escape(x)} x {html.escape(y)}</text>",
    ]
    for i, xv in enumerate(xs):
        parts.append(
            f"<text x='{left + cw * i + cw / 2}' y='{top + ch * len(ys) + 18}' text-anchor='middle' {font}>"
            f"{html.escape(str(xv))}</text>"
        )
    parts.append(
        f"<text x='{left + cw * len(xs) / 2}' y='{height - 8}' text-anchor='middle' {font}>"
        f"{html.escape(x)}</text>"
    )
    for j, yv in enumerate(ys):
        row_y = top + ch * j
        parts.append(
            f"<text x='{left - 8}' y='{row_y + ch / 2 + 4}' text-anchor='end' {font}>"
            f"{html.escape(str(yv))}</text>"
        )
        for i, xv in enumerate(xs):
            v = values[(xv, yv)]
            fill = "#ccc" if v is None else _colour(v, lo, hi)
            label = "failed" if v is None else f"{v:.3g}"
            title = html.escape(f"{x}={xv}, {y}={yv}: {objective} {label}")
            parts.append(
                f"<rect class='cell' x='{left + cw * i}' y='{row_y}' width='{cw}' height='{ch}' "
                f"fill='{fill}' stroke='white'><title>{title}</title></rect>"
                f"<text x='{left + cw * i + cw / 2}' y='{row_y + ch / 2 + 4}' text-anchor='middle' {font}>"
                f"{label}</text>"
            )
    parts.append(
        f"<text x='14' y='{top + ch * len(ys) / 2}' text-anchor='middle' {font} "
        f"transform='rotate(-90 14 {top + ch * len(ys) / 2})'>{html.escape(y)}</text></svg>"
    )
    return "".join(parts).encode()


def write_sweep_report(result: SweepResult, directory: str | os.PathLike[str], title: str) -> Path:
    """`results.parquet`, and `index.html`: the best cell, its deflated Sharpe, the results table, and the
    heatmap (`heatmap.svg`) when the grid has two keys."""
    out = Path(directory)
    write_parquet_atomic(result.table, out / "results.parquet")
    figure = ""
    keys = list(result.grid)
    if len(keys) == 2:
        svg = heatmap_svg(result, keys[1], keys[0])
        write_atomic(out / "heatmap.svg", lambda f: f.write(svg))
        figure = "<img src='heatmap.svg' alt='heatmap of the objective'>"
    head = "".join(f"<th>{html.escape(c)}</th>" for c in result.table.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(cell_text(v))}</td>" for v in row) + "</tr>"
        for row in result.table.iter_rows()
    )
    dsr = "n/a" if result.deflated_sharpe is None else f"{result.deflated_sharpe:.4f}"
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><p>{result.n_trials} cells, seed {result.seed}; best cell "
        f"{html.escape(str(result.best))}; deflated Sharpe of the best cell (counting all {result.n_trials} "
        f"cells): {dsr}</p>{figure}<table><tr>{head}</tr>{body}</table></body></html>"
    )
    write_atomic(out / "index.html", lambda f: f.write(page.encode()))
    return out / "index.html"


def cell_text(v: Any) -> str:
    if v is None:
        return ""
    return f"{v:.4g}" if isinstance(v, float) else str(v)


# ---------------------------------------------------------------------------- the engine's backtest
@dataclass(frozen=True)
class EngineData:
    """What every engine-backtest cell shares: the base config (strategies, data, costs) and the bars.
    `bars` is the synthetic market, built once; None for the bar store, which each task reads itself."""

    config: Config
    bars: pl.DataFrame | None
    data: dict[str, Any]  # the provenance `make_feed` gives
    symbol_info: pl.DataFrame | None
    start: str | None = None
    end: str | None = None
    symbols: list[str] | None = None


def check_grid_keys(config: Config, grid: Grid) -> None:
    """Every grid key is a config key path that takes the grid's values (one line naming a bad key)."""
    for key, values in grid.items():
        for v in values:
            try:
                with_overrides(config, [f"{key}={v}"])
            except ConfigError as e:
                raise ConfigError(f"--grid {key}: {e}") from None


def engine_backtest(params: dict[str, Value], ctx: TaskContext) -> np.ndarray:
    """One cell: the engine's backtest with the cell's config overrides and the fill simulator seeded with
    the task's seed; its daily returns (close-to-close equity, the first against the starting cash)."""
    shared: EngineData = ctx.shared
    sets = [f"execution.fills.seed={ctx.seed}"] + [f"{k}={v}" for k, v in params.items()]  # a swept seed wins
    cfg = with_overrides(shared.config, sets)
    if shared.bars is not None:
        first, last = (date.fromisoformat(d) if d else None for d in (shared.start, shared.end))
        feed: Any = FrameFeed(shared.bars, start=first, end=last)
    else:
        feed = make_feed(cfg, start=shared.start, end=shared.end, symbols=shared.symbols)[0]
    bt = run_backtest(cfg, feed=feed, data=shared.data, symbol_info=shared.symbol_info, seed=ctx.seed)
    return bt.tables["daily"]["ret"].to_numpy()
