"""The node as users run it (`hybridtrader live` processes) against a venue in another process.

Crash: the node is SIGKILLed at 20+ random points of a replayed session (after it made progress each time)
and restarted; it ends with exactly the orders and fills of an uninterrupted run on an identical venue:
same client order ids, sides, quantities, prices and times, no order twice, no position left over.
SIGTERM: the node cancels, flattens, flushes its journal and exits 0 within 10 s.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml
from hybridtrader.credentials import LOCAL_KEY, LOCAL_SECRET

HEADERS = {"APCA-API-KEY-ID": LOCAL_KEY, "APCA-API-SECRET-KEY": LOCAL_SECRET}
CLI = "import sys; from hybridtrader.cli import main; sys.exit(main())"
ENV = dict(os.environ)  # the node runs the installed package, as a user's does


def _config(tmp: Path) -> Path:
    path = tmp / "config.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "data_dir": str(tmp / "data"),
                "venue": {
                    "speed": "max",
                    "history_until_clock": True,
                    "rate_limit_per_minute": 1_000_000,
                    "market": {"symbols": 4, "sessions": 1, "seed": 11, "start": "2024-03-04"},
                },
                "live": {"symbols": 4, "sessions": 1},
                "ml_training": {"model_registry": {"enabled": False}},
            }
        )
    )
    return path


@pytest.fixture
def venue_factory(tmp_path: Path) -> Iterator:
    procs: list[subprocess.Popen[str]] = []

    def start() -> str:
        p = subprocess.Popen(
            [sys.executable, "-c", CLI, "venue", "--config", str(_config(tmp_path))],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=ENV,
        )
        procs.append(p)
        assert p.stdout is not None
        for line in p.stdout:
            name, _, url = line.strip().partition(" ")
            if name == "alpaca_trading":
                return url.strip()
        raise AssertionError("venue did not start")

    yield start
    for p in procs:
        p.terminate()
        p.wait(timeout=10)


def _node(tmp: Path, venue: str, journal: Path, speed: float = 1e12) -> subprocess.Popen[str]:
    """`hybridtrader live` on `venue` at `speed` market seconds a wall second (default: as fast as it can)."""
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            CLI,
            "live",
            "--config",
            str(_config(tmp)),
            "--venue",
            venue,
            "--journal",
            str(journal),
            "--speed",
            str(speed),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )


def _cursor(journal: Path) -> int:
    if not journal.exists():
        return 0
    try:
        db = sqlite3.connect(f"file:{journal}?mode=ro", uri=True, timeout=1)
        row = db.execute("SELECT value FROM state WHERE key='cursor'").fetchone()
        db.close()
    except sqlite3.OperationalError:
        return 0
    return int(row[0]) if row else 0


def _tape(venue: str) -> tuple[list[tuple], list[tuple], list]:
    orders = requests.get(
        f"{venue}/v2/orders",
        params={"status": "all", "limit": 500, "direction": "asc"},
        headers=HEADERS,
        timeout=10,
    ).json()
    fills = requests.get(
        f"{venue}/v2/account/activities/FILL",
        params={"direction": "asc", "page_size": 100},
        headers=HEADERS,
        timeout=10,
    ).json()
    assert len(orders) < 500 and len(fills) < 100
    by_id = {o["id"]: o["client_order_id"] for o in orders}
    positions = requests.get(f"{venue}/v2/positions", headers=HEADERS, timeout=10).json()
    return (
        [
            (o["client_order_id"], o["symbol"], o["side"], o["qty"], o["status"], o["submitted_at"])
            for o in orders
        ],
        [
            (by_id[f["order_id"]], f["symbol"], f["side"], f["qty"], f["price"], f["transaction_time"])
            for f in fills
        ],
        positions,
    )


def test_killed_and_restarted_node_ends_like_an_uninterrupted_one(tmp_path: Path, venue_factory) -> None:
    ref_venue, crash_venue = venue_factory(), venue_factory()
    ref = _node(tmp_path, ref_venue, tmp_path / "ref.sqlite")  # uninterrupted, meanwhile

    journal = tmp_path / "crash.sqlite"
    rng = random.Random(7)
    kills = 0
    while kills < 20:
        before = _cursor(journal)
        node = _node(tmp_path, crash_venue, journal)
        deadline = time.monotonic() + 60
        while _cursor(journal) <= before and node.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.1))  # somewhere inside a bar time, or between two (a few at most)
        if node.poll() is not None:
            break  # it finished the session before we killed it
        node.send_signal(signal.SIGKILL)
        node.wait(timeout=10)
        kills += 1
    node = _node(tmp_path, crash_venue, journal)
    _, err = node.communicate(timeout=300)
    assert node.returncode == 0, err[-2000:]
    assert kills >= 20
    _, err = ref.communicate(timeout=300)
    assert ref.returncode == 0, err[-2000:]

    ref_orders, ref_fills, ref_positions = _tape(ref_venue)
    orders, fills, positions = _tape(crash_venue)
    assert len(ref_orders) > 10 and len(ref_fills) > 10  # the session traded
    ids = [o[0] for o in orders]
    assert len(ids) == len(set(ids))  # no client order id twice (the venue would refuse it anyway)
    intents = [(o[1], o[2], o[5]) for o in orders]
    assert len(intents) == len(set(intents))  # no intent (symbol, side, decision time) sent twice
    assert orders == ref_orders
    assert fills == ref_fills
    assert positions == ref_positions == []  # the intraday book ends flat: no orphan position


def test_sigterm_cancels_flattens_and_exits_within_10_s(tmp_path: Path, venue_factory) -> None:
    venue = venue_factory()
    journal = tmp_path / "j.sqlite"
    # paced (a session takes at least 60 s) so that it is still trading when the signal comes, however
    # loaded the machine; the signal comes whatever the node is doing then (its last fills polled or not)
    node = _node(tmp_path, venue, journal, speed=390.0)
    deadline = time.monotonic() + 120
    # wait until it holds something (an entry filled), so the flatten has work to do
    while time.monotonic() < deadline and node.poll() is None:
        if _cursor(journal) and requests.get(f"{venue}/v2/positions", headers=HEADERS, timeout=5).json():
            break
        time.sleep(0.02)
    assert node.poll() is None, "the node ended before holding a position"
    t0 = time.monotonic()
    node.send_signal(signal.SIGTERM)
    _, err = node.communicate(timeout=10)
    assert node.returncode == 0, err[-2000:]
    assert time.monotonic() - t0 < 10
    open_orders = requests.get(f"{venue}/v2/orders", params={"status": "open"}, headers=HEADERS, timeout=5)
    assert open_orders.json() == []
    assert requests.get(f"{venue}/v2/positions", headers=HEADERS, timeout=5).json() == []
    db = sqlite3.connect(journal)
    (shutdowns,) = db.execute("SELECT value FROM state WHERE key='shutdowns'").fetchone()
    assert shutdowns  # where it flattened, for a restart's replay
