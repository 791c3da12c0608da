"""Every user mistake of issue 10 ends as ONE line on stderr, `error: ...` naming the file, key or value,
with a non-zero exit and no traceback: run through the real command (`main([...])`) on real files."""

from __future__ import annotations

import sys
from pathlib import Path

import polars as pl
import pytest
from hybridtrader.cli import main
from hybridtrader.market.synth import generate_market


def one_line_error(capsys: pytest.CaptureFixture[str], argv: list[str], *expected: str) -> str:
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert "Traceback" not in err and "\n" not in err, err
    assert err.startswith("error: "), err
    for text in expected:
        assert text in err, err
    return err


@pytest.fixture(scope="module")
def bars_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bars") / "bars.parquet"
    generate_market(symbols=2, sessions=2, ticks=False).bars_1m.write_parquet(path)
    return path


# ------------------------------------------------------------------------------------ train --data
def test_train_data_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str], bars_file: Path) -> None:
    csv = tmp_path / "bars.csv"
    pl.read_parquet(bars_file).write_csv(csv)
    one_line_error(capsys, ["train", "--data", str(csv)], str(csv), "not a readable parquet file")


def test_train_data_empty_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty.parquet"
    empty.write_bytes(b"")
    one_line_error(capsys, ["train", "--data", str(empty)], str(empty), "not a readable parquet file")


def test_train_data_without_bar_columns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "trades.parquet"
    pl.DataFrame({"symbol": ["A"], "price": [1.0]}).write_parquet(path)
    one_line_error(capsys, ["train", "--data", str(path)], str(path), "missing bar columns", "'open'")


# ------------------------------------------------------------------------------------ config files
XGBOOST = "strategies:\n  intraday_mean_reversion:\n    ml_model:\n      model_type: xgboost\n"


@pytest.mark.parametrize("command", [["config", "check"], ["train", "--sessions", "3", "--config"]])
def test_xgboost_without_the_extra_is_rejected(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    cfg = tmp_path / "xgb.yaml"
    cfg.write_text(XGBOOST)
    monkeypatch.setitem(sys.modules, "xgboost", None)  # the package is not importable, as without the extra
    one_line_error(
        capsys, [*command, str(cfg)],
        "strategies.intraday_mean_reversion.ml_model.model_type", "hybridtrader[xgboost]",
    )


def test_config_check_rejects_what_train_would(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("strategies:\n  mine:\n    ml_model:\n      features: [rsi, nonsense]\n")
    err = one_line_error(capsys, ["config", "check", str(cfg)], "strategies.mine.ml_model.features")
    assert "nonsense" in err and "strategies.mine.ml_model.label" in err


def test_yaml_syntax_error_names_file_and_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("venue:\n  port: 8080\n  speed: [1\n")
    err = one_line_error(capsys, ["config", "check", str(cfg)], str(cfg), "line 4")
    assert "<unicode string>" not in err


def test_non_utf8_config_names_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "latin1.yaml"
    cfg.write_bytes("venue:\n  host: 127.0.0.1  # caf\u00e9\n".encode("latin-1"))
    one_line_error(capsys, ["config", "check", str(cfg)], str(cfg), "not UTF-8")


def test_self_referencing_alias(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "loop.yaml"
    cfg.write_text("monitoring: &m\n  alerts: *m\n")
    err = one_line_error(capsys, ["config", "check", str(cfg)], str(cfg), "refers to itself")
    assert "recursion" not in err


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["venue", "--port", "99999"], "venue.port"),
        (["venue", "--speed", "fast"], "venue.speed"),
        (["venue", "--symbols", "0"], "venue.market.symbols"),
    ],
)
def test_venue_options_are_validated_like_the_file(
    capsys: pytest.CaptureFixture[str], argv: list[str], expected: str
) -> None:
    err = one_line_error(capsys, argv, expected)
    assert "pydantic" not in err and "errors.pydantic.dev" not in err


# ------------------------------------------------------------------------------------ state files
def test_malformed_cache_entry(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cache = tmp_path / "cache" / "earnings.json"
    cache.parent.mkdir()
    cache.write_text('{"format_version": 1, "name": "earnings", "entries": {"AAPL": {"value": []}}}')
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"data_dir: {tmp_path}\n")
    assert main(["health", "--config", str(cfg)]) == 1  # health reports it, it does not crash
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if "cache:earnings" in x)
    assert line.startswith("FAIL") and str(cache) in line and "'AAPL' is malformed" in line


def test_torn_parquet_in_the_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "store"
    args = ["data", "fetch", "--symbols", "SAAA", "--start", "2024-01-02", "--end", "2024-01-02",
            "--store", str(store), "--no-progress"]
    assert main(args) == 0
    capsys.readouterr()
    (torn,) = store.glob("timeframe=1Min/symbol=SAAA/*.parquet")
    torn.write_bytes(torn.read_bytes()[:200])
    one_line_error(capsys, args, str(torn), "unreadable")
    assert len(torn.read_bytes()) == 200  # left alone for the user to look at


# ------------------------------------------------------------------------------------ the parser
def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out.startswith("hybridtrader 0.")


@pytest.mark.parametrize(
    ("argv", "usage"),
    [
        (["bars", "-i", "a", "-o", "b", "--every", "1m", "--bogus"], "usage: hybridtrader bars"),
        (["data", "fetch", "--symbols", "A", "--start", "2024-01-02", "--end", "2024-01-02", "--bogus"],
         "usage: hybridtrader data fetch"),
        (["config", "check", "--bogus"], "usage: hybridtrader config check"),
    ],
)
def test_bad_flag_shows_the_subcommand_usage(
    capsys: pytest.CaptureFixture[str], argv: list[str], usage: str
) -> None:
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(usage) and "unrecognized arguments: --bogus" in err


@pytest.mark.parametrize("argv", [["data", "fetch"], ["train"], ["venue"], ["health"]])
def test_commands_describe_themselves(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        main([*argv, "--help"])
    text = capsys.readouterr().out
    description = text.split("\n\n")[1]  # argparse: usage, blank line, description
    assert not description.lstrip().startswith(("options:", "positional")) and len(description) > 60


def test_data_fetch_checks_dates_before_starting_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["data", "fetch", "--symbols", "SAAA", "--store", str(tmp_path / "s")]
    one_line_error(capsys, [*args, "--start", "2024-01-05", "--end", "2024-01-02"], "--end 2024-01-02")
    err = one_line_error(capsys, [*args, "--start", "2024-13-01", "--end", "2024-12-02"], "'2024-13-01'")
    assert "venue" not in err
    assert not (tmp_path / "s").exists()
