"""UniverseRotationTracker: the seed snippet, events with time and reason, minimum retention, stability
score, the rotation schedule and the versioned history file."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import pytest
from hybridtrader.config import config_from_dict
from hybridtrader.errors import DataError, StateError
from hybridtrader.portfolio.universe_rotation import UniverseRotationTracker


def _cfg(tmp_path: Path, **universe: object) -> dict:
    return {"data_dir": str(tmp_path), "portfolio": {"universe": universe}}


def test_seed_snippet_runs_as_written(tmp_path: Path) -> None:
    config = config_from_dict(_cfg(tmp_path))
    new_universe = ["AAPL", "MSFT", "NVDA"]
    metrics = {"AAPL": {"dollar_volume": 1.2e10}, "MSFT": {"dollar_volume": 9.1e9, "reason": "top ADV"}}
    rotation_tracker = UniverseRotationTracker(config)
    result = rotation_tracker.update_universe(new_universe, metrics)
    assert result.added == ["AAPL", "MSFT", "NVDA"] and result.removed == []
    events = {e["symbol"]: e for e in rotation_tracker.history()}
    assert events["MSFT"]["reason"] == "top ADV" and events["AAPL"]["reason"] == "selected"
    assert events["AAPL"]["metrics"] == {"dollar_volume": 1.2e10}
    assert datetime.fromisoformat(events["NVDA"]["ts"]).tzinfo is not None
    assert (tmp_path / "portfolio" / "universe.json").exists()


def test_minimum_retention_keeps_new_members(tmp_path: Path) -> None:
    t = UniverseRotationTracker(_cfg(tmp_path, min_retention_sessions=5), persist=False)
    t.update_universe(["AAA", "BBB"], now=date(2024, 1, 8))  # a Monday
    r = t.update_universe(["AAA"], {"BBB": {"reason": "liquidity: thin"}}, now=date(2024, 1, 12))
    assert r.removed == [] and r.retained == {"BBB": "held 4 of min_retention_sessions 5"}
    assert t.universe == ["AAA", "BBB"]
    r = t.update_universe(["AAA"], {"BBB": {"reason": "liquidity: thin"}}, now=date(2024, 1, 16))  # 5 held
    assert r.removed == ["BBB"] and t.universe == ["AAA"]
    (removal,) = [e for e in t.history("bbb") if e["action"] == "remove"]
    assert removal["reason"] == "liquidity: thin" and removal["ts"].startswith("2024-01-16")


def test_stability_score(tmp_path: Path) -> None:
    t = UniverseRotationTracker(_cfg(tmp_path, min_retention_sessions=0, stability_window=4), persist=False)
    assert t.get_symbol_stability_score("AAA") == 0.0
    for day, members in ((2, ["AAA", "BBB"]), (3, ["AAA"]), (4, ["AAA", "BBB"]), (5, ["AAA"])):
        t.update_universe(members, now=date(2024, 1, day))
    assert t.get_symbol_stability_score("AAA") == 1.0
    assert t.get_symbol_stability_score("BBB") == pytest.approx(2 / 4 * (1 - 3 / 4))  # in half, 3 flips
    assert t.get_symbol_stability_score("ZZZ") == 0.0
    t.update_universe(["AAA", "CCC"], now=date(2024, 1, 8))  # window of 4: the first update drops out
    assert t.get_symbol_stability_score("CCC") == pytest.approx(1 / 4 * (1 - 1 / 4))


def test_should_rotate_on_schedule(tmp_path: Path) -> None:
    t = UniverseRotationTracker(_cfg(tmp_path, rotation_schedule="monthly"), persist=False)
    assert t.should_rotate(date(2024, 1, 3)).reason == "no rotation recorded yet"
    t.update_universe(["AAA"], now=date(2024, 1, 3))
    assert not t.should_rotate(date(2024, 1, 31))
    d = t.should_rotate(datetime(2024, 2, 1, 15, 0))  # UTC 15:00 = 10:00 New York
    assert d and "monthly rotation due: last on 2024-01-03" in d.reason


def test_history_round_trip_and_bad_files(tmp_path: Path) -> None:
    t = UniverseRotationTracker(_cfg(tmp_path))
    t.update_universe(["AAA", "BBB"], now=date(2024, 1, 2))
    again = UniverseRotationTracker(_cfg(tmp_path))
    assert again.universe == ["AAA", "BBB"] and again.history() == t.history()
    assert again.last_rotation == date(2024, 1, 2) and again.snapshots == t.snapshots
    path = tmp_path / "portfolio" / "universe.json"
    path.write_text('{"format_version": 2}')
    with pytest.raises(StateError, match="format_version 2, expected 1"):
        UniverseRotationTracker(_cfg(tmp_path))
    path.write_text("\x00garbage")
    with pytest.raises(StateError, match="corrupt"):
        UniverseRotationTracker(_cfg(tmp_path))


def test_bad_input(tmp_path: Path) -> None:
    t = UniverseRotationTracker(_cfg(tmp_path), persist=False)
    with pytest.raises(DataError, match="new_universe"):
        t.update_universe(["AAA", ""])
    with pytest.raises(DataError, match=r"metrics\['AAA'\]: values must be JSON-able"):
        t.update_universe(["AAA"], {"AAA": {"x": object()}})
    assert t.universe == [] and t.history() == []
