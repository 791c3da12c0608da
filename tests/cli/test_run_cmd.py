"""`hybridtrader run` end to end in a subprocess: venue, fetch, train, trade (the live node), summary.

The printed numbers are checked against what the run left on disk: the bar store (read back with
`BarStore`), the MLflow store (read back with MLflow's own client), the order and fill files, the node's
journal (read back with `Journal`) and daily report, and `summary.json`.
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
from hybridtrader.live.journal import Journal

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
    assert summary.pop("format_version") == 2
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
        assert orders.height == 0 and s["trading"]["positions_after_close"] == {}
        assert not any((run_dir / "live").iterdir()) and "journal" not in s["files"]  # no node started
    assert set(s["files"]) >= {"orders", "fills", "slippage_state", "training_report", "summary"}
    assert all(Path(f).exists() for f in s["files"].values())


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
    fills = pl.read_parquet(out_dir / "fills.parquet")
    tr = s["trading"]
    assert orders.height == tr["orders"] > 0
    assert sum(tr["orders_by_leg"].values()) == orders.height and tr["orders_by_leg"]["entry"] > 0
    assert set(orders["strategy"]) <= set(tr["models"])  # only promoted strategies trade
    # every order sent is in the journal (written before it was sent); its fills add up to its filled qty
    journal = Journal(out_dir / "live" / "journal.sqlite")
    try:
        intents = journal.intents()
    finally:
        journal.close()
    assert list(intents) == orders["client_order_id"].to_list()
    assert all(i.sent_ns is not None for i in intents.values())
    per_order = fills.group_by("client_order_id").agg(pl.col("qty").sum().alias("fill_qty"))
    both = orders.join(per_order, on="client_order_id", how="left")
    fill_qty = both["fill_qty"].fill_null(0.0)
    assert both["filled_qty"].to_list() == pytest.approx(fill_qty.to_list())
    filled = orders.filter(pl.col("filled_qty") > 0)
    assert filled.height == tr["filled_orders"] > 0 and fills.height == tr["fills"]
    assert set(orders["status"].unique()) <= {"filled", "partially_filled", "canceled", "expired"}
    sign = pl.when(pl.col("side") == "buy").then(1.0).otherwise(-1.0)
    realized = filled.select(sign * (pl.col("avg_price") / pl.col("decision_price") - 1) * 1e4)
    assert realized.to_series().to_list() == pytest.approx(filled["realized_bps"].to_list(), rel=1e-9)
    assert tr["realized_bps_mean"] == pytest.approx(filled["realized_bps"].mean(), rel=1e-9)
    # the intraday book is flat after the close (the end-of-day flatten); only a swing book may hold
    signed = (sign * pl.col("filled_qty")).sum()
    intraday = orders.filter(pl.col("book") == "intraday").group_by("symbol").agg(signed.alias("net"))
    assert intraday["net"].to_list() == [0.0] * intraday.height
    swing = orders.filter(pl.col("book") == "swing").group_by("symbol").agg(signed.alias("net"))
    assert tr["positions_after_close"] == {k: v for k, v in swing.iter_rows() if v}
    assert tr["pnl"] == pytest.approx(tr["end_equity"] - tr["start_equity"])
    # the node's daily report beside its journal says the same
    report = orjson.loads((out_dir / "live" / "reports" / f"{tr['session']}.json").read_bytes())
    assert (report["orders"], report["fills"]) == (orders.height, fills.height)
    assert printed(out, "orders").startswith(f"{tr['orders']} sent, {tr['filled_orders']} filled")
    assert "fills per trade leg" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sessions", "1"], "sessions must be >= 2"),
        (["--symbols", "0"], "symbols must be >= 1"),
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


def test_a_strategy_run_could_not_trade_is_refused_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every strategy `run` trains must be one the engine can trade: said in one line before the market is
    generated (not after the training), and nothing is left behind."""
    from hybridtrader.cli import main

    cfg = tmp_path / "c.yaml"
    alpha = "strategies: {my_alpha: {ml_model: {label: mean_reversion}}}"
    cfg.write_text(f"data_dir: {tmp_path}\n{alpha}\n")
    out = tmp_path / "run"
    assert main(["run", "--config", str(cfg), "--out", str(out), "--symbols", "1", "--sessions", "2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: strategies.my_alpha: ") and err.count("\n") == 1
    assert not out.exists()
