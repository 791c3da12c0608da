"""No command loses input: `bars` never writes over its input or (without --force) an existing file; a
run's results appear together or not at all; every output file gets the one permission policy."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import polars as pl
import pytest
from hybridtrader.cli import main
from hybridtrader.data.atomic import FILE_MODE, staged_outputs, write_parquet_atomic, write_state
from hybridtrader.market.synth import generate_market


@pytest.fixture(scope="module")
def trades(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("t") / "trades.parquet"
    generate_market(symbols=2, sessions=1, trades_per_minute=2.0).trades.write_parquet(path)
    return path


def test_bars_refuses_to_write_over_its_input(
    trades: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "x.parquet"
    src.write_bytes(trades.read_bytes())
    link = tmp_path / "same.parquet"
    os.link(src, link)  # the same file under another name
    for out, force in ((src, []), (src, ["--force"]), (link, ["--force"])):
        assert main(["bars", "-i", str(src), "-o", str(out), "--every", "1m", *force]) == 2
        err = capsys.readouterr().err
        assert "is the input file" in err and err.count("\n") == 1
    assert src.read_bytes() == trades.read_bytes()


def test_bars_refuses_an_existing_output_without_force(
    trades: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bars.parquet"
    out.write_bytes(b"precious")
    assert main(["bars", "-i", str(trades), "-o", str(out), "--every", "1m"]) == 2
    assert "exists; pass --force" in capsys.readouterr().err
    assert out.read_bytes() == b"precious"
    assert main(["bars", "-i", str(trades), "-o", str(out), "--every", "1m", "--force"]) == 0
    assert pl.read_parquet(out)["symbol"].n_unique() == 2


def test_staged_outputs_appear_together_or_not_at_all(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with staged_outputs(out, "summary.json") as stage:
        write_state(stage / "summary.json", 1, {"run": 1})
        (stage / "report").mkdir()
        (stage / "report" / "index.html").write_text("run 1")
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert set(map(str, before)) == {"summary.json", "report/index.html"}

    # an interrupted rerun
    with pytest.raises(KeyboardInterrupt), staged_outputs(out, "summary.json") as stage:
        (stage / "report").mkdir()
        (stage / "report" / "index.html").write_text("run 2")
        raise KeyboardInterrupt
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before

    with staged_outputs(out, "summary.json") as stage:
        write_state(stage / "summary.json", 1, {"run": 3})
        (stage / "report").mkdir()
        (stage / "report" / "index.html").write_text("run 3")
    assert (out / "report" / "index.html").read_text() == "run 3"
    assert b'"run": 3' in (out / "summary.json").read_bytes()
    assert sorted(p.name for p in out.iterdir()) == ["report", "summary.json"]  # no staging left


def test_rejected_run_leaves_no_output_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert main(["run", "--out", str(out), "--start", "2024-13-40", "--sessions", "2", "--symbols", "1"]) == 2
    assert "2024-13-40" in capsys.readouterr().err
    assert not out.exists()


def test_one_permission_policy(tmp_path: Path) -> None:
    frame = pl.DataFrame({"a": [1]})
    write_parquet_atomic(frame, tmp_path / "data.parquet")
    write_state(tmp_path / "state.json", 1, {})
    frame.write_parquet(tmp_path / "plain.parquet")  # what open() gives: the policy's reference
    plain = stat.S_IMODE((tmp_path / "plain.parquet").stat().st_mode)
    assert plain == FILE_MODE
    for name in ("data.parquet", "state.json"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == plain, name
