"""A bar time's intents are all in the journal before the first of them reaches the broker: the node trades
the venue through a TCP relay on a real socket, and whenever order bytes (`POST /v2/orders`) arrive at the
relay, before it passes them on, the relay reads the journal (its own SQLite connection, as another
process would) and keeps which intents were committed. Every order that passed must find all the intents
of its bar time committed before it."""

from __future__ import annotations

import re
import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path

from helpers import LoopbackRelay
from hybridtrader.config import Config, VenueConfig, with_overrides
from hybridtrader.credentials import LOCAL_KEY, LOCAL_SECRET
from hybridtrader.execution.rate_limiter import RateLimiter
from hybridtrader.live.journal import Journal
from hybridtrader.live.node import Endpoints, LiveNode
from hybridtrader.market.calendar import NEW_YORK, sessions
from hybridtrader.market.synth import generate_market
from hybridtrader.venue import ReplayMarket, Venue

ORDER_ID = re.compile(rb'"client_order_id":\s*"([^"]+)"')


class JournalCheckingRelay(LoopbackRelay):
    """Relays TCP to `target`; order bytes are passed on only after the journal has been read."""

    def __init__(self, target: tuple[str, int], journal: Path) -> None:
        super().__init__(target, self._check)
        self.journal = journal
        self.seen: list[tuple[str, frozenset[str]]] = []  # (order arriving, intents committed before it)

    def _committed(self) -> frozenset[str]:
        db = sqlite3.connect(f"file:{self.journal}?mode=ro", uri=True)
        try:
            return frozenset(r[0] for r in db.execute("SELECT client_order_id FROM intents"))
        finally:
            db.close()

    def _check(self, data: bytes) -> None:
        if b"/v2/orders HTTP/1.1" in data and data.startswith(b"POST"):
            committed = self._committed()
            self.seen += [(m.decode(), committed) for m in ORDER_ID.findall(data)]


def test_every_intent_of_a_bar_time_is_journaled_before_its_first_order_leaves(tmp_path: Path) -> None:
    names = [f"S{i:02d}" for i in range(8)]
    market = ReplayMarket.from_synthetic(
        generate_market(symbols=names, sessions=1, start="2024-01-02", seed=5, trades_per_minute=2.0)
    )
    vcfg = VenueConfig(speed="max", history_until_clock=True, rate_limit_per_minute=10**9, impact=False)
    cfg = with_overrides(Config(data_dir=tmp_path), ["live.use_models=false", "live.flatten_on_exit=false"])
    journal_path = tmp_path / "j.sqlite"
    with Venue(vcfg, market=market) as venue:
        host, port = venue.url.removeprefix("http://").split(":")
        relay = JournalCheckingRelay((host, int(port)), journal_path)
        base = venue.url
        ep = Endpoints(
            relay.url, base.replace("http://", "ws://") + "/stream", base, base, (LOCAL_KEY, LOCAL_SECRET)
        )
        day = datetime.fromtimestamp(venue.clock.now_ns() / 1e9, UTC).astimezone(NEW_YORK).date()
        stop = threading.Event()
        node = LiveNode(
            cfg,
            ep,
            sessions=sessions(day, day),
            symbols=names,
            journal=Journal(journal_path),
            stop=stop,
            on_bar_time=lambda n: stop.set() if n.trader.n_bars >= 120 * len(names) else None,
            limiter=RateLimiter(cfg, rates=[(10**9, 60.0)]),
        )
        try:
            node.start()
            node.run()
        finally:
            node.close()
            relay.close()
    intents = Journal(journal_path).intents()
    bar_time = {cid: i.decision_ns for cid, i in intents.items()}
    per_bar: dict[int, set[str]] = {}
    for cid, ns in bar_time.items():
        per_bar.setdefault(ns, set()).add(cid)
    sent = {cid for cid, _ in relay.seen}
    assert sent and sent <= set(intents)  # every order that left was an intent
    assert any(len(per_bar[bar_time[c]]) > 1 for c in sent)  # some bar time sent more than one order
    for cid, committed in relay.seen:
        missing = per_bar[bar_time[cid]] - committed
        assert not missing, (
            f"{cid} reached the broker before {sorted(missing)} of its bar time were journaled"
        )
