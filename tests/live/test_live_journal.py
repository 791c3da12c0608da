"""The live journal: what is written survives a reopen; a corrupt or foreign file is refused, never reset."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from hybridtrader.engine.events import OrderUpdate
from hybridtrader.engine.orders import Order, OrderRequest
from hybridtrader.errors import StateError
from hybridtrader.live.journal import Journal


def test_intents_updates_state_survive_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    j = Journal(path)
    r = OrderRequest("AAA", "buy", 10.0, "limit", "day", limit_price=9.5)
    order = Order("ht-1", "s1", "intraday", "entry", r, 100, 9.6, 2.5)
    j.record_intent(order)
    # a replayed decision keeps the first
    j.record_intent(Order("ht-1", "s1", "intraday", "entry", OrderRequest("AAA", "sell", 1.0), 200, 9.0, 0.0))
    j.mark_sent("ht-1", 105)
    j.record_updates(
        [
            OrderUpdate(110, "ht-1", "AAA", "buy", "accepted", leaves_qty=10.0),
            OrderUpdate(120, "ht-1", "AAA", "buy", "partial_fill", 4.0, 9.5, 0.01, 4.0, 6.0),
        ]
    )
    j.put("cursor", 123_456, 1)
    j.event("stale_feed", "no bars for 301 s", 5)
    j.close()

    j = Journal(path)
    (intent,) = j.intents().values()
    assert intent.request == r and intent.decision_ns == 100 and intent.sent_ns == 105
    assert intent.order() == Order("ht-1", "s1", "intraday", "entry", r, 100, 9.6, 2.5, updated_ns=100)
    assert j.n_updates == 2
    assert [u.kind for u in j.updates()] == ["accepted", "partial_fill"]
    assert next(iter(j.fills())) == OrderUpdate(
        120, "ht-1", "AAA", "buy", "partial_fill", 4.0, 9.5, 0.01, 4.0, 6.0
    )
    assert j.get("cursor") == 123_456 and j.get("missing", "x") == "x"
    assert j.events() == [(5, "stale_feed", "no bars for 301 s")]
    assert j.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    j.close()


def test_garbage_file_is_a_state_error_and_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    before = path.read_bytes()
    with pytest.raises(StateError, match="not a readable SQLite journal"):
        Journal(path)
    assert path.read_bytes() == before


def test_foreign_sqlite_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE t (x)")
    db.commit()
    db.close()
    with pytest.raises(StateError, match="not a hybridtrader journal"):
        Journal(path)


def test_other_format_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    Journal(path).close()
    db = sqlite3.connect(path)
    db.execute("UPDATE meta SET value='99' WHERE key='format'")
    db.commit()
    db.close()
    with pytest.raises(StateError, match="format 99"):
        Journal(path)
