"""A backtest whose rows spill to part files (`run_backtest(spill=...)`, what the CLI does) reports and
writes exactly what the same run kept in memory writes: every output file byte for byte."""

from __future__ import annotations

from pathlib import Path

from hybridtrader.backtest.run import run_backtest, write_outputs
from hybridtrader.config import Config, with_overrides
from polars.testing import assert_frame_equal


def test_spilled_run_writes_the_same_bytes(tmp_path: Path) -> None:
    cfg = with_overrides(
        Config(data_dir=tmp_path),
        [
            "backtest.synth.symbols=6",
            "backtest.synth.sessions=4",
            "backtest.strategies=[intraday_mean_reversion, ema_cross]",
        ],
    )
    spill = tmp_path / "spill"
    spill.mkdir()
    in_memory = run_backtest(cfg, seed=3)
    spilled = run_backtest(cfg, seed=3, spill=spill)
    # one part file per session and table: the rows were on disk, not in memory
    assert len(list((spill / "fills").glob("*.parquet"))) == 4
    assert len(list((spill / "equity").glob("*.parquet"))) == 4
    assert spilled.result.orders.height > 20
    for name in ("orders", "fills", "equity"):
        assert_frame_equal(getattr(spilled.result, name), getattr(in_memory.result, name), check_exact=True)
    assert spilled.summary == in_memory.summary
    write_outputs(in_memory, tmp_path / "a")
    write_outputs(spilled, tmp_path / "b")
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "b").iterdir())
    assert {"orders.parquet", "fills.parquet", "equity.parquet", "tearsheet.html"} <= set(names)
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
