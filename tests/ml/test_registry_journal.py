"""The embedded MLflow store is a SQLite file in write-ahead-log mode: set when the registry opens it, kept in
the file, and the runs and versions logged through it read back with a plain MlflowClient on the same URI.
A name's first version creates its registered model (also after it was deleted).
A file that is not a database is a StateError naming it; a store given by URI is left as it is."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from hybridtrader.config import config_from_dict
from hybridtrader.errors import StateError
from hybridtrader.ml.registry import ModelRegistry, RunRecord, write_ahead_log
from mlflow import MlflowClient


def journal_mode(db: Path) -> str:
    con = sqlite3.connect(db)
    try:
        return con.execute("PRAGMA journal_mode").fetchone()[0]
    finally:
        con.close()


def test_embedded_store_is_wal_and_reads_back(tmp_path: Path) -> None:
    registry = ModelRegistry(config_from_dict({"data_dir": str(tmp_path)}))
    db = tmp_path / "mlflow" / "mlflow.db"
    record = RunRecord(
        strategy="intraday_mean_reversion",
        params={"label": "mean_reversion"},
        tags={"strategy": "intraday_mean_reversion", "candidate": "rule_only"},
        metrics={"sharpe": 1.25},
        fold_metrics=[{"auc": 0.5}, {"auc": 0.75}],
        artifacts={"rule.json": b"{}"},
        model=None,
        model_type="rule",
        feature_names=[],
    )
    reg = registry.log(record, promoted=True)
    assert journal_mode(db) == "wal"
    stock = MlflowClient(tracking_uri=registry.uri, registry_uri=registry.uri)
    run = stock.get_run(reg.run_id)
    assert run.data.metrics["sharpe"] == 1.25 and run.data.params == {"label": "mean_reversion"}
    assert [m.value for m in stock.get_metric_history(reg.run_id, "fold_auc")] == [0.5, 0.75]
    assert str(stock.get_model_version_by_alias("intraday_mean_reversion", "champion").version) == reg.version
    # a second registry on the same file (another process, a later day) finds it as it left it
    again = ModelRegistry(config_from_dict({"data_dir": str(tmp_path)}))
    assert journal_mode(db) == "wal"
    assert again.log(record, promoted=False).version == "2"
    # the registered model deleted meanwhile: the next version creates it afresh
    stock.delete_registered_model("intraday_mean_reversion")
    third = again.log(record, promoted=True)
    assert third.version == "1" and stock.get_registered_model("intraday_mean_reversion").description == (
        "hybridtrader strategy intraday_mean_reversion"
    )


def test_a_file_that_is_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    db = tmp_path / "mlflow.db"
    db.write_bytes(b"not a database, " * 100)
    with pytest.raises(StateError, match=r"mlflow\.db is not a readable SQLite database"):
        write_ahead_log(db)
    assert db.read_bytes() == b"not a database, " * 100  # left as it was


def test_a_store_given_by_uri_keeps_its_mode(tmp_path: Path) -> None:
    db = tmp_path / "elsewhere.db"
    sqlite3.connect(db).close()
    cfg = {"data_dir": str(tmp_path), "ml_training": {"model_registry": {"tracking_uri": f"sqlite:///{db}"}}}
    ModelRegistry(config_from_dict(cfg))
    assert journal_mode(db) == "delete"
