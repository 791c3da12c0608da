"""The slippage model's loader reads only the format versions ever written (1): 0 and future versions are
a StateError naming the file, like the caches' state files."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from hybridtrader.cli import main
from hybridtrader.errors import StateError
from hybridtrader.execution.slippage_model import SlippageModel


@pytest.mark.parametrize("version", [0, 99])
def test_unknown_format_versions_are_refused(tmp_path: Path, version: int) -> None:
    path = tmp_path / "slippage.json"
    SlippageModel(None).save(path)
    state = orjson.loads(path.read_bytes())
    assert state["format_version"] == 1
    path.write_bytes(orjson.dumps({**state, "format_version": version}))
    with pytest.raises(StateError, match=rf"{path.name}.*format_version {version}"):
        SlippageModel(None).load(path)


def test_a_config_pointing_at_a_bad_state_file_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "slippage.json"
    SlippageModel(None).save(path)
    path.write_bytes(orjson.dumps({**orjson.loads(path.read_bytes()), "format_version": 0}))
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"data_dir: {tmp_path}\nexecution:\n  slippage:\n    state_path: {path}\n")
    args = ["run", "--config", str(cfg), "--out", str(tmp_path / "run"), "--symbols", "1", "--sessions", "2"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "format_version 0" in err and str(path) in err
