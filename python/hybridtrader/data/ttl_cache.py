"""A persisted TTL cache: entries stamped with the time they were fetched, expired after `ttl_s`.

`get_many(keys)` serves fresh entries and refreshes the missing or expired ones in one call of the
loader; an entry is never served past its TTL: if the refresh fails, `CacheRefreshError` says which keys
and why (and the old entries stay on disk with their old stamps). The file is written atomically with a
format version after every refresh. Hits, misses and failed refreshes are counted in the metrics.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from hybridtrader.credentials import redact
from hybridtrader.data.atomic import StateFileError, read_state, write_state
from hybridtrader.errors import BrokerError, DataError
from hybridtrader.metrics import METRICS, Metrics

log = logging.getLogger(__name__)
FORMAT_VERSION = 1


class CacheRefreshError(BrokerError):
    """Entries were missing or expired and the refresh failed; nothing stale was served."""

    def __init__(self, name: str, keys: list[str], cause: BaseException) -> None:
        super().__init__(f"{name}: refreshing {', '.join(keys)} failed: {redact(str(cause))}")
        self.keys = keys


def read_entries(path: Path, name: str | None = None) -> dict[str, tuple[float, Any]]:
    """The (fetched_at, value) entries of a cache file (empty when it does not exist); a file of another
    cache (`name`), or an entry without a numeric `fetched_at` and a `value`, is a StateFileError naming the
    file and the key."""
    state = read_state(path, FORMAT_VERSION)
    if state is None:
        return {}
    entries = state.get("entries")
    if (name is not None and state.get("name") != name) or not isinstance(entries, dict):
        raise StateFileError(f"cache file {path} does not hold the {name or 'expected'} cache")
    out = {}
    for key, entry in entries.items():
        stamp = entry.get("fetched_at") if isinstance(entry, dict) else None
        if not isinstance(stamp, int | float) or isinstance(stamp, bool) or "value" not in entry:
            raise StateFileError(
                f"cache file {path}: entry {key!r} is malformed (needs a numeric fetched_at and a value); "
                "move the file away to start over"
            )
        out[key] = (float(stamp), entry["value"])
    return out


class TTLCache:
    def __init__(
        self,
        name: str,
        path: str | Path,
        ttl_s: float,
        loader: Callable[[list[str]], dict[str, Any]],
        *,
        clock: Callable[[], float] = time.time,
        metrics: Metrics = METRICS,
    ) -> None:
        if ttl_s <= 0:
            raise DataError(f"ttl_s: must be > 0, got {ttl_s}")
        self.name = name
        self.path = Path(path)
        self.ttl_s = ttl_s
        self.loader = loader
        self.clock = clock
        self.metrics = metrics
        self._lock = threading.Lock()
        self.entries: dict[str, tuple[float, Any]] = read_entries(self.path, name)

    def age(self, key: str) -> float | None:
        entry = self.entries.get(key)
        return None if entry is None else self.clock() - entry[0]

    def fresh(self, key: str) -> bool:
        """Fetched less than ttl_s ago; an entry stamped in the future (a clock set back, a copied file)
        has no meaningful age and is refreshed, never served forever."""
        age = self.age(key)
        return age is not None and 0.0 <= age < self.ttl_s

    def get(self, key: str) -> Any:
        return self.get_many([key])[key]

    def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        keys = list(dict.fromkeys(keys))
        with self._lock:
            stale = [k for k in keys if not self.fresh(k)]
            self.metrics.inc("cache_hits", len(keys) - len(stale), cache=self.name)
            if stale:
                self.metrics.inc("cache_misses", len(stale), cache=self.name)
                self._refresh(stale)
            return {k: self.entries[k][1] for k in keys}

    def _refresh(self, keys: list[str]) -> None:
        try:
            loaded = self.loader(keys)
        except Exception as e:
            self.metrics.inc("cache_refresh_failures", cache=self.name)
            log.warning("%s cache: refresh of %d keys failed: %s", self.name, len(keys), redact(str(e)))
            raise CacheRefreshError(self.name, keys, e) from e
        absent = [k for k in keys if k not in loaded]
        if absent:
            self.metrics.inc("cache_refresh_failures", cache=self.name)
            raise CacheRefreshError(self.name, absent, KeyError("not in the source's answer"))
        now = self.clock()
        for k, v in loaded.items():
            self.entries[k] = (now, v)
        write_state(self.path, FORMAT_VERSION, {
            "name": self.name, "ttl_s": self.ttl_s,
            "entries": {k: {"fetched_at": t, "value": v} for k, (t, v) in self.entries.items()},
        })
