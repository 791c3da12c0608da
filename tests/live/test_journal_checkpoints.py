"""The journal's checkpoints run only when the node asks (`Journal.checkpoint`), never inside a commit: what
is committed stays in the WAL, readable by another connection, until then (SQLite's automatic checkpoint
would have copied it into the database file after 1000 pages)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from hybridtrader.live.journal import CHECKPOINT_COMMITS, Journal


def _count(path: Path) -> int:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return int(db.execute("SELECT count(*) FROM state").fetchone()[0])
    finally:
        db.close()


def test_commits_stay_in_the_wal_until_a_checkpoint_is_asked_for(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    j = Journal(path)
    j.checkpoint()  # a new journal has too few commits: nothing to do
    empty = path.stat().st_size
    n = max(1500, CHECKPOINT_COMMITS)  # two 4 KiB pages each at least: far past SQLite's 1000-page mark
    for i in range(n):
        j.put(f"k{i}", "x" * 5000, i)
    assert path.stat().st_size == empty  # every page is still in the WAL
    assert _count(path) == n  # committed: another connection reads them
    j.checkpoint()
    assert path.stat().st_size > n * 5000  # copied into the database file
    assert _count(path) == n
    j.close()
    assert Journal(path).get(f"k{n - 1}") == "x" * 5000


def test_a_checkpoint_waits_for_enough_commits(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    j = Journal(path)
    j.checkpoint()
    before = path.stat().st_size
    for i in range(CHECKPOINT_COMMITS - 1):  # the journal's own creation counted none
        j.put(f"k{i}", "x" * 5000, i)
    j.checkpoint()
    assert path.stat().st_size == before
    j.put("last", "x" * 5000, 0)
    j.checkpoint()
    assert path.stat().st_size > before
