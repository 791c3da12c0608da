"""Credentials never reach a log line, an error or a repr, and go only to the endpoints configured beside
them. A sentinel secret is configured and the real commands and clients run against the real local venue
over loopback with DEBUG logging on; the sentinel must appear nowhere."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from hybridtrader import logs
from hybridtrader.cli import main
from hybridtrader.config import Config, config_from_dict
from hybridtrader.credentials import LOCAL_KEY, MASK, redact, remember
from hybridtrader.data.earnings_cache import EarningsBlackout
from hybridtrader.data.ttl_cache import CacheRefreshError
from hybridtrader.market.synth import generate_market
from hybridtrader.metrics import METRICS
from hybridtrader.stream.providers import AlpacaProtocol
from hybridtrader.venue import Venue

SENTINEL = "SENTINEL-7f3a9c1e-not-a-real-key"
PYTHON = Path(sys.executable)


@pytest.fixture(scope="module")
def venue() -> Iterator[Venue]:
    with Venue(config_from_dict({"venue": {"speed": "max"}}),
               market=generate_market(symbols=2, sessions=2, trades_per_minute=5.0)) as v:
        yield v


def keyed(tmp_path: Path, **urls: str) -> Path:
    """A config file with the sentinel as every secret, and the given URLs (dotted keys)."""
    lines = [f"data_dir: {tmp_path / 'data'}",
             "alpaca:", f"  api_key: {SENTINEL}", f"  secret_key: {SENTINEL}-s"]
    lines += [f"  {k}: {v}" for k, v in urls.items() if k in ("data_url", "trading_url", "stream_url")]
    lines += ["finnhub:", f"  api_key: {SENTINEL}-f"]
    if "finnhub" in urls:
        lines.append(f"  url: {urls['finnhub']}")
    path = tmp_path / "keys.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def run_cli(*argv: str) -> subprocess.CompletedProcess[str]:
    code = "import sys; from hybridtrader.cli import main; sys.exit(main())"  # the installed package
    return subprocess.run([str(PYTHON), "-c", code, *argv], capture_output=True, text=True, timeout=120)


def test_redact_masks_remembered_secrets_and_named_credentials() -> None:
    remember(SENTINEL)
    assert SENTINEL not in redact(f"auth failed for {SENTINEL}")
    url = "https://finnhub.io/api/v1/calendar/earnings?from=2024-01-01&token=abc123def&to=2024-02-01"
    assert redact(url) == url.replace("abc123def", MASK)
    assert redact("APCA-API-KEY-ID: PKXYZ123 sent") == f"APCA-API-KEY-ID: {MASK} sent"
    assert redact('{"apiKey": "zzz999"}') == f'{{"apiKey": "{MASK}"}}'
    for plain in ("an ordinary line, key count 3", "config error at alpaca.secret_key: bad value"):
        assert redact(plain) == plain


def test_reprs_never_show_secrets(tmp_path: Path) -> None:
    cfg = config_from_dict({"alpaca": {"api_key": SENTINEL, "secret_key": SENTINEL}})
    proto = AlpacaProtocol("ws://127.0.0.1:1/v2/iex", SENTINEL, SENTINEL)
    for text in (repr(cfg), str(cfg), repr(cfg.alpaca), str(cfg.masked()), repr(proto)):
        assert SENTINEL not in text


def test_finnhub_error_never_carries_the_token(
    venue: Venue, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, urllib3's request lines included
    cfg = config_from_dict({"finnhub": {"api_key": SENTINEL, "url": venue.urls["finnhub"]}})
    earnings = EarningsBlackout(cfg, path=tmp_path / "earnings.json")
    with pytest.raises(CacheRefreshError) as e:
        earnings.prefetch(["SAAA"])  # the venue does not know the sentinel: 401
    assert "401" in str(e.value)
    assert SENTINEL not in str(e.value) and SENTINEL not in repr(e.value.__cause__)
    assert SENTINEL not in caplog.text


def test_log_lines_are_redacted_whatever_a_library_logs(
    venue: Venue, capfd: pytest.CaptureFixture[str]
) -> None:
    logs.configure(verbose=True)
    logging.getLogger("urllib3").setLevel(logging.DEBUG)  # a user turning a library up by hand
    try:
        remember(SENTINEL)
        requests.get(f"{venue.urls['finnhub']}/calendar/earnings", params={"token": SENTINEL}, timeout=10)
        logging.getLogger("hybridtrader.test").error("refused %s", SENTINEL)
    finally:
        logs.configure(verbose=False)
    err = capfd.readouterr().err
    assert "token=" + MASK in err and f"refused {MASK}" in err
    assert SENTINEL not in err


def test_configured_keys_go_only_to_configured_urls(
    venue: Venue, tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    store = tmp_path / "store"
    fetch = ["data", "fetch", "--symbols", "SAAA", "--start", "2024-01-02", "--end", "2024-01-02",
             "--store", str(store), "--no-progress"]
    # No URL configured: the local venue is used with its own keys, the real ones are not sent there.
    assert main(["-v", *fetch, "--config", str(keyed(tmp_path))]) == 0
    out, err = capsys.readouterr()
    assert "local venue" in out and "fetched 390 bars" in out
    assert "keys are configured but" in caplog.text and "not sent there" in caplog.text
    # A configured URL gets the configured keys; refused, the failure is one line and is not retried.
    before = METRICS.snapshot()
    assert main(["-v", *fetch, "--config", str(keyed(tmp_path, data_url=venue.url))]) == 2
    out2, err2 = capsys.readouterr()
    assert "refused the keys (HTTP 401)" in err2 and err2.count("\n") == 1
    calls = {k: v for k, v in METRICS.since(before).items() if k.startswith("api_calls")}
    assert calls == {"api_calls{endpoint=bars}": 1}
    for text in (out, err, out2, err2, caplog.text):
        assert SENTINEL not in text


def test_verbose_stream_never_logs_the_auth_frame(venue: Venue, tmp_path: Path) -> None:
    """The real command in its own process with -v, against a configured stream URL: websockets' DEBUG
    frame log would print the auth message with the key."""
    ws = venue.url.replace("http://", "ws://")
    cfg = keyed(tmp_path, stream_url=ws, data_url=venue.url)
    done = run_cli("-v", "stream", "--symbols", "SAAA", "--duration", "2", "--config", str(cfg))
    text = done.stdout + done.stderr
    assert done.returncode == 2, text
    assert "authentication failed" in done.stderr and "Traceback" not in text
    assert SENTINEL not in text


def test_local_stream_ignores_configured_keys_and_says_synthetic(tmp_path: Path) -> None:
    done = run_cli("-v", "stream", "--symbols", "AAPL", "--duration", "3", "--speed", "600",
                   "--config", str(keyed(tmp_path)))
    text = done.stdout + done.stderr
    assert done.returncode == 0, text
    assert "configured API keys are ignored" in done.stderr
    assert "SYNTHETIC" in done.stdout and "[synthetic]" in done.stdout  # each printed bar says so
    assert SENTINEL not in text and LOCAL_KEY not in text


def test_config_masks_every_secret(tmp_path: Path) -> None:
    cfg = Config.model_validate({"alpaca": {"api_key": SENTINEL}})
    assert SENTINEL not in str(cfg.masked())
