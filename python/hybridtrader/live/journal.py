"""The live node's journal: SQLite in WAL mode, one file, written before the action it records.

Tables (format `FORMAT`, marked with SQLite's application_id so a foreign database is refused):
- `intents`: every order with its deterministic client order id and what the engine knew of it (strategy,
  book, leg, decision price, forecast), written BEFORE it is sent (then `sent_ns` once the broker took it,
  or an `outcome`);
- `updates`: each order update the node acted on (acks, fills, cancels...), in the order acted on;
- `state`: named JSON documents: the run (start cash, first bar time), the cursor (the last bar time
  whose processing finished), the engine's checkpoint at that bar boundary (slippage model, breaker,
  strategies' state...: `Trader.checkpoint`), positions at the close...;
- `events`: alerts and reconciliation findings, one line each.

Each write is its own transaction (`with self.db:`), so a SIGKILL leaves every record whole or absent; a bar
time's intents are one transaction (`record_intents`), committed before the first of them is sent.
`synchronous=NORMAL` in WAL mode: a commit is durable against a crash of the process (the WAL is in the
OS's page cache), not of the machine's power, and costs no fsync on the path from bar to order (FULL
would add one per bar time). Checkpoints (the WAL copied into the database, with an fsync of each: up
to tens of milliseconds on a busy disk) run when the node calls `checkpoint()`, after a bar time's orders
are out, never inside a commit: SQLite's automatic one runs in whichever commit passes 1000 pages, and
that can be the commit of a bar time's intents, between its decision and its orders. Losing the last
commits to a power cut sends nothing twice: client order ids are deterministic, so a restart re-decides
the lost intents and adopts what the broker already has.
A file that is not a SQLite database, has no journal mark, or another format version is a `StateError`:
a journal is never reset silently.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from hybridtrader.engine.events import OrderUpdate
from hybridtrader.engine.orders import Order, OrderRequest
from hybridtrader.errors import StateError

FORMAT = 2  # 2: intents carry the engine's order metadata
CHECKPOINT_COMMITS = 200  # `checkpoint()` copies the WAL after this many commits (a few pages each)
APPLICATION_ID = 0x48544A31  # "HTJ1"
_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE intents (
    client_order_id TEXT PRIMARY KEY, symbol TEXT NOT NULL, side TEXT NOT NULL, qty REAL NOT NULL,
    type TEXT NOT NULL, time_in_force TEXT NOT NULL, limit_price REAL, stop_price REAL,
    decision_ns INTEGER NOT NULL, written_ns INTEGER NOT NULL, sent_ns INTEGER, outcome TEXT,
    replaces TEXT, strategy TEXT NOT NULL, book TEXT NOT NULL, leg TEXT NOT NULL,
    decision_price REAL NOT NULL, forecast_bps REAL NOT NULL
);
CREATE TABLE updates (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, client_order_id TEXT NOT NULL, ts_ns INTEGER NOT NULL,
    kind TEXT NOT NULL, symbol TEXT NOT NULL, side TEXT NOT NULL, qty REAL NOT NULL, price REAL NOT NULL,
    fee REAL NOT NULL, filled_qty REAL NOT NULL, leaves_qty REAL NOT NULL, reason TEXT NOT NULL
);
CREATE INDEX updates_by_order ON updates (client_order_id);
CREATE TABLE state (key TEXT PRIMARY KEY, value BLOB NOT NULL, ts_ns INTEGER NOT NULL);
CREATE TABLE events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, ts_ns INTEGER NOT NULL, kind TEXT NOT NULL, message TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class Intent:
    client_order_id: str
    request: OrderRequest
    decision_ns: int
    sent_ns: int | None
    outcome: str | None
    replaces: str | None
    strategy: str
    book: str
    leg: str
    decision_price: float
    forecast_bps: float

    def order(self) -> Order:
        """The engine's order as it was sent (state "new"; the journaled updates move it on)."""
        return Order(
            self.client_order_id,
            self.strategy,
            self.book,
            self.leg,
            self.request,
            self.decision_ns,
            self.decision_price,
            self.forecast_bps,
            updated_ns=self.decision_ns,
        )


class Journal:
    """Open (or create) the journal at `path`."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        new = not self.path.exists() or self.path.stat().st_size == 0
        if new:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")  # why not FULL: the module's docstring
            self.db.execute("PRAGMA wal_autocheckpoint=0")  # `checkpoint()` does it
            self._commits = 0  # since the last checkpoint
            if new:
                self._create()
            self._check()
            # updates written so far: a checkpoint names how many of them it has seen
            self.n_updates = int(self.db.execute("SELECT count(*) FROM updates").fetchone()[0])
        except sqlite3.DatabaseError as e:
            raise StateError(
                f"journal {self.path}: not a readable SQLite journal ({e}); move it aside to start a new one"
            ) from None

    def _create(self) -> None:
        self.db.executescript(f"BEGIN; {_SCHEMA} INSERT INTO meta VALUES ('format', '{FORMAT}'); COMMIT;")
        self.db.execute(f"PRAGMA application_id={APPLICATION_ID}")

    def _check(self) -> None:
        (app,) = self.db.execute("PRAGMA application_id").fetchone()
        if app != APPLICATION_ID:
            raise StateError(
                f"journal {self.path}: a SQLite database that is not a hybridtrader journal "
                f"(application_id {app:#x}); move it aside to start a new one"
            )
        row = self.db.execute("SELECT value FROM meta WHERE key='format'").fetchone()
        if row is None or row[0] != str(FORMAT):
            raise StateError(
                f"journal {self.path}: format {row[0] if row else 'missing'}, this version "
                f"reads format {FORMAT}"
            )

    def _tx(self) -> Any:
        self._commits += 1
        return _Transaction(self.db)

    def checkpoint(self) -> None:
        """Copy the WAL into the database (SQLite's PASSIVE checkpoint: readers are not waited for) once
        CHECKPOINT_COMMITS commits were written since the last one; the node calls it off the path from
        bars to orders (see the module documentation)."""
        if self._commits >= CHECKPOINT_COMMITS:
            self.db.execute("PRAGMA wal_checkpoint(PASSIVE)")
            self._commits = 0

    def close(self) -> None:
        self.db.close()

    # ------------------------------------------------------------------------------------- intents
    def record_intent(self, order: Order, replaces: str | None = None) -> None:
        """Write an order intent before it is sent (idempotent: a replayed decision keeps the first)."""
        self.record_intents([(order, replaces)])

    def record_intents(self, intents: list[tuple[Order, str | None]]) -> None:
        """Write (order, id of the order it replaces) intents in one transaction, before any of them is
        sent: a crash leaves all of them or none."""
        written = time.time_ns()
        rows = [
            (
                o.client_order_id,
                o.request.symbol,
                o.request.side,
                o.request.qty,
                o.request.type,
                o.request.time_in_force,
                o.request.limit_price,
                o.request.stop_price,
                o.decision_ns,
                written,
                replaces,
                o.strategy,
                o.book,
                o.leg,
                o.decision_price,
                o.forecast_bps,
            )
            for o, replaces in intents
        ]
        with self._tx():
            self.db.executemany(
                "INSERT OR IGNORE INTO intents VALUES (?,?,?,?,?,?,?,?,?,?,NULL,NULL,?,?,?,?,?,?)", rows
            )

    def mark_sent(self, cid: str, sent_ns: int) -> None:
        self.mark_sent_many([(cid, sent_ns)])

    def mark_sent_many(self, sent: list[tuple[str, int]]) -> None:
        """(client order id, ns) of intents sent, in one transaction (a mark already there is kept)."""
        with self._tx():
            self.db.executemany(
                "UPDATE intents SET sent_ns=? WHERE client_order_id=? AND sent_ns IS NULL",
                [(ns, cid) for cid, ns in sent],
            )

    def mark_outcome(self, cid: str, outcome: str) -> None:
        with self._tx():
            self.db.execute("UPDATE intents SET outcome=? WHERE client_order_id=?", (outcome, cid))

    def intents(self) -> dict[str, Intent]:
        rows = self.db.execute(
            "SELECT client_order_id, symbol, side, qty, type, time_in_force, limit_price, stop_price, "
            "decision_ns, sent_ns, outcome, replaces, strategy, book, leg, decision_price, forecast_bps "
            "FROM intents ORDER BY decision_ns, rowid"
        ).fetchall()
        return {
            r[0]: Intent(r[0], OrderRequest(r[1], r[2], r[3], r[4], r[5], r[6], r[7]), r[8], *r[9:])
            for r in rows
        }

    # ------------------------------------------------------------------------------------- updates
    def record_updates(self, updates: list[OrderUpdate]) -> None:
        if not updates:
            return
        with self._tx():
            self.db.executemany(
                "INSERT INTO updates (client_order_id, ts_ns, kind, symbol, side, qty, price, fee, "
                "filled_qty, leaves_qty, reason) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                [
                    (
                        u.client_order_id,
                        u.ts_ns,
                        u.kind,
                        u.symbol,
                        u.side,
                        u.qty,
                        u.price,
                        u.fee,
                        u.filled_qty,
                        u.leaves_qty,
                        u.reason,
                    )
                    for u in updates
                ],
            )
        self.n_updates += len(updates)

    def updates(self) -> list[OrderUpdate]:
        rows = self.db.execute(
            "SELECT ts_ns, client_order_id, symbol, side, kind, qty, price, fee, filled_qty, leaves_qty, "
            "reason FROM updates ORDER BY seq"
        ).fetchall()
        return [OrderUpdate(*r) for r in rows]

    def fills(self) -> Iterator[OrderUpdate]:
        return (u for u in self.updates() if u.is_fill)

    # --------------------------------------------------------------------------------------- state
    def put(self, key: str, value: Any, ts_ns: int = 0) -> None:
        with self._tx():
            self.db.execute(
                "INSERT OR REPLACE INTO state VALUES (?,?,?)",
                (key, orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY), ts_ns),
            )

    def get(self, key: str, default: Any = None) -> Any:
        row = self.db.execute("SELECT value FROM state WHERE key=?", (key,)).fetchone()
        if row is None:
            return default
        try:
            return orjson.loads(row[0])
        except orjson.JSONDecodeError as e:
            raise StateError(f"journal {self.path}: state {key!r} is not valid JSON ({e})") from None

    def event(self, kind: str, message: str, ts_ns: int) -> None:
        with self._tx():
            self.db.execute(
                "INSERT INTO events (ts_ns, kind, message) VALUES (?,?,?)", (ts_ns, kind, message)
            )

    def events(self) -> list[tuple[int, str, str]]:
        return [tuple(r) for r in self.db.execute("SELECT ts_ns, kind, message FROM events ORDER BY seq")]


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error) on an autocommit connection."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self.db.execute("ROLLBACK" if exc_type is not None else "COMMIT")
