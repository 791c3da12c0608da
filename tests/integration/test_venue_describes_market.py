"""The local venue says what it serves: synthetic or recorded prices, the symbols and the sessions, on
`GET /venue/info` and in the `hybridtrader venue` startup lines."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import requests
from hybridtrader.venue import ReplayMarket, Venue


def test_venue_info_describes_the_market(venue: Venue, market: ReplayMarket) -> None:
    info = requests.get(f"{venue.url}/venue/info", timeout=10).json()["market"]
    assert info["symbols"] == ["S00", "S01", "S02"]
    assert (info["sessions"], info["first_session"], info["last_session"]) == (2, "2024-01-02", "2024-01-03")
    assert info["synthetic"] is False and info["source"] == "frames given by the caller"


def test_venue_command_prints_synthetic_symbols_and_sessions(tmp_path: Path) -> None:
    code = "import sys; from hybridtrader.cli import main; sys.exit(main())"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "venue", "--symbols", "3", "--sessions", "2", "--seed", "4"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip())
            if line.startswith("serving"):
                break
        url = next(x.split()[1] for x in lines if x.startswith("alpaca_data"))
        info = requests.get(f"{url}/venue/info", timeout=10).json()["market"]
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    shown = {x.split()[0]: x.split(None, 1)[1] for x in lines if x.split()}
    assert shown["market"].startswith("SYNTHETIC prices") and "seed 4" in shown["market"]
    assert shown["symbols"] == "SAAA, SAAB, SAAC" == ", ".join(info["symbols"])
    assert shown["sessions"] == "2: 2024-01-02 .. 2024-01-03"
    assert info["synthetic"] is True
