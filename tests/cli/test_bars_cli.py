"""`hybridtrader bars` end to end on parquet files, against the batch function."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from helpers import UTC_NS
from hybridtrader.cli import main
from hybridtrader.market import aggregate_quotes, aggregate_trades


def _trades(n: int = 5000) -> pl.DataFrame:
    rng = np.random.default_rng(9)
    ts = np.sort(rng.integers(0, 2 * 3600 * 10**9, n)) + 1_704_205_800 * 10**9
    return pl.DataFrame(
        {
            "symbol": np.array(["AAPL", "MSFT", "SPY"])[rng.integers(0, 3, n)],
            "ts": pl.Series(ts).cast(UTC_NS),
            "price": rng.uniform(100, 101, n),
            "size": rng.integers(1, 500, n),
        }
    )


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("rule", [["--every", "5m"], ["--ticks", "40"], ["--dollars", "2e6"]])
def test_cli_writes_the_batch_bars(tmp_path: Path, capsys, shuffle: bool, rule: list[str]) -> None:
    trades = _trades()
    if shuffle:  # streamed slices see late ticks: the command falls back to the sorting batch path
        trades = trades.unique(["symbol", "ts"], maintain_order=True)
        trades = trades.sample(fraction=1.0, shuffle=True, seed=3)
    src, dst = tmp_path / "trades.parquet", tmp_path / "bars.parquet"
    trades.write_parquet(src)
    assert main(["bars", "-i", str(src), "-o", str(dst), "--chunk-rows", "700", *rule]) == 0
    key = rule[0].lstrip("-")
    value = rule[1] if key == "every" else float(rule[1]) if key == "dollars" else int(rule[1])
    expected = aggregate_trades(trades, **{key: value})
    assert pl.read_parquet(dst).equals(expected)
    summary = capsys.readouterr().out
    assert f"wrote {len(expected):,} trade bars for 3 symbols from {len(trades):,} ticks" in summary
    assert ("sorted" in summary) == shuffle
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bars.parquet", "trades.parquet"]  # no temp left


def test_cli_quotes(tmp_path: Path) -> None:
    trades = _trades()
    quotes = trades.select("symbol", "ts", bid=pl.col("price") - 0.01, ask=pl.col("price") + 0.01)
    src, dst = tmp_path / "quotes.parquet", tmp_path / "qbars.parquet"
    quotes.write_parquet(src)
    args = ["bars", "-i", str(src), "-o", str(dst), "--quotes", "--every", "1m", "--chunk-rows", "999"]
    assert main(args) == 0
    assert pl.read_parquet(dst).equals(aggregate_quotes(quotes, every="1m"))


@pytest.mark.parametrize(
    ("setup", "args", "message"),
    [
        (None, ["--every", "1m"], "input file not found"),
        ("junk", ["--every", "1m"], "cannot read"),
        ("trades", ["--every", "1y"], "invalid interval"),
        ("trades", ["--quotes", "--every", "1m"], "missing column"),
        ("naive", ["--every", "1m"], "no time zone"),
        ("trades", ["--ticks", "0"], "positive"),
    ],
)
def test_cli_errors_are_one_line(
    tmp_path: Path, capsys, setup: str | None, args: list[str], message: str
) -> None:
    src = tmp_path / "in.parquet"
    if setup == "junk":
        src.write_text("not parquet")
    elif setup == "trades":
        _trades(100).write_parquet(src)
    elif setup == "naive":
        _trades(100).with_columns(pl.col("ts").dt.replace_time_zone(None)).write_parquet(src)
    assert main(["bars", "-i", str(src), "-o", str(tmp_path / "out.parquet"), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err
    assert not (tmp_path / "out.parquet").exists()
