"""A local venue's run keeps its data caches (shortability, earnings) in a folder of its own beside its
journal: two runs whose journals share a folder do not share (or clobber) caches, and a new run sets the
previous run's caches aside with its journal."""

from __future__ import annotations

import io
import threading
from pathlib import Path

import orjson
from hybridtrader.cli.live_cmd import _set_aside
from hybridtrader.config import Config, VenueConfig
from hybridtrader.live.journal import Journal
from hybridtrader.live.node import LiveNode, run_cache_dir
from hybridtrader.venue import Venue
from rich.console import Console

VENUE = VenueConfig(speed="max", history_until_clock=True, rate_limit_per_minute=1_000_000, impact=False)


def _trade_a_little(make_node, venue: Venue, journal: Path) -> None:
    stop = threading.Event()

    def on_bar_time(node: LiveNode) -> None:
        assert node.trader is not None
        if node.trader.n_bars >= 5 * len(node.symbols):
            stop.set()

    node = make_node(Config(), venue, journal, stop=stop, on_bar_time=on_bar_time)
    try:
        node.start()
        node.run()
    finally:
        node.close()


def test_two_runs_in_one_folder_keep_their_own_caches(make_node, live_market, tmp_path: Path) -> None:
    with Venue(VENUE, market=live_market) as first:
        _trade_a_little(make_node, first, tmp_path / "a.sqlite")
    with Venue(VENUE, market=live_market) as second:
        _trade_a_little(make_node, second, tmp_path / "b.sqlite")
    caches = sorted(p.name for p in tmp_path.iterdir() if p.is_dir())
    assert caches == ["a.cache", "b.cache"]
    for run in ("a", "b"):
        for name in ("shortability", "earnings"):
            body = orjson.loads((tmp_path / f"{run}.cache" / f"{name}.json").read_bytes())
            assert set(body["entries"]) == set(live_market.names)


def test_a_new_run_sets_the_previous_runs_caches_aside_with_its_journal(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    journal = Journal(path)
    journal.put("cursor", 7)
    journal.close()
    cache = run_cache_dir(path)
    cache.mkdir()
    (cache / "earnings.json").write_text("the previous run's")
    said = io.StringIO()
    _set_aside(path, Console(file=said))
    assert "kept as" in said.getvalue()
    assert not path.exists() and not cache.exists()
    (aside,) = tmp_path.glob("journal-*.sqlite")
    assert Journal(aside).get("cursor") == 7
    assert (run_cache_dir(aside) / "earnings.json").read_text() == "the previous run's"
    assert run_cache_dir(aside).name == f"{aside.stem}.cache"

