"""`hybridtrader run` end to end in a subprocess: venue, fetch, train, trade, summary.

The printed numbers are checked against what the run left on disk: the bar store (read back with
`BarStore`), the MLflow store (read back with MLflow's own client), the order file and `summary.json`.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import polars as pl
import pytest
from hybridtrader.data.bar_store import BarStore
from hybridtrader.data.quality import check_data_quality

# Small ML settings keep each run to seconds: one parameter set, fewer boosting rounds.
CONFIG = """
data_dir: {data_dir}
ml_training:
  model:
    num_boost_round: 80
    param_grid:
      - {{num_leaves: 15, min_data_in_leaf: 100}}
"""


def run_cli(tmp: Path, out_dir: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    cfg = tmp / "config.yaml"
    cfg.write_text(CONFIG.format(data_dir=tmp / "data"))
    env = {**os.environ, "COLUMNS": "200", "HYBRIDTRADER_CONFIG": str(cfg)}
    main = "import sys; from hybridtrader.cli import main; sys.exit(main())"
    proc = subprocess.run(
        [sys.executable, "-c", main, "run", *args], capture_output=True, text=True, env=env, timeout=300
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = orjson.loads((out_dir / "summary.json").read_bytes())
    assert summary.pop("format_version") == 1
    return proc, summary


def printed(stdout: str, label: str) -> str:
    m = re.search(rf"^\s*{re.escape(label)}\s+(.*)$", stdout, re.M)
    assert m, f"{label!r} not in the summary:\n{stdout}"
    return m.group(1).strip()


def test_run_without_signal_default_dir(tmp_path: Path) -> None:
    run_dir = tmp_path / "data" / "run"  # <data_dir>/run: the default
    proc, s = run_cli(tmp_path, run_dir, "--symbols", "4", "--sessions", "8", "--mean-reversion", "0")
    out = proc.stdout
    assert "summary" in out
    # the bar store: what was printed is what is stored
    bars = BarStore(run_dir / "bars").read(None, "1Min")
    assert bars["symbol"].n_unique() == 4
    assert s["data"]["bars_in_store"] == bars.height == s["data"]["bars_fetched"]
    assert printed(out, "bars fetched") == f"{bars.height:,} (store: {bars.height:,})"
    # 8 sessions of 390 minutes, less the minutes in which a symbol had no trade (reported as missing)
    q = check_data_quality(bars, timeframe="1Min")
    assert bars.height == 4 * 8 * 390 - sum(q.missing_bars.values())
    assert s["data"]["quality"]["missing_bars"] == q.missing_bars
    # the MLflow store holds both strategies' registered models
    assert (run_dir / "mlflow" / "mlflow.db").is_file()
    from mlflow import MlflowClient

    uri = f"sqlite:///{run_dir / 'mlflow' / 'mlflow.db'}"
    names = {m.name for m in MlflowClient(tracking_uri=uri, registry_uri=uri).search_registered_models()}
    strategies = {"intraday_mean_reversion", "swing_trend_following"}
    offered = {t["strategy"] + "-rule-only" for t in s["training"] if (t["rule_only"] or {}).get("offered")}
    assert names == strategies | offered  # a profitable rule the model adds nothing to is its own candidate
    assert {t["strategy"] for t in s["training"]} == strategies
    for t in s["training"]:
        assert {g["name"] for g in t["gates"]} == {
            "sharpe",
            "max_drawdown",
            "trades",
            "win_rate",
            "deflated_sharpe",
            "auc_lower_bound",
            "beats_rule",
        }
        assert t["promoted"] == all(g["passed"] for g in t["gates"])
    orders = pl.read_parquet(run_dir / "orders.parquet")
    assert s["trading"]["orders"] == orders.height
    if not any(t["promoted"] for t in s["training"]):
        assert "no model-driven orders" in out
        assert orders.height == 0 and s["trading"]["trades"] == 0
    assert s["trading"]["positions_after_close"] == 0


@pytest.mark.parametrize("planted", [0.7])
def test_run_with_planted_signal_trades(tmp_path: Path, planted: float) -> None:
    """A planted signal the model adds to its rule (regime_reversion: fading stretched moves pays in
    volatile minutes only); a plain planted reversal is the rule's edge, not the model's (issue 15)."""
    out_dir = tmp_path / "myrun"
    proc, s = run_cli(
        tmp_path,
        out_dir,
        "--symbols",
        "8",
        "--sessions",
        "16",
        "--mean-reversion",
        "0",
        "--regime-reversion",
        str(planted),
        "--max-trades",
        "8",
        "--out",
        str(out_dir),
    )
    out = proc.stdout
    mr = next(t for t in s["training"] if t["strategy"] == "intraday_mean_reversion")
    assert mr["promoted"], out  # the volatility regime is what this strategy's model adds
    # the champion alias in MLflow is the version the run traded with
    from mlflow import MlflowClient

    uri = f"sqlite:///{out_dir / 'mlflow' / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    assert (
        str(client.get_model_version_by_alias("intraday_mean_reversion", "champion").version) == mr["version"]
    )
    assert s["trading"]["models"]["intraday_mean_reversion"] == mr["model_id"]

    orders = pl.read_parquet(out_dir / "orders.parquet")
    tr = s["trading"]
    assert 0 < tr["trades"] <= 8
    assert orders.height == tr["orders"] > 0
    assert orders["trade"].n_unique() == tr["trades"]
    # every order was acknowledged by the venue and the numbers come from what it reported
    assert orders["client_order_id"].null_count() == 0
    filled = orders.filter(pl.col("filled_qty") > 0)
    assert filled.height == tr["filled_orders"] > 0
    assert set(orders["status"].unique()) <= {"filled", "partially_filled", "canceled", "expired"}
    sign = pl.when(pl.col("side") == "buy").then(1.0).otherwise(-1.0)
    realised = filled.select(sign * (pl.col("filled_avg_price") / pl.col("decision_price") - 1) * 1e4)
    assert realised.to_series().to_list() == pytest.approx(filled["realised_bps"].to_list(), rel=1e-9)
    assert tr["realised_bps_mean"] == pytest.approx(filled["realised_bps"].mean(), rel=1e-9)
    # every trade is closed by the end of the day; the account is flat
    assert tr["positions_after_close"] == 0
    for trade, legs in orders.group_by("trade"):
        signed = legs.select(
            (pl.when(pl.col("side") == "buy").then(1.0).otherwise(-1.0) * pl.col("filled_qty")).sum()
        ).item()
        assert signed == 0, f"trade {trade} is not flat: {legs}"
    assert tr["pnl"] == pytest.approx(tr["end_equity"] - tr["start_equity"])
    assert printed(out, "orders").startswith(f"{tr['orders']} sent, {tr['filled_orders']} filled")
    assert "fills per trade leg" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sessions", "1"], "sessions must be >= 2"),
        (["--symbols", "0"], "symbols must be >= 1"),
        (["--max-trades", "-1"], "max_trades must be >= 0"),
        (["--mean-reversion", "1.5"], "mean_reversion"),
    ],
)
def test_run_bad_settings_are_one_line_errors(
    tmp_path: Path, args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from hybridtrader.cli import main

    assert main(["run", "--out", str(tmp_path / "run"), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
