"""Backtest sweeps: --grid parsing, the cells, per-cell metrics against direct computations, the deflated
Sharpe of the best cell counting every cell (failed ones too) against the published formula, the same
table on the sequential and pool backends, and the HTML report with its heatmap."""

from __future__ import annotations

import math
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import polars as pl
import pytest
import sweep_fns
from hybridtrader.backtest.sweep import (
    grid_cells,
    max_drawdown,
    parse_grid,
    sweep,
    walk_forward,
    write_sweep_report,
)
from hybridtrader.config import ComputeConfig, WalkForwardConfig
from hybridtrader.errors import ConfigError, DataError
from hybridtrader.tasks import TaskContext
from scipy import stats

PRICES = 100.0 * np.exp(np.cumsum(np.random.default_rng(4).normal(0.0002, 0.01, 1500)))
GRID = {"fast": [5, 10, 30], "slow": [20, 30]}


def test_parse_grid_types_and_order() -> None:
    grid = parse_grid(["fast=5,10", "band=0.5,1", "side=long,short", "hedge=true,false"])
    assert grid == {"fast": [5, 10], "band": [0.5, 1.0], "side": ["long", "short"], "hedge": [True, False]}
    assert [type(v) for v in grid["band"]] == [float, float]
    cells = grid_cells({"a": [1, 2], "b": ["x", "y", "z"]})
    assert list(cells) == ["a=1,b=x", "a=1,b=y", "a=1,b=z", "a=2,b=x", "a=2,b=y", "a=2,b=z"]
    assert cells["a=2,b=y"] == {"a": 2, "b": "y"}


@pytest.mark.parametrize(
    ("specs", "message"),
    [
        (["fast"], "--grid: expected key=v1,v2,... got 'fast'"),
        (["=1,2"], "--grid: expected key=v1,v2,... got '=1,2'"),
        (["fast=1,,2"], "--grid: expected key=v1,v2,... got 'fast=1,,2'"),
        (["fast=1", "fast=2"], "--grid: key 'fast' given twice"),
        (["fast=1,1"], "--grid: fast repeats a value in 'fast=1,1'"),
        (["sharpe=1,2"], "--grid: 'sharpe' names a result column; rename the parameter"),
        ([], "--grid: give at least one key=v1,v2,..."),
    ],
)
def test_bad_grids(specs: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_grid(specs)
    assert str(err.value) == message


def test_max_drawdown_against_a_loop() -> None:
    r = np.random.default_rng(1).normal(0.0, 0.02, 300)
    equity, peak, worst = 1.0, 1.0, 0.0
    for x in r:
        equity *= 1.0 + x
        peak = max(peak, equity)
        worst = max(worst, 1.0 - equity / peak)
    assert max_drawdown(r) == pytest.approx(worst, rel=1e-12)
    assert max_drawdown(np.array([0.1, 0.1])) == 0.0


def test_sweep_metrics_failures_and_deflated_sharpe() -> None:
    result = sweep(sweep_fns.crossover, GRID, PRICES, seed=1)
    t = result.table
    assert t.columns == ["fast", "slow", "sharpe", "total_return", "max_drawdown", "n_periods", "error"]
    assert t.height == result.n_trials == 6
    failed = t.filter(pl.col("error").is_not_null())
    assert failed.select("fast", "slow").rows() == [(30, 20), (30, 30)]
    assert failed["error"].to_list() == [
        "ValueError: fast 30 must be below slow 20",
        "ValueError: fast 30 must be below slow 30",
    ]
    ok = t.filter(pl.col("error").is_null())
    for row in ok.iter_rows(named=True):
        r = sweep_fns.crossover(row, TaskContext("", 0, PRICES))
        assert row["sharpe"] == pytest.approx(r.mean() / r.std(ddof=1), rel=1e-12)
        assert row["total_return"] == pytest.approx(np.prod(1 + r) - 1, rel=1e-9)
        assert row["n_periods"] == len(r) == len(PRICES) - 1
    best = ok.sort("sharpe", descending=True).row(0, named=True)
    assert result.best == f"fast={best['fast']},slow={best['slow']}"
    # The published formula (Bailey & Lopez de Prado 2014), N = all 6 cells tried, V over the 4 Sharpes.
    r = sweep_fns.crossover(best, TaskContext("", 0, PRICES))
    sr, n = r.mean() / r.std(ddof=1), len(r)
    g3, g4 = stats.skew(r, bias=False), stats.kurtosis(r, fisher=False, bias=False)
    v = np.var(ok["sharpe"].to_numpy(), ddof=1)
    e = 0.5772156649015329
    sr0 = math.sqrt(v) * ((1 - e) * stats.norm.ppf(1 - 1 / 6) + e * stats.norm.ppf(1 - 1 / (6 * math.e)))
    se = max(math.sqrt(1 - g3 * sr + (g4 - 1) / 4 * sr**2), math.sqrt(1 + sr**2 / 2))
    assert result.deflated_sharpe == pytest.approx(
        stats.norm.cdf((sr - sr0) * math.sqrt(n - 1) / se), rel=1e-9
    )


def test_the_pool_gives_the_same_table() -> None:
    seq = sweep(sweep_fns.crossover, GRID, PRICES, seed=1)
    seen: list[tuple[int, int]] = []
    pool = sweep(sweep_fns.crossover, GRID, PRICES, ComputeConfig(backend="pool", workers=2), seed=1,
                 progress=lambda *a: seen.append(a))  # fmt: skip
    assert pool.table.equals(seq.table) and pool.best == seq.best
    assert pool.deflated_sharpe == seq.deflated_sharpe and seen[-1] == (6, 6)


def test_report_page_heatmap_and_table(tmp_path: Path) -> None:
    result = sweep(sweep_fns.crossover, GRID, PRICES, seed=1)
    page = write_sweep_report(result, tmp_path, "crossover sweep")
    text = page.read_text()
    assert f"deflated Sharpe of the best cell (counting all 6 cells): {result.deflated_sharpe:.4f}" in text
    assert "heatmap.svg" in text and text.count("<tr>") == 7
    assert pl.read_parquet(tmp_path / "results.parquet").equals(result.table)
    svg = ElementTree.parse(tmp_path / "heatmap.svg").getroot()
    ns = "{http://www.w3.org/2000/svg}"
    cells = [c for c in svg.iter(f"{ns}rect") if c.get("class") == "cell"]
    titles = sorted(c.find(f"{ns}title").text for c in cells)
    want = sorted(
        f"slow={r['slow']}, fast={r['fast']}: sharpe "
        + ("failed" if r["sharpe"] is None else f"{r['sharpe']:.3g}")
        for r in result.table.iter_rows(named=True)
    )
    assert titles == want
    greys = [c for c in cells if c.get("fill") == "#ccc"]
    assert len(greys) == 2  # the failed cells


def test_walk_forward_over_parameters_against_a_hand_loop() -> None:
    result = sweep(sweep_fns.crossover, GRID, PRICES, seed=1)
    wf = walk_forward(result, WalkForwardConfig(train_fraction=0.4, test_fraction=0.2))
    n = len(PRICES) - 1
    train_len, test_len = math.ceil(0.4 * n), math.ceil(0.2 * n)
    ok = [k for k in result.returns]  # the cells that ran, in grid order
    assert ok == ["fast=5,slow=20", "fast=5,slow=30", "fast=10,slow=20", "fast=10,slow=30"]
    expected, chosen = [], []
    for start in range(train_len, n, test_len):  # expanding window, adjacent test blocks

        def sr(k: str, lo: int, hi: int) -> float:
            r = result.returns[k][lo:hi]
            return r.mean() / r.std(ddof=1)

        best = max(ok, key=lambda k: sr(k, 0, start))
        chosen.append(best)
        expected.append(result.returns[best][start : start + test_len])
    assert wf.folds["chosen"].to_list() == chosen and len(chosen) == 3
    np.testing.assert_array_equal(wf.returns, np.concatenate(expected))
    assert wf.sharpe == pytest.approx(wf.returns.mean() / wf.returns.std(ddof=1), rel=1e-12)
    assert 0.0 < wf.psr < 1.0


def test_walk_forward_needs_aligned_returns() -> None:
    ragged = sweep(sweep_fns.crossover_unpadded, {"fast": [5], "slow": [20, 30]}, PRICES)
    with pytest.raises(
        DataError, match=r"same periods; lengths: \{'fast=5,slow=20': 1480, 'fast=5,slow=30': 1470\}"
    ):
        walk_forward(ragged)
