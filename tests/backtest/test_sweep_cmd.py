"""`hybridtrader sweep` on the engine's backtest: a 2x2 grid of intraday mean reversion's entry rule on a
tiny synthetic market gives byte-identical results on the sequential backend (in process) and the process
pool (the CLI as a subprocess); each cell equals a direct `run_backtest` with its overrides and task seed;
a rerun resumes every cell from the store; a bad grid key is one line naming it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hybridtrader.backtest.run import run_backtest
from hybridtrader.backtest.sweep import grid_cells, parse_grid
from hybridtrader.cli import main
from hybridtrader.config import Config, with_overrides
from hybridtrader.ml.sharpe import return_moments
from hybridtrader.tasks import task_seed

KEY = "ml_training.labels.mean_reversion"
CLI = "import sys; from hybridtrader.cli import main; sys.exit(main(sys.argv[1:]))"
GRID = [f"--grid={KEY}.entry_z=1.0,2.0", f"--grid={KEY}.window=5,20"]


def _args(tmp: Path, out: str, compute: str) -> list[str]:
    sets = ["backtest.synth.symbols=3", "backtest.synth.sessions=4", "backtest.use_models=false"]
    return [
        "sweep", "--strategy", "intraday_mean_reversion", *GRID, "--compute", compute, "--seed", "7",
        "--out", str(tmp / out), "--no-progress", *(f"--set={s}" for s in [f"data_dir={tmp}", *sets]),
    ]  # fmt: skip


def test_sequential_and_pool_sweeps_are_byte_identical_and_match_direct_backtests(tmp_path: Path) -> None:
    assert main(_args(tmp_path, "seq", "seq")) == 0
    done = subprocess.run(
        [sys.executable, "-c", CLI, *_args(tmp_path, "pool", "pool:2")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "deflated Sharpe counting all 4 cells" in done.stdout
    seq, pool = (tmp_path / d / "results.parquet" for d in ("seq", "pool"))
    assert seq.read_bytes() == pool.read_bytes()
    table = pl.read_parquet(seq)
    assert table.height == 4 and table["error"].null_count() == 4

    # each cell is the engine's backtest with the cell's overrides and the task's seed
    base = with_overrides(
        Config(data_dir=tmp_path),
        ["backtest.strategies=[intraday_mean_reversion]", "backtest.synth.symbols=3",
         "backtest.synth.sessions=4", "backtest.use_models=false"],
    )  # fmt: skip
    cells = grid_cells(parse_grid([g.removeprefix("--grid=") for g in GRID]))
    for row, (key, params) in zip(table.iter_rows(named=True), cells.items(), strict=True):
        sets = [f"execution.fills.seed={task_seed(7, key)}", *(f"{k}={v}" for k, v in params.items())]
        bt = run_backtest(with_overrides(base, sets), seed=7)
        ret = bt.tables["daily"]["ret"].to_numpy()
        assert row["sharpe"] == pytest.approx(return_moments(ret).sharpe, rel=1e-12)
        assert row["total_return"] == pytest.approx(np.prod(1 + ret) - 1, rel=1e-12, abs=1e-15)
        assert row["n_periods"] == 4
    assert table["total_return"].n_unique() > 1  # the grid reaches the strategy

    page = (tmp_path / "seq" / "index.html").read_text()
    assert "4 cells" in page and "heatmap.svg" in page
    assert (tmp_path / "seq" / "heatmap.svg").read_text().count("class='cell'") == 4


def test_rerun_resumes_every_cell_from_the_store(tmp_path: Path) -> None:
    assert main(_args(tmp_path, "a", "seq")) == 0
    first = (tmp_path / "a" / "results.parquet").read_bytes()
    stored = sorted((tmp_path / "a" / "tasks").glob("*/*.pkl"))
    assert len(stored) == 4
    stamps = [p.stat().st_mtime_ns for p in stored]
    stored[0].unlink()  # as if interrupted before the first cell was saved
    assert main(_args(tmp_path, "a", "seq")) == 0
    assert (tmp_path / "a" / "results.parquet").read_bytes() == first
    assert [p.stat().st_mtime_ns for p in stored[1:]] == stamps[1:]  # the others were not recomputed
    assert stored[0].exists()


def test_bad_grid_key_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = ["sweep", "--grid", "risk.no_such_key=1,2", "--out", str(tmp_path)]
    assert main([*bad, "--set", f"data_dir={tmp_path}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "risk.no_such_key" in err
