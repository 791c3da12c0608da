"""`hybridtrader portfolio`: from persisted state, and on embedded defaults with the synthetic market."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import numpy as np
import orjson
import pytest
import yaml
from hybridtrader.cli import main
from hybridtrader.config import load_config
from hybridtrader.portfolio.capital_allocator import CapitalAllocator
from hybridtrader.portfolio.universe_rotation import UniverseRotationTracker

MR, SW = "intraday_mean_reversion", "swing_trend_following"


def _config_file(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"data_dir": str(tmp_path / "data")}))
    return path


def test_shows_persisted_allocation_and_what_a_rebalance_changes(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg_path = _config_file(tmp_path)
    cfg = load_config(cfg_path)
    allocator = CapitalAllocator(cfg)
    allocator.allocate_capital(200_000.0, now=date(2024, 3, 1))  # no history: equal shares
    rng = np.random.default_rng(0)
    days = [date(2024, 1, 1) + timedelta(days=i) for i in range(40)]
    for name, vol in ((MR, 0.005), (SW, 0.02)):
        returns = dict(zip(days, rng.normal(0, vol, 40).tolist(), strict=True))
        allocator.update_strategy_performance(name, returns)
    UniverseRotationTracker(cfg).update_universe(["AAA", "BBB"], now=date(2024, 3, 1))

    assert main(["portfolio", "--config", str(cfg_path), "--json"]) == 0
    rep = orjson.loads(capsys.readouterr().out)
    a = rep["allocation"]
    assert a["equity"] == 200_000.0 and a["current"] == {MR: 100_000.0, SW: 100_000.0}
    assert a["target"] == pytest.approx(allocator.plan(200_000.0).capital)
    assert a["target"][MR] > a["target"][SW]  # the quieter strategy is due more
    assert "drift" in a["rebalance"] and a["last_rebalance"] == "2024-03-01"
    assert set(rep["universe"]["members"]) == {"AAA", "BBB"}
    assert rep["universe"]["members"]["AAA"]["stability"] == 1.0
    assert CapitalAllocator(cfg).weights == {MR: 0.5, SW: 0.5}  # the command wrote nothing

    assert main(["portfolio", "--config", str(cfg_path)]) == 0
    text = capsys.readouterr().out
    assert "allocation (risk_parity, equity 200,000.00; last rebalance 2024-03-01)" in text
    assert "AAA      since 2024-03-01  stability 1.00" in text


def test_runs_on_embedded_defaults_with_the_synthetic_market(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HYBRIDTRADER_CONFIG", raising=False)
    assert main(["portfolio", "--synthetic", "--symbols", "4", "--sessions", "30", "--json"]) == 0
    rep = orjson.loads(capsys.readouterr().out)
    a = rep["allocation"]
    assert a["probation"] == {} and a["history_days"] == {MR: 24, SW: 24}  # 30 sessions less 6 warm-up
    assert sum(a["target"].values()) == pytest.approx(100_000.0)
    sel = rep["universe"]["selection"]
    assert sel["candidates"] == 4 and sel["would_add"] == sel["selected"]
    assert list(tmp_path.iterdir()) == []  # no state written
