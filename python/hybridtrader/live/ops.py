"""The node's operations endpoint: `/metrics` (Prometheus text, `prometheus_client`), `/health` (the loop is
advancing), `/ready` (broker connected, reconciled, data fresh) and `/status` (JSON for `hybridtrader
live status`), served on loopback by a thread of its own.

Metric names carry the `hybridtrader_` prefix and base units (seconds, dollars, ratios); counters end in
`_total`; labels are bounded sets (strategy, side, book, endpoint), never order ids.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

_LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_BPS_BUCKETS = (-0.005, -0.002, -0.001, -0.0005, 0.0, 0.0005, 0.001, 0.002, 0.005, 0.01)


class NodeMetrics:
    """Every metric the node exports, in a registry of its own."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.orders = Counter("hybridtrader_orders_total", "Orders sent", ["strategy", "side"], registry=r)
        self.fills = Counter("hybridtrader_fills_total", "Fills received", ["strategy", "side"], registry=r)
        self.filled_shares = Counter(
            "hybridtrader_filled_shares_total", "Shares filled", ["strategy"], registry=r
        )
        self.rejects = Counter(
            "hybridtrader_order_rejects_total", "Orders rejected", ["strategy"], registry=r
        )
        self.skipped = Counter(
            "hybridtrader_intents_skipped_total", "Intents not sent (risk, halts)", registry=r
        )
        self.slippage_forecast = Histogram(
            "hybridtrader_slippage_forecast_ratio",
            "Forecast cost of each filled order (fraction of price)",
            buckets=_BPS_BUCKETS,
            registry=r,
        )
        self.slippage_realized = Histogram(
            "hybridtrader_slippage_realized_ratio",
            "Realised cost of each fill against the decision price",
            buckets=_BPS_BUCKETS,
            registry=r,
        )
        self.equity = Gauge("hybridtrader_equity_dollars", "Marked equity", registry=r)
        self.realized = Gauge(
            "hybridtrader_realized_pnl_dollars", "Realised P&L since the run began", registry=r
        )
        self.unrealized = Gauge("hybridtrader_unrealized_pnl_dollars", "Unrealised P&L", registry=r)
        self.exposure = Gauge(
            "hybridtrader_exposure_dollars", "Exposure by book", ["book", "kind"], registry=r
        )
        self.feed_lag = Gauge(
            "hybridtrader_feed_lag_seconds", "Market time since the newest bar's interval ended", registry=r
        )
        self.bar_to_order = Histogram(
            "hybridtrader_bar_to_order_seconds",
            "Wall time from a bar time's bars in hand to each order sent",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.request_seconds = Histogram(
            "hybridtrader_broker_request_seconds",
            "Broker REST call time",
            ["endpoint"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.stream_recoveries = Counter(
            "hybridtrader_stream_recovered_updates_total",
            "Order updates the stream lost and REST supplied",
            registry=r,
        )
        self.reconnects = Counter("hybridtrader_reconnects_total", "Trading stream reconnects", registry=r)
        self.limiter_waits = Gauge(
            "hybridtrader_rate_limiter_retries",
            "Rate-limited or failed calls retried by the limiter so far",
            registry=r,
        )
        self.bars = Counter("hybridtrader_bars_total", "Bars processed", registry=r)
        self.bar_time = Gauge(
            "hybridtrader_bar_time_seconds",
            "Close of the last bar time processed (Unix seconds, market time)",
            registry=r,
        )
        self.halted = Gauge(
            "hybridtrader_entries_halted", "1 while new entries are halted", ["reason"], registry=r
        )
        self.model = Gauge(
            "hybridtrader_model_info",
            "Model version a strategy trades with",
            ["strategy", "version"],
            registry=r,
        )
        self.alerts = Counter("hybridtrader_alerts_total", "Alerts raised", ["kind"], registry=r)
        self.model_version = Gauge(
            "hybridtrader_model_version",
            "Registry version of the champion a strategy trades with (0: rules only)",
            ["strategy"],
            registry=r,
        )
        self.capital = Gauge(
            "hybridtrader_strategy_capital_dollars",
            "Capital the allocator gave a strategy at the session's open",
            ["strategy"],
            registry=r,
        )
        self.weight = Gauge(
            "hybridtrader_strategy_weight_ratio",
            "A strategy's share of equity this session (its sizing equity / the account's)",
            ["strategy"],
            registry=r,
        )
        self.universe = Gauge(
            "hybridtrader_universe_symbols", "Symbols the strategies may trade this session", registry=r
        )

    def text(self) -> bytes:
        return generate_latest(self.registry)


class OpsServer:
    """HTTP on `host:port` (0: a free port) for the metrics and the node's health, readiness and status.
    `health()`, `ready()` return (ok, why); `status()` a JSON-able dict."""

    def __init__(
        self,
        metrics: NodeMetrics,
        health: Callable[[], tuple[bool, str]],
        ready: Callable[[], tuple[bool, str]],
        status: Callable[[], dict[str, Any]],
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        ops = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?")[0]
                if path == "/metrics":
                    self._send(200, ops.metrics.text(), CONTENT_TYPE_LATEST)
                elif path in ("/health", "/ready"):
                    ok, why = (ops.health if path == "/health" else ops.ready)()
                    self._send(200 if ok else 503, (why + "\n").encode(), "text/plain")
                elif path == "/status":
                    self._send(
                        200, orjson.dumps(ops.status(), option=orjson.OPT_SERIALIZE_NUMPY), "application/json"
                    )
                else:
                    self._send(404, b"not found\n", "text/plain")

            def _send(self, code: int, body: bytes, ctype: str) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:  # scrapes are not worth a log line each
                return None

        self.metrics, self.health, self.ready, self.status = metrics, health, ready, status
        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.url = f"http://{host}:{self.port}"
        self._thread = threading.Thread(
            target=self.server.serve_forever,
            name="hybridtrader-ops",
            kwargs={"poll_interval": 0.1},
            daemon=True,
        )

    def start(self) -> OpsServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Heartbeat:
    """When the loop last advanced (wall, monotonic): /health fails past `timeout_s` without a beat."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.last = time.monotonic()

    def beat(self) -> None:
        self.last = time.monotonic()

    def check(self) -> tuple[bool, str]:
        age = time.monotonic() - self.last
        if age > self.timeout_s:
            return False, f"loop has not advanced for {age:.1f} s (> {self.timeout_s:.0f} s)"
        return True, f"ok: loop advanced {age:.1f} s ago"
