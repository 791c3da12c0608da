"""EnhancedAlertManager: drift, performance-anomaly and data-quality alerts sent to pluggable sinks.

Sinks: `LogSink` (logging), `JsonLinesSink` (one JSON object per line, appended and fsynced),
`WebhookSink` (HTTP POST of the JSON alert). De-duplication and cooldown: alerts with the same key (kind
and subject, e.g. "model_drift:intraday_mean_reversion") are sent at most once per `cooldown_seconds`;
repeats inside the window are counted and that count travels with the next alert sent for the key
(`data["suppressed"]`), so nothing is silently lost. A failing sink is logged and counted
(`sink_failures`) and never stops the other sinks.
"""

from __future__ import annotations

import logging
import math
import os
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import orjson
import polars as pl

from hybridtrader.config import Config, as_config
from hybridtrader.errors import ConfigError
from hybridtrader.monitoring.drift import FeatureDrift, feature_drift

log = logging.getLogger(__name__)

Severity = Literal["info", "warning", "critical"]


@dataclass(frozen=True)
class Alert:
    kind: str  # model_drift, performance_anomaly, data_quality
    subject: str  # model, metric or data source the alert is about
    severity: Severity
    message: str
    ts: float  # unix seconds
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.subject}"

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "kind": self.kind,
                "subject": self.subject,
                "severity": self.severity,
                "message": self.message,
                "ts": self.ts,
                "key": self.key,
                "data": self.data,
            },
            option=orjson.OPT_SERIALIZE_NUMPY,
        )


class AlertSink(Protocol):
    def send(self, alert: Alert) -> None: ...


_LOG_LEVEL = {"info": logging.INFO, "warning": logging.WARNING, "critical": logging.CRITICAL}


class LogSink:
    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.logger = logger or logging.getLogger("hybridtrader.alerts")

    def send(self, alert: Alert) -> None:
        self.logger.log(_LOG_LEVEL[alert.severity], "[%s] %s", alert.key, alert.message)


class JsonLinesSink:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def send(self, alert: Alert) -> None:
        # One write of a whole line in append mode: concurrent writers never interleave inside a line.
        with open(self.path, "ab") as f:
            f.write(alert.to_json() + b"\n")
            f.flush()
            os.fsync(f.fileno())


class WebhookSink:
    def __init__(self, url: str, timeout: float = 5.0) -> None:
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"webhook url must be http(s), got {url!r}")
        self.url = url
        self.timeout = timeout

    def send(self, alert: Alert) -> None:
        req = urllib.request.Request(
            self.url, data=alert.to_json(), method="POST", headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=self.timeout) as resp:
            if not 200 <= resp.status < 300:
                raise OSError(f"webhook {self.url} answered HTTP {resp.status}")


def sinks_from_config(config: Config) -> list[AlertSink]:
    a = config.monitoring.alerts
    sinks: list[AlertSink] = []
    if a.log:
        sinks.append(LogSink())
    if a.jsonl_path is not None:
        sinks.append(JsonLinesSink(a.jsonl_path))
    if a.webhook_url:
        sinks.append(WebhookSink(a.webhook_url, a.webhook_timeout_seconds))
    return sinks


class EnhancedAlertManager:
    def __init__(
        self,
        config: Config | dict[str, Any] | None = None,
        sinks: Sequence[AlertSink] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = as_config(config)
        self.sinks: list[AlertSink] = list(sinks) if sinks is not None else sinks_from_config(self.config)
        self.clock = clock
        self.cooldown = self.config.monitoring.alerts.cooldown_seconds
        self.sent: deque[Alert] = deque(maxlen=1000)  # recent alerts that went out
        self.suppressed: dict[str, int] = {}  # per key, repeats held back since the last send
        self.sink_failures = 0
        self._last_sent: dict[str, float] = {}
        self._drifting: dict[str, bool] = {}

    # ------------------------------------------------------------------------------------ sending
    def emit(self, kind: str, subject: str, severity: Severity, message: str, data: dict[str, Any]) -> bool:
        """Send an alert unless its key is cooling down; True when it went out."""
        now = self.clock()
        key = f"{kind}:{subject}"
        last = self._last_sent.get(key)
        if last is not None and now - last < self.cooldown:
            self.suppressed[key] = self.suppressed.get(key, 0) + 1
            return False
        held = self.suppressed.pop(key, 0)
        alert = Alert(kind, subject, severity, message, now, {**data, "suppressed": held})
        for sink in self.sinks:
            try:
                sink.send(alert)
            except (OSError, urllib.error.URLError) as e:
                self.sink_failures += 1
                log.error("alert sink %s failed for %s: %s", type(sink).__name__, key, e)
        self._last_sent[key] = now
        self.sent.append(alert)
        return True

    # ------------------------------------------------------------------------------------- checks
    def check_model_drift(
        self,
        reference: pl.DataFrame,
        current: pl.DataFrame,
        model: str = "model",
        features: Sequence[str] | None = None,
    ) -> list[FeatureDrift]:
        """KS and PSI per feature; one alert (critical) listing the drifted features when any drifts.
        The result is remembered per model for `drift_detected` (and so for retraining decisions)."""
        cfg = self.config.monitoring.drift
        drift = feature_drift(reference, current, cfg, features)
        bad = [d for d in drift if d.drifted]
        self._drifting[model] = bool(bad)
        if bad:
            names = ", ".join(f"{d.feature} (KS {d.ks:.3f}, PSI {d.psi:.3f})" for d in bad)
            self.emit(
                "model_drift",
                model,
                "critical",
                f"{model}: {len(bad)} of {len(drift)} features drifted "
                f"(KS > {cfg.ks_threshold} or PSI > {cfg.psi_threshold}): {names}",
                {"features": [d.as_dict() for d in drift]},
            )
        return drift

    def drift_detected(self, model: str) -> bool:
        return self._drifting.get(model, False)

    def check_performance_anomaly(
        self, metric: str, history: Sequence[float] | np.ndarray, current: float, subject: str | None = None
    ) -> float:
        """z-score of `current` against `history` (mean, std with ddof 1); alerts when |z| exceeds
        `monitoring.alerts.anomaly_z` (2 by default). Returns z (0 for a flat history equal to current)."""
        h = np.asarray(history, dtype=float)
        h = h[np.isfinite(h)]
        if len(h) < 2:
            raise ConfigError(f"history: need at least 2 finite values, got {len(h)}")
        if not math.isfinite(current):
            raise ConfigError(f"current must be finite, got {current}")
        mean, sd = float(h.mean()), float(h.std(ddof=1))
        if sd == 0.0:
            z = 0.0 if current == mean else math.copysign(math.inf, current - mean)
        else:
            z = (current - mean) / sd
        limit = self.config.monitoring.alerts.anomaly_z
        if abs(z) > limit:
            self.emit(
                "performance_anomaly",
                subject or metric,
                "warning",
                f"{metric} = {current:.6g} is {z:+.2f} standard deviations from its mean {mean:.6g} "
                f"(limit {limit})",
                {"metric": metric, "current": current, "mean": mean, "std": sd, "z": z},
            )
        return z

    def check_data_quality(self, bars: pl.DataFrame, source: str = "bars", **checks: Any) -> Any:
        """Runs the data layer's `hybridtrader.data.quality.check_data_quality(bars, **checks)`; one alert
        listing its issues when the report is not ok (critical when rows are unusable: duplicates, nulls,
        non-positive prices, inconsistent OHLC; else a warning). Returns the data layer's report."""
        from hybridtrader.data.quality import check_data_quality

        report = check_data_quality(bars, **checks)
        if not report.ok:
            unusable = report.duplicates or report.nulls or report.non_positive or report.ohlc_inconsistent
            severity: Severity = "critical" if unusable else "warning"
            self.emit(
                "data_quality",
                source,
                severity,
                f"{source}: data-quality issues: {'; '.join(report.issues)}",
                {"report": report.to_dict()},
            )
        return report
