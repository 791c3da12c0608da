"""The node in-process against the venue: /metrics scraped while it runs, /health and /ready, a stale feed
(the venue's REST failing: 5xx bursts) halts entries with an alert and recovers, no crash."""

from __future__ import annotations

import threading
from pathlib import Path

import requests
from hybridtrader.config import Config
from hybridtrader.live.journal import Journal
from hybridtrader.live.node import LiveNode
from hybridtrader.monitoring.alerts import EnhancedAlertManager
from hybridtrader.venue import Venue


class Recorder:
    def __init__(self) -> None:
        self.alerts: list = []

    def send(self, alert: object) -> None:
        self.alerts.append(alert)


def _node(
    make_node, cfg: Config, venue: Venue, journal: Path, on_bar_time, stop: threading.Event
) -> tuple[LiveNode, Recorder]:
    sink = Recorder()
    alerts = EnhancedAlertManager(cfg, sinks=[sink])
    return make_node(cfg, venue, journal, stop=stop, on_bar_time=on_bar_time, alerts=alerts), sink


def test_metrics_ready_and_a_stale_feed(
    live_venue: Venue, fast_retry_config: Config, make_node, tmp_path: Path
) -> None:
    cfg = fast_retry_config
    cfg.execution.backoff.max_retries = 0  # a failed fetch fails now: the feed goes stale in market time
    cfg.live.max_feed_staleness_s = 180
    stop = threading.Event()
    seen: dict[str, object] = {}

    def on_bar_time(node: LiveNode) -> None:
        t = node.trader
        assert t is not None
        i = t.n_bars // len(node.symbols)
        url = node.ops.url if node.ops else ""
        if i == 60 and "metrics" not in seen:
            seen["metrics"] = requests.get(f"{url}/metrics", timeout=5).text
            seen["ready"] = requests.get(f"{url}/ready", timeout=5).status_code
            seen["health"] = requests.get(f"{url}/health", timeout=5).status_code
            live_venue.set_faults(http_5xx_burst=1_000_000)  # every REST call fails from now
        if "stale feed" in node.halts and "halted" not in seen:
            seen["halted"] = dict(node.halts)
            seen["ready_stale"] = requests.get(f"{url}/ready", timeout=5).status_code
            seen["metrics_stale"] = requests.get(f"{url}/metrics", timeout=5).text
            live_venue.clear_faults()
        if "halted" in seen and not node.halts and "recovered" not in seen:
            seen["recovered"] = i
        if i >= 150:
            stop.set()

    node, sink = _node(make_node, cfg, live_venue, tmp_path / "j.sqlite", on_bar_time, stop)
    try:
        rec = node.start()
        assert rec.ok and node.ops is not None
        summary = node.run()
    finally:
        node.close()
    assert summary["stopped"] and summary["orders"] > 0
    metrics = str(seen["metrics"])
    for name in (
        "hybridtrader_orders_total",
        "hybridtrader_fills_total",
        "hybridtrader_equity_dollars",
        "hybridtrader_bar_to_order_seconds_bucket",
        "hybridtrader_feed_lag_seconds",
        "hybridtrader_slippage_realized_ratio_count",
        'hybridtrader_model_info{strategy="intraday_mean_reversion",version="rules"} 1.0',
    ):
        assert name in metrics, name
    assert "ht-" not in metrics  # no order ids as labels
    assert seen["ready"] == 200 and seen["health"] == 200
    # stale: entries halted, not ready, alerted (sink, journal, metric); then fresh data lifts the halt
    assert "stale feed" in seen["halted"]  # type: ignore[operator]
    assert seen["ready_stale"] == 503
    assert 'hybridtrader_entries_halted{reason="stale feed"} 1.0' in str(seen["metrics_stale"])
    assert [a.kind for a in sink.alerts].count("stale_feed") == 1
    assert "recovered" in seen
    j = Journal(tmp_path / "j.sqlite")
    assert any(kind == "stale_feed" for _, kind, _ in j.events())
    j.close()
    # the shutdown on stop left the account flat
    assert live_venue.broker.positions == {}


def test_execution_lag_halts_entries_with_an_alert(live_venue: Venue, make_node, tmp_path: Path) -> None:
    cfg = Config()
    cfg.live.max_execution_lag_s = 0.2
    stop = threading.Event()
    seen: dict[str, object] = {}

    def on_bar_time(node: LiveNode) -> None:
        t = node.trader
        assert t is not None
        if t.n_bars // len(node.symbols) == 30:
            live_venue.set_faults(latency_ms=400)  # every answer from now takes 0.4 s
        if "execution lag" in node.halts:
            seen["halts"] = dict(node.halts)
            live_venue.clear_faults()
            stop.set()
        if t.n_bars // len(node.symbols) > 300:
            stop.set()

    node, sink = _node(make_node, cfg, live_venue, tmp_path / "j.sqlite", on_bar_time, stop)
    try:
        node.start()
        node.run()
    finally:
        node.close()
    assert "execution lag" in seen["halts"]  # type: ignore[operator]
    lag = [a for a in sink.alerts if a.kind == "execution_lag"]
    assert lag and "> 0.2 s" in lag[0].message


def test_live_status_reads_the_journal_of_a_stopped_node(tmp_path: Path, capsys) -> None:
    from hybridtrader.cli import main

    path = tmp_path / "j.sqlite"
    j = Journal(path)
    j.put("cursor", 1_704_207_660_000_000_000)
    j.event("stale_feed", "no bars for 301 s", 1)
    j.close()
    assert main(["live", "status", "--journal", str(path)]) == 0
    out = capsys.readouterr().out
    assert "running      False" in out and "1704207660000000000" in out and "no bars for 301 s" in out
