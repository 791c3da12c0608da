"""`UniverseRotationTracker`: which symbols are in the trading universe, since when and why.

    rotation_tracker = UniverseRotationTracker(config)
    if rotation_tracker.should_rotate(now):
        selection = select_universe(store, config)          # hybridtrader.portfolio.universe
        rotation_tracker.update_universe(selection.symbols, selection.metrics, now=now)

`update_universe(new_universe, metrics)` records every addition and removal with its time and reason.
`metrics` (optional) maps a symbol to a dict of JSON-able values recorded with its event (e.g. the
selection's `dollar_volume`, `last_close`); a `"reason"` entry becomes the event's reason (a removed
symbol's filter verdict), otherwise the reason is "selected" / "not in the new universe".

Minimum retention: a member is not removed before it has been in the universe for `min_retention_sessions`
NYSE sessions (counted from the session it was added, up to but excluding today); it stays, and the result
says why. The history (members, events, the last `stability_window` universes, the last rotation date) is
a versioned JSON file written atomically after each update; a corrupt or foreign file is a StateError.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import orjson

from hybridtrader.config import Config, as_config
from hybridtrader.data.atomic import write_state
from hybridtrader.errors import DataError
from hybridtrader.market import calendar
from hybridtrader.market.schema import normalize_symbols
from hybridtrader.market.timeconv import to_utc
from hybridtrader.portfolio.schedule import Decision, market_date, schedule_due
from hybridtrader.portfolio.state_file import load_state

FORMAT_VERSION = 1


@dataclass(frozen=True)
class RotationResult:
    added: list[str]
    removed: list[str]
    retained: dict[str, str] = field(default_factory=dict)  # not selected, kept by minimum retention
    universe: list[str] = field(default_factory=list)


def _symbols(new_universe: Iterable[str]) -> list[str]:
    items = list(new_universe)
    if not items:
        return []
    try:
        return normalize_symbols(items)
    except ValueError as e:
        raise DataError(f"new_universe: {e}") from None


class UniverseRotationTracker:
    def __init__(self, config: Config | dict[str, Any] | None = None, *, path: str | Path | None = None,
                 persist: bool = True) -> None:
        """History at `path`, else `portfolio.universe.history_path`, else
        `<data_dir>/portfolio/universe.json` (persist=False: in memory only)."""
        self.config = as_config(config)
        self.settings = self.config.portfolio.universe
        default = Path(self.config.data_dir) / "portfolio" / "universe.json"
        self.path = Path(path or self.settings.history_path or default) if persist else None
        self.members: dict[str, dict[str, str]] = {}  # symbol -> {"since": market date, "reason": ...}
        self.events: list[dict[str, Any]] = []  # {"ts", "symbol", "action": add|remove, "reason", "metrics"}
        self.snapshots: list[list[str]] = []  # the universe after each of the last stability_window updates
        self.last_rotation: date | None = None
        load_state(self.path, FORMAT_VERSION, self._restore)

    # ------------------------------------------------------------------------------ state
    def _restore(self, state: dict[str, Any]) -> None:
        self.members = {str(s): {"since": date.fromisoformat(m["since"]).isoformat(),
                                 "reason": str(m["reason"])} for s, m in state["members"].items()}
        self.events = [dict(e) for e in state["events"]]
        self.snapshots = [[str(s) for s in snap] for snap in state["snapshots"]]
        last = state["last_rotation"]
        self.last_rotation = None if last is None else date.fromisoformat(last)

    def save(self) -> None:
        if self.path is None:
            return
        write_state(self.path, FORMAT_VERSION, {
            "members": self.members, "events": self.events, "snapshots": self.snapshots,
            "last_rotation": None if self.last_rotation is None else self.last_rotation.isoformat(),
        })

    # ------------------------------------------------------------------------------ queries
    @property
    def universe(self) -> list[str]:
        return sorted(self.members)

    def history(self, symbol: str | None = None) -> list[dict[str, Any]]:
        """Recorded additions and removals, oldest first (of one symbol, or all)."""
        return [e for e in self.events if symbol is None or e["symbol"] == symbol.strip().upper()]

    def sessions_held(self, symbol: str, today: date) -> int:
        """NYSE sessions from the one `symbol` was added on up to but excluding `today`."""
        since = date.fromisoformat(self.members[symbol]["since"])
        return len(calendar.sessions(since, today - timedelta(days=1)))

    def get_symbol_stability_score(self, symbol: str) -> float:
        """How steadily `symbol` has been in the universe, in [0, 1].

        Over the last m = min(stability_window, updates so far) universes: score = p x (1 - c / m), p the
        share of them containing the symbol, c the number of times its membership changed between
        consecutive ones. 1: a member throughout; 0: never a member (or no updates yet); a symbol that
        flips in and out at every update scores about 1/(2m)."""
        snaps = self.snapshots[-self.settings.stability_window:]
        if not snaps:
            return 0.0
        sym = symbol.strip().upper()
        present = [sym in snap for snap in snaps]
        m = len(present)
        changes = sum(a != b for a, b in pairwise(present))
        return sum(present) / m * (1.0 - changes / m)

    def should_rotate(self, now: datetime | date | str | None = None) -> Decision:
        """Whether a rotation is due under `rotation_schedule` (truthy), with the reason."""
        return schedule_due(self.settings.rotation_schedule, self.last_rotation, market_date(now), "rotation")

    # ------------------------------------------------------------------------------ update
    def update_universe(self, new_universe: Iterable[str],
                        metrics: Mapping[str, Mapping[str, Any]] | None = None, *,
                        now: datetime | date | str | None = None) -> RotationResult:
        """Make `new_universe` the universe (less the members minimum retention keeps) and record why."""
        selected = _symbols(new_universe)
        info = self._metrics(metrics)
        today = market_date(now)
        stamp = (datetime.now(UTC) if now is None else to_utc("now", now)).isoformat()
        added = [s for s in selected if s not in self.members]
        removed, retained = [], {}
        min_keep = self.settings.min_retention_sessions
        for sym in sorted(set(self.members) - set(selected)):
            held = self.sessions_held(sym, today)
            if held < min_keep:
                retained[sym] = f"held {held} of min_retention_sessions {min_keep}"
            else:
                removed.append(sym)
        for sym in added:
            reason = str(info.get(sym, {}).get("reason", "selected"))
            self.members[sym] = {"since": today.isoformat(), "reason": reason}
            self._record(stamp, sym, "add", reason, info.get(sym, {}))
        for sym in removed:
            reason = str(info.get(sym, {}).get("reason", "not in the new universe"))
            del self.members[sym]
            self._record(stamp, sym, "remove", reason, info.get(sym, {}))
        self.events = self.events[-self.settings.max_events:]
        self.snapshots = [*self.snapshots, self.universe][-self.settings.stability_window:]
        self.last_rotation = today
        self.save()
        return RotationResult(added, removed, retained, self.universe)

    def _record(self, ts: str, symbol: str, action: str, reason: str, metrics: Mapping[str, Any]) -> None:
        self.events.append({"ts": ts, "symbol": symbol, "action": action, "reason": reason,
                            "metrics": {k: v for k, v in metrics.items() if k != "reason"}})

    @staticmethod
    def _metrics(metrics: Mapping[str, Mapping[str, Any]] | None) -> dict[str, dict[str, Any]]:
        if metrics is None:
            return {}
        if not isinstance(metrics, Mapping):
            raise DataError(f"metrics: expected a mapping of symbol -> metrics, got {type(metrics).__name__}")
        out = {}
        for sym, values in metrics.items():
            if not isinstance(sym, str) or not isinstance(values, Mapping):
                raise DataError(f"metrics[{sym!r}]: expected a symbol mapped to a dict of values")
            try:
                orjson.dumps(dict(values))
            except TypeError as e:
                raise DataError(f"metrics[{sym!r}]: values must be JSON-able ({e})") from None
            out[sym.strip().upper()] = dict(values)
        return out
