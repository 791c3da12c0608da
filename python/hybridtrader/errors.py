"""One exception tree for everything hybridtrader raises on purpose.

Every error a user can cause or meet (a bad config value, a bad file, a refused order, a dropped stream, a
model that cannot be used, a corrupt state file) is a `HybridTraderError` whose message is one line naming
the file, key or value at fault; the CLI prints that line and exits non-zero. Third-party exceptions are
translated into this tree where they enter (`raise DataError(...) from exc`), never let through raw.

The branches also derive from the builtin a caller would have caught before the tree existed (ValueError
for bad input, RuntimeError for failures of a running part), so `except ValueError` keeps working.
"""

from __future__ import annotations


class HybridTraderError(Exception):
    """Base of every error hybridtrader raises on purpose; `str(e)` is one line for the user."""


class ConfigError(HybridTraderError, ValueError):
    """A configuration value, file or command-line option is invalid (the message names the key path)."""


class DataError(HybridTraderError, ValueError):
    """Input data is unusable: a missing or malformed file, a wrong schema, an empty range."""


class StateError(HybridTraderError, ValueError):
    """A persisted state file (cache, model state, journal) is corrupt or of an unknown format version."""


class BrokerError(HybridTraderError, RuntimeError):
    """The broker or a data provider refused or failed a request (auth, rejects, exhausted retries)."""


class StreamError(HybridTraderError, RuntimeError):
    """A market-data or trading stream failed (auth, protocol, connection limits, drops)."""


class ModelError(HybridTraderError, RuntimeError):
    """A model cannot be trained, loaded or used (missing extra, expired champion, registry failure)."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's text, or its type name when it has none: how a third-party error
    (Polars' multi-line reports) is quoted inside one of ours."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


__all__ = [
    "BrokerError",
    "ConfigError",
    "DataError",
    "HybridTraderError",
    "ModelError",
    "StateError",
    "StreamError",
    "first_line",
]
