"""Caches and `health` say what is true: a future stamp is not fresh, a malformed entry is a clear error,
`health` refuses a store that is not one, looks where `run` writes, and does not pass on nothing."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from hybridtrader.cli import main
from hybridtrader.data.atomic import StateFileError, write_state
from hybridtrader.data.ttl_cache import FORMAT_VERSION, TTLCache
from hybridtrader.errors import StateError


def cache(path: Path, now: list[float], calls: list[list[str]]) -> TTLCache:
    def load(keys: list[str]) -> dict[str, int]:
        calls.append(keys)
        return {k: len(calls) for k in keys}

    return TTLCache("demo", path, 60.0, load, clock=lambda: now[0])


def test_an_entry_stamped_in_the_future_is_refreshed(tmp_path: Path) -> None:
    path = tmp_path / "demo.json"
    write_state(path, FORMAT_VERSION, {"name": "demo", "ttl_s": 60.0,
                                       "entries": {"A": {"fetched_at": 10_000.0, "value": 0}}})
    now, calls = [1_000.0], []
    c = cache(path, now, calls)
    assert not c.fresh("A")  # age -9000 s: no meaningful age, never served as fresh
    assert c.get("A") == 1 and calls == [["A"]]
    now[0] += 30
    assert c.get("A") == 1 and calls == [["A"]]  # the refreshed entry is fresh for its ttl


@pytest.mark.parametrize(
    "entry", [{"value": 1}, {"fetched_at": "yesterday", "value": 1}, {"fetched_at": 5.0}, [1, 2], None]
)
def test_a_malformed_entry_is_a_state_error_naming_file_and_key(tmp_path: Path, entry: object) -> None:
    path = tmp_path / "demo.json"
    state = {"format_version": FORMAT_VERSION, "name": "demo", "entries": {"K": entry}}
    path.write_bytes(orjson.dumps(state))
    with pytest.raises(StateFileError, match=r"demo\.json: entry 'K' is malformed") as e:
        cache(path, [0.0], [])
    assert isinstance(e.value, StateError)


def _config(tmp_path: Path) -> Path:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"data_dir: {tmp_path / 'data'}\n")
    return cfg


def test_health_refuses_a_store_that_is_not_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a_file = tmp_path / "passwd"
    a_file.write_text("root:x:0:0::/root:/bin/bash\n")
    assert main(["health", "--config", str(_config(tmp_path)), "--store", str(a_file)]) == 1
    assert "FAIL store" in capsys.readouterr().out
    other = tmp_path / "etc"
    (other / "ssh").mkdir(parents=True)
    assert main(["health", "--config", str(_config(tmp_path)), "--store", str(other)]) == 1
    assert "not a bar store" in capsys.readouterr().out


def test_health_with_everything_skipped_is_not_a_pass(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["health", "--config", str(_config(tmp_path))]) == 3
    assert "every check was skipped" in capsys.readouterr().out


def test_health_looks_where_run_writes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = _config(tmp_path)
    run_dir = tmp_path / "data" / "run"  # `hybridtrader run`'s default output, <data_dir>/run
    args = ["data", "fetch", "--symbols", "SAAA", "--start", "2024-01-02", "--end", "2024-01-02",
            "--store", str(run_dir / "bars"), "--no-progress", "--config", str(cfg)]
    assert main(args) == 0
    capsys.readouterr()
    assert main(["health", "--config", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert f"OK   store                {run_dir / 'bars'}: 1 files sound" in out
