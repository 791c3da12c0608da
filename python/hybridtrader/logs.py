"""Logging for the commands: our own loggers at the chosen verbosity, third-party loggers at WARNING whatever
the verbosity (websockets logs every frame at DEBUG, the auth frame included; urllib3 logs request URLs;
MLflow and alembic chat at INFO), and every record redacted by `hybridtrader.credentials.redact` before any
handler writes it.
"""

from __future__ import annotations

import logging
import os

from hybridtrader.credentials import redact

# Loggers of libraries that may log frames, URLs or headers carrying credentials, or chat at INFO.
THIRD_PARTY = (
    "websockets", "urllib3", "requests", "aiohttp", "alpaca", "mlflow", "alembic", "asyncio", "git",
)  # fmt: skip
FORMAT = "%(levelname)s %(name)s: %(message)s"


class RedactingFilter(logging.Filter):
    """Rewrites a record's message (and its traceback text) with credentials masked."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        if record.exc_info:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def configure(verbose: bool = False) -> None:
    """Root handler on stderr with redaction; ours at DEBUG when `verbose`, else WARNING; others WARNING."""
    # MLflow sets its own logger to INFO with its own handler when it is imported (after this runs).
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    root = logging.getLogger()
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(RedactingFilter())
    for old in [h for h in root.handlers if getattr(h, "_hybridtrader", False)]:
        root.removeHandler(old)
    handler._hybridtrader = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger("hybridtrader").setLevel(logging.DEBUG if verbose else logging.WARNING)
    for name in THIRD_PARTY:
        lib = logging.getLogger(name)
        lib.setLevel(logging.WARNING)
        for h in lib.handlers:  # a library's own handler (MLflow has one) redacts too
            h.addFilter(RedactingFilter())
