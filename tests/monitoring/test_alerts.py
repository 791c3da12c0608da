"""EnhancedAlertManager with real sinks: a webhook on a local http.server, a JSON-lines file, logging."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import ClassVar

import numpy as np
import orjson
import polars as pl
import pytest
from hybridtrader.config import config_from_dict
from hybridtrader.data.quality import check_data_quality
from hybridtrader.monitoring.alerts import EnhancedAlertManager, JsonLinesSink, LogSink, WebhookSink


class Receiver(BaseHTTPRequestHandler):
    received: ClassVar[list[dict]] = []
    status: ClassVar[int] = 200

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Receiver.received.append({"body": orjson.loads(body), "type": self.headers["Content-Type"]})
        self.send_response(Receiver.status)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[str]:
    Receiver.received = []
    Receiver.status = 200
    server = HTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/alerts"
    server.shutdown()
    server.server_close()


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def manager(tmp_path, webhook: str, clock: Clock, **alerts: object) -> EnhancedAlertManager:
    cfg = config_from_dict(
        {
            "monitoring": {
                "alerts": {
                    "cooldown_seconds": 60,
                    "jsonl_path": str(tmp_path / "alerts.jsonl"),
                    "webhook_url": webhook,
                    **alerts,
                }
            }
        }
    )
    return EnhancedAlertManager(cfg, clock=clock)


def drifted_frames() -> tuple[pl.DataFrame, pl.DataFrame]:
    rng = np.random.default_rng(0)
    ref = pl.DataFrame({"rsi": rng.normal(50, 10, 2000), "atr": rng.normal(1, 0.1, 2000)})
    cur = pl.DataFrame({"rsi": rng.normal(65, 10, 2000), "atr": rng.normal(1, 0.1, 2000)})
    return ref, cur


def test_drift_alert_reaches_every_sink_once_per_cooldown(tmp_path, webhook: str, caplog) -> None:
    clock = Clock()
    m = manager(tmp_path, webhook, clock)
    assert [type(s) for s in m.sinks] == [LogSink, JsonLinesSink, WebhookSink]
    ref, cur = drifted_frames()
    with caplog.at_level(logging.CRITICAL, logger="hybridtrader.alerts"):
        drift = m.check_model_drift(ref, cur, model="intraday_mean_reversion")
    assert {d.feature: d.drifted for d in drift} == {"rsi": True, "atr": False}
    assert m.drift_detected("intraday_mean_reversion") and not m.drift_detected("other")
    assert "1 of 2 features drifted" in caplog.text
    (hit,) = Receiver.received
    assert hit["type"] == "application/json"
    assert (
        hit["body"]["key"] == "model_drift:intraday_mean_reversion" and hit["body"]["severity"] == "critical"
    )
    assert [f["feature"] for f in hit["body"]["data"]["features"]] == ["rsi", "atr"]
    # Repeats inside the cooldown are held back and counted ...
    clock.now += 30
    m.check_model_drift(ref, cur, model="intraday_mean_reversion")
    m.check_model_drift(ref, cur, model="intraday_mean_reversion")
    assert len(Receiver.received) == 1 and m.suppressed == {"model_drift:intraday_mean_reversion": 2}
    # ... another key is independent ...
    m.check_model_drift(ref, cur, model="swing_trend_following")
    assert len(Receiver.received) == 2
    # ... and after the cooldown the next alert carries the count.
    clock.now += 31
    m.check_model_drift(ref, cur, model="intraday_mean_reversion")
    assert len(Receiver.received) == 3 and Receiver.received[-1]["body"]["data"]["suppressed"] == 2
    lines = [orjson.loads(x) for x in (tmp_path / "alerts.jsonl").read_bytes().splitlines()]
    assert [x["subject"] for x in lines] == [
        "intraday_mean_reversion",
        "swing_trend_following",
        "intraday_mean_reversion",
    ]
    # No drift: no alert and the state clears.
    m.check_model_drift(ref, ref, model="intraday_mean_reversion")
    assert not m.drift_detected("intraday_mean_reversion") and len(Receiver.received) == 3


def test_failing_webhook_does_not_stop_other_sinks(tmp_path) -> None:
    with socket.socket() as s:  # a port with nobody listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    m = manager(tmp_path, f"http://127.0.0.1:{port}/x", Clock(), webhook_timeout_seconds=1.0)
    z = m.check_performance_anomaly("daily_pnl", [1.0, 2.0, 3.0, 2.0, 1.0, 3.0], 9.0, subject="portfolio")
    assert z > 2 and m.sink_failures == 1
    (line,) = (tmp_path / "alerts.jsonl").read_bytes().splitlines()
    assert orjson.loads(line)["kind"] == "performance_anomaly"


def test_webhook_error_status_counts_as_failure(tmp_path, webhook: str) -> None:
    Receiver.status = 500
    m = manager(tmp_path, webhook, Clock())
    m.check_performance_anomaly("sharpe", [1.0, 1.1, 0.9, 1.0], 5.0)
    assert len(Receiver.received) == 1 and m.sink_failures == 1


def test_performance_anomaly_z_score(tmp_path, webhook: str) -> None:
    m = manager(tmp_path, webhook, Clock())
    hist = [0.01, -0.02, 0.015, 0.0, -0.005, 0.02, -0.01]
    mean, sd = np.mean(hist), np.std(hist, ddof=1)
    assert m.check_performance_anomaly("ret", hist, mean + 1.9 * sd) == pytest.approx(1.9)
    assert Receiver.received == []  # inside 2 standard deviations
    assert m.check_performance_anomaly("ret", hist, mean - 2.5 * sd) == pytest.approx(-2.5)
    assert Receiver.received[0]["body"]["data"]["z"] == pytest.approx(-2.5)
    with pytest.raises(ValueError, match="at least 2"):
        m.check_performance_anomaly("ret", [1.0], 2.0)


def test_data_quality_alert(tmp_path, webhook: str) -> None:
    t0 = datetime(2024, 1, 2, 14, 30, tzinfo=UTC)
    good = pl.DataFrame(
        {
            "symbol": ["A"] * 4,
            "ts": [t0 + timedelta(minutes=i) for i in range(4)],
            "open": [10.0, 10.1, 10.2, 10.1],
            "high": [10.2, 10.2, 10.3, 10.2],
            "low": [9.9, 10.0, 10.1, 10.0],
            "close": [10.1, 10.2, 10.1, 10.1],
            "volume": [100, 200, 150, 120],
        }
    )
    m = manager(tmp_path, webhook, Clock())
    assert m.check_data_quality(good).ok and Receiver.received == []
    bad = pl.concat([good, good.tail(1)]).with_columns(
        high=pl.when(pl.col("close") == 10.2).then(9.0).otherwise(pl.col("high"))
    )
    report = m.check_data_quality(bad, source="alpaca")
    assert (report.duplicates, report.ohlc_inconsistent) == (1, 1)
    body = Receiver.received[0]["body"]
    assert body["key"] == "data_quality:alpaca" and body["severity"] == "critical"
    assert "duplicate bars: 1" in body["message"]
    stale = m.check_data_quality(good, source="feed", now=t0 + timedelta(hours=1))
    assert list(stale.stale) == ["A"]
    assert Receiver.received[-1]["body"]["severity"] == "warning"
    jumpy = good.with_columns(
        close=pl.Series([10.1, 10.2, 14.0, 10.1]), high=pl.Series([10.2, 10.2, 14.0, 10.2])
    )
    assert check_data_quality(jumpy).jumps == 2
    with pytest.raises(ValueError, match="missing columns"):
        check_data_quality(good.drop("volume"))
