"""The live node: the engine's one `Trader` with Broker = Alpaca (through the journal) and, by where it
trades, one of two clock/feed pairs:

- Real time (`Endpoints.venue_url` None: Alpaca, or any venue serving its market as time passes): Clock =
  `WallClock`, Feed = `StreamFeed` (bars built from the live trade stream). The past cannot be replayed
  in real time, so the engine checkpoints at each bar boundary (`Trader.checkpoint`: the slippage model,
  breaker and strategies' state, journaled with the cursor) and a restarted node resumes from the last
  checkpoint: orders sent before are known again from the journal's intents, every journaled update is
  booked again, the checkpoint restores the rest, and the broker's updates since are reconciled through
  the broker. Intents never sent are abandoned (their decision time has passed). What a crash can lose:
  the bar times the node was down for, and what the strategies noted in the bar time it died in (their
  orders of that bar time are known; their state is the checkpoint's).
- Lockstep with the local venue's replayed market (`venue_url` set): Feed = the replayed market's bars per
  bar time, Clock = the venue's replay clock moved by the node, as follows.

Lockstep start: open the journal, connect the broker (REST + trade_updates), reconcile, and rebuild the
engine's state by replaying the run's past bar times (journal cursor) through the same Trader: nothing is
sent during the replay; orders the broker already has are matched by their deterministic client order ids
and their recorded updates are fed back at their times. Then ready: each new bar time is traded, its close
written to the journal as the cursor once the Trader is done with it.

A restarted lockstep node therefore ends where an uninterrupted one ends: every decision is re-made from
the same bars, an order the broker took before the crash is adopted, never sent twice, and one that never
reached it is sent now (the market clock has not moved since the crash: the node moves it).

Sessions: before the open the shortability and earnings caches are refreshed (what is past its TTL; a failed
refresh halts entries; earnings dates that expire during the session are refreshed when asked, or used stale
with an alert while the calendar fails) and, with `portfolio.universe.in_engine`, the daily bars the universe
is chosen from are stored; the engine's CapitalAllocator (`portfolio.allocation.in_engine`) and universe are
the backtest's, their state files put back to the run's start on a restart so the replay re-makes the same
allocations. Models (`live.champion`): champions loaded at the start (trained first when there is none;
refused past their age), retrained after a close in a separate process, swapped in at a bar boundary, every
change journaled.

Operation: entries are halted (exits still go out) while the feed is stale (> live.max_feed_staleness_s
of market time), while an order call took longer than live.max_execution_lag_s, or after a
reconciliation mismatch with live.on_mismatch=reduce_only; each raises an alert. The engine's breaker
flattens on daily loss / drawdown (also alerted). SIGTERM/Ctrl-C: stop entries, cancel open orders,
flatten if live.flatten_on_exit, flush the journal, return.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import polars as pl

from hybridtrader.config import Config
from hybridtrader.data.alpaca_client import AlpacaClient, FetchError
from hybridtrader.data.atomic import read_state, write_atomic, write_state
from hybridtrader.data.bar_store import BarStore
from hybridtrader.data.earnings_cache import FINNHUB_PER_MINUTE, EarningsBlackout
from hybridtrader.data.fetch import fetch_to_store
from hybridtrader.data.shortability_cache import ShortabilityCache
from hybridtrader.data.ttl_cache import CacheRefreshError
from hybridtrader.engine.events import BarBatch, OrderUpdate
from hybridtrader.engine.orders import Order, OrderRequest
from hybridtrader.engine.strategy import Strategy
from hybridtrader.engine.trader import Trader
from hybridtrader.errors import ConfigError, DataError, StateError
from hybridtrader.execution.fills import FillSettings, FillSimulator
from hybridtrader.execution.rate_limiter import RateLimiter, RateLimitError
from hybridtrader.execution.slippage_model import SlippageModel
from hybridtrader.execution.time_slicing import SESSION_MINUTES
from hybridtrader.live.broker import AlpacaBroker, update_order
from hybridtrader.live.champion import LiveModels, history, sessions_ending
from hybridtrader.live.champion import Progress as TrainingProgress
from hybridtrader.live.feed import ReplayFeed, StreamFeed, VenueClock, WallClock
from hybridtrader.live.journal import Journal
from hybridtrader.live.ops import Heartbeat, NodeMetrics, OpsServer
from hybridtrader.live.reconcile import Reconciliation, reconcile
from hybridtrader.market.calendar import NEW_YORK, previous_session, session_bounds
from hybridtrader.market.timeconv import NS_PER_SECOND, epoch_ns, from_utc_ns, rfc3339, utc_ns
from hybridtrader.monitoring.alerts import EnhancedAlertManager
from hybridtrader.portfolio import capital_allocator, universe_rotation
from hybridtrader.portfolio.capital_allocator import CapitalAllocator
from hybridtrader.portfolio.session_universe import SessionUniverse
from hybridtrader.portfolio.universe_rotation import UniverseRotationTracker
from hybridtrader.risk.exposure_manager import ExposureManager
from hybridtrader.strategy.loader import build_strategy

log = logging.getLogger(__name__)
# SIGTERM: how long the node waits for the broker to confirm its cancels and flatten fills (the rest of
# the 10 s exit budget closes the stream, the ops server and the journal)
SHUTDOWN_WAIT_S = 5.0
SHUTDOWN_FLATTENS = 3  # at most: a position the broker keeps refusing to close is not retried forever
# `JournaledBroker.prepoll`: up to this long for the trading stream to deliver what the clock move filled
# (what is still open then is asked of REST: a look-up of 10-20 ms with 50 symbols)
PREPOLL_SETTLE_S = 0.02


def run_cache_dir(journal: Path) -> Path:
    """The data caches of a run on a local venue: beside its journal, named after it (`j.sqlite` ->
    `j.cache/`), and set aside with it. The venue's market is the run's own, and the caches are keyed by
    symbol alone: another run's answers (another journal in the same folder, or an earlier run) would
    pass for this one's."""
    return journal.with_name(f"{journal.stem}.cache")


@dataclass(frozen=True)
class Endpoints:
    """Where the node trades; the keys travel with these URLs and nowhere else."""

    trading_url: str
    trading_stream_url: str | None
    data_url: str
    venue_url: str | None  # the local venue's control API (lockstep replay clock); None: real time
    keys: tuple[str, str]
    data_stream_url: str | None = None  # the market data stream (real time)

    def __repr__(self) -> str:
        return (
            f"Endpoints(trading_url={self.trading_url!r}, trading_stream_url={self.trading_stream_url!r}, "
            f"data_url={self.data_url!r}, data_stream_url={self.data_stream_url!r}, "
            f"venue_url={self.venue_url!r})"
        )


class JournaledBroker:
    """The Broker port the node's Trader sees. A bar time's orders are held until `flush()` (the node calls
    it when the Trader is done with the bar time), which journals them all in one transaction and only
    then sends them, together (`AlpacaBroker.submit_many`). Cancels are held too and go out after the bar
    time's orders: a cancel is a REST round trip (milliseconds), and the orders decided after it in the
    bar time would wait for it. In lockstep the broker's answers are the same (no market time passes
    between a bar time's requests); in real time a cancel reaches the broker those milliseconds later. An
    order cancelled in the bar time it was decided in (a time-sliced child closed when it was due) is sent
    before its cancel either way. A replace of a held order flushes first; `poll` flushes first. While
    `replaying`, nothing is sent and the broker's recorded history answers `poll`."""

    def __init__(
        self,
        broker: AlpacaBroker,
        journal: Journal,
        metrics: NodeMetrics,
        rec: Reconciliation,
        rejected: list[OrderUpdate],
    ) -> None:
        self.broker, self.journal, self.metrics = broker, journal, metrics
        self.at_broker = rec.at_broker
        self.replaying = False
        self.batch_t0 = 0.0  # perf_counter when the current bar time's bars were in hand
        self.diverged: list[str] = []  # replayed decisions the broker never saw
        # per order sent, seconds after its bar time's bars were in hand: (flush began, request in the
        # kernel's send buffer, answer read)
        self.timings: list[tuple[float, float, float]] = []
        # this bar time's orders not sent yet, and its cancels (request None), in the Trader's order
        self._pending: list[tuple[str, OrderRequest | None, int]] = []
        self._submitted: dict[str, tuple[OrderRequest, int]] = {}
        journal_only = [u for u in rejected if u.client_order_id not in rec.at_broker]
        self._history = sorted([*rec.history, *journal_only], key=lambda u: u.ts_ns)
        self._reported: list[OrderUpdate] = []
        self._asked: set[tuple[str, str]] = set()  # (client order id, "canceled"/"replaced") requested
        self.orders: dict[str, Order] = {}  # the Trader's orders (set once it exists): what is journaled
        self._early: list[OrderUpdate] = []  # taken by `prepoll`, for the Trader's next poll
        self._looked_up = -1  # the time of a `prepoll` not followed by a poll yet (its look-up stands)

    def submit(self, client_order_id: str, request: OrderRequest, ts_ns: int) -> None:
        self._submitted[client_order_id] = (request, ts_ns)
        if self.replaying:
            if client_order_id not in self.at_broker and not any(
                u.client_order_id == client_order_id for u in self._history
            ):
                self.diverged.append(client_order_id)
            return
        self._pending.append((client_order_id, request, ts_ns))

    def flush(self) -> None:
        """Journal the held orders in one transaction, send them at once (one the broker has from before a
        restart is adopted, never sent twice), then the held cancels, in the Trader's order."""
        if not self._pending:
            return
        t0 = time.perf_counter()
        batch, self._pending = self._pending, []
        orders = [(cid, r, ts) for cid, r, ts in batch if r is not None]
        if orders:
            self.journal.record_intents([(self.orders[cid], None) for cid, _, _ in orders])  # before sending
            self._send(orders, t0)
        for cid, r, ts in batch:
            if r is None:
                self.broker.cancel(cid, ts)

    def _send(self, orders: list[tuple[str, OrderRequest, int]], t0: float) -> None:
        adopted = {cid: (r, ts) for cid, r, ts in orders if cid in self.at_broker}
        if adopted:
            self.broker.adopt(adopted, [])
        fresh = [o for o in orders if o[0] not in adopted]
        if not fresh:
            return
        answers = self.broker.submit_many(fresh)
        self.journal.mark_sent_many([(cid, ts) for cid, _, ts in fresh])
        t_bar = self.batch_t0
        for (cid, request, _), a in zip(fresh, answers, strict=True):
            self.metrics.orders.labels(self.orders[cid].strategy, request.side).inc()
            self.metrics.bar_to_order.observe(a.sent - t_bar)
            self.timings.append((t0 - t_bar, a.sent - t_bar, a.answered - t_bar))

    def _held(self, client_order_id: str) -> bool:
        return any(cid == client_order_id and r is not None for cid, r, _ in self._pending)

    def cancel(self, client_order_id: str, ts_ns: int) -> None:
        self._asked.add((client_order_id, "canceled"))
        if not self.replaying:
            self._pending.append((client_order_id, None, ts_ns))

    def replace(
        self,
        client_order_id: str,
        new_client_order_id: str,
        ts_ns: int,
        *,
        qty: float | None = None,
        limit_price: float | None = None,
        stop_price: float | None = None,
    ) -> None:
        if self._held(client_order_id):
            self.flush()
        self._asked.add((client_order_id, "replaced"))
        old = self._submitted.get(client_order_id)
        if old is not None:
            r = old[0]
            request = OrderRequest(
                r.symbol,
                r.side,
                qty or r.qty,
                r.type,
                r.time_in_force,
                limit_price or r.limit_price,
                stop_price or r.stop_price,
            )
            self._submitted[new_client_order_id] = (request, ts_ns)
            if not self.replaying:
                self.journal.record_intent(self.orders[new_client_order_id], replaces=client_order_id)
        if not self.replaying:
            self.broker.replace(
                client_order_id,
                new_client_order_id,
                ts_ns,
                qty=qty,
                limit_price=limit_price,
                stop_price=stop_price,
            )

    def poll(self, now_ns: int) -> list[OrderUpdate]:
        self.flush()
        if self.replaying:  # what a live poll at `now_ns` had: updates of orders sent, cancels asked...
            out = [
                u
                for u in self._history
                if u.ts_ns <= now_ns
                and u.client_order_id in self._submitted
                and (u.kind not in ("canceled", "replaced") or (u.client_order_id, u.kind) in self._asked)
            ]
            if out:
                done = {id(u) for u in out}
                self._history = [u for u in self._history if id(u) not in done]
                self._reported.extend(out)
            return out
        out = self.broker.poll(now_ns, look_up=now_ns != self._looked_up)
        self._looked_up = -1
        self.journal.record_updates(out)
        if self._early:
            out = sorted([*self._early, *out], key=update_order)
            self._early = []
        return out

    def prepoll(self, now_ns: int, apply: Callable[[list[OrderUpdate], int], bool]) -> None:
        """The clock just passed `now_ns`, a bar time's close: the broker's updates until then, taken before
        the bar time's bars are in hand (lockstep: before they are fetched; real time: inside the grace
        for them to arrive), journaled, and offered to `apply` (the Trader's `apply_early`: applied now,
        as its poll at `now_ns` would apply them); what it does not take is handed to it at that poll.
        Nothing that poll reports happens at the broker in between (lockstep: no clock move, no order;
        real time: what happens after `now_ns` waits for the next poll), so that poll only drains the
        stream: the REST look-up for what the stream has not delivered yet (it races the clock's answer)
        or lost, and the updates' bookkeeping, are then off the path from the bars to the orders."""
        if self.replaying:
            return
        self.flush()
        out = self.broker.poll(now_ns, settle_s=PREPOLL_SETTLE_S)
        self.journal.record_updates(out)
        self._early.extend(out)
        self._looked_up = now_ns
        if self._early and apply(sorted(self._early, key=update_order), now_ns):
            self._early = []

    def go_live(self) -> None:
        """The replay is over: the AlpacaBroker learns the orders sent before and what was reported."""
        self.replaying = False
        self.broker.adopt(self._submitted, self._reported)

    def on_bars(
        self, bars: pl.DataFrame, every_ns: int, index: tuple[list[str], np.ndarray] | None = None
    ) -> None:
        return None

    def has_open_orders(self) -> bool:
        return bool(self._pending) or self.broker.has_open_orders()

    def positions(self) -> dict[str, float]:
        return self.broker.positions()


class LiveNode:
    """Build with the config, where to trade, the sessions and symbols of the run; `run()` trades them."""

    def __init__(
        self,
        config: Config,
        endpoints: Endpoints,
        *,
        sessions: list[date],
        symbols: list[str],
        journal: Journal,
        speed: float | None = None,
        finish_by: float | None = None,
        alerts: EnhancedAlertManager | None = None,
        stop: threading.Event | None = None,
        on_bar_time: Callable[[LiveNode], None] | None = None,
        limiter: RateLimiter | None = None,
        clock: WallClock | None = None,
        strategies: list[Strategy] | None = None,
        on_training: TrainingProgress | None = None,
    ) -> None:
        """Real time (`endpoints.venue_url` None) runs on `clock` (default: UTC wall time); lockstep is
        paced at `speed` or to end by `finish_by` (`ReplayFeed`); `strategies` replace the configured
        `live.strategies` (an embedding program's own)."""
        self.config = config
        self.live = config.live
        self.endpoints = endpoints
        self.journal = journal
        self.stop = stop or threading.Event()
        self.alerts = alerts if alerts is not None else EnhancedAlertManager(config)
        self.metrics = NodeMetrics()
        self.heartbeat = Heartbeat(timeout_s=30.0)
        self.on_bar_time = on_bar_time
        self.limiter = limiter if limiter is not None else RateLimiter(config)
        self.broker = AlpacaBroker(
            endpoints.trading_url,
            endpoints.trading_stream_url,
            endpoints.keys,
            limiter=self.limiter,
            on_request=self._on_request,
            fees=FillSimulator(FillSettings.from_config(config)),
        )
        self.data = AlpacaClient(config, data_url=endpoints.data_url, limiter=self.limiter)
        self.wall = endpoints.venue_url is None
        self._given = strategies
        self.clock: WallClock | VenueClock
        if endpoints.venue_url is None:
            if endpoints.data_stream_url is None:
                raise ConfigError("live: trading in real time needs the market data stream's URL")
            self.clock = clock if clock is not None else WallClock()
            self.clock.stop = self.stop  # a stop ends the clock's waits
        else:
            self.clock = VenueClock(endpoints.venue_url)
        run = journal.get("run")
        if run is None:  # a new run: what it trades, from where
            run = {
                "sessions": [d.isoformat() for d in sessions],
                "symbols": symbols,
                "cash": self.broker.account()["cash"],
                "start_positions": self.broker.positions(),
                "since_ns": self.clock.now_ns(),
            }
            journal.put("run", run, self.clock.now_ns())
        self.run_info = run
        self.sessions = [date.fromisoformat(d) for d in run["sessions"]]
        self.symbols = list(run["symbols"])
        self.cursor = int(journal.get("cursor", 0))
        self.shutdowns = [int(x) for x in journal.get("shutdowns", [])]
        self.feed: StreamFeed | ReplayFeed
        if isinstance(self.clock, WallClock):
            assert endpoints.data_stream_url is not None
            self.feed = StreamFeed(
                config,
                self.clock,
                self.symbols,
                self.sessions,
                stream_url=endpoints.data_stream_url,
                rest=self.data,
                stop=self.stop,
            )
        else:
            self.feed = ReplayFeed(
                self.data,
                self.clock,
                self.symbols,
                self.sessions,
                resume_ns=self.cursor,
                speed=speed,
                finish_by=finish_by,
                stop=self.stop,
            )
        self.abandoned: list[str] = []  # real time: journaled intents never sent, dropped at a restart
        self.ready = False
        self.reconciled = False
        self.halts: dict[str, str] = {}
        self._lag_until = 0
        self._feed_lag_s = 0.0  # market seconds since the newest bars, at the last bar time
        self.rec: Reconciliation | None = None
        self.trader: Trader | None = None
        self.ops: OpsServer | None = None
        self.summary: dict[str, Any] = {}
        self._recovered = 0  # broker.recovered already counted in the metric
        self._events_seen = 0  # trader.events already looked at for alerts
        self.on_training = on_training
        self.models = LiveModels(config, journal, self.metrics, self._alert, self.alerts)
        self.universe: SessionUniverse | None = None
        self._shortability: ShortabilityCache | None = None
        self.earnings: EarningsBlackout | None = None

    # ------------------------------------------------------------------------------------- start
    def strategies(self) -> list[Strategy]:
        """The configured strategies, each model-gated one with its champion (`live.champion`: trained
        first when the registry has none; one past live.model_max_age_days is refused with an alert and
        the strategy trades its rules alone)."""
        if self._given is not None:
            return self._given
        out = [build_strategy(spec, self.config, use_models=False) for spec in self.live.strategies]
        self.models.begin(out, int(self.run_info["since_ns"]), self._training_bars, self._training_progress)
        for s in out:
            if s.name not in self.models.gated:
                self.metrics.model.labels(s.name, "rules").set(1)
                self.metrics.model_version.labels(s.name).set(0)
        return out

    def _training_progress(self, strategy: str, stage: str, done: int, total: int) -> None:
        self.heartbeat.beat()  # training before trading is the node at work: /health stays green
        if self.on_training is not None:
            self.on_training(strategy, stage, done, total)

    def _training_bars(self) -> pl.DataFrame:
        """The 1-minute bars of the live.history_sessions sessions before the run's first."""
        days = sessions_ending(previous_session(self.sessions[0]), self.live.history_sessions)
        return history(self.data, self.symbols, days)

    def _allocator(self) -> CapitalAllocator | None:
        """The persisted CapitalAllocator (portfolio.allocation.in_engine), as it was at the run's start."""
        if not self.config.portfolio.allocation.in_engine:
            return None
        path = CapitalAllocator(self.config).path
        assert path is not None
        self._run_start_state("allocator", path, capital_allocator.FORMAT_VERSION)
        return CapitalAllocator(self.config)

    def _universe(self) -> SessionUniverse | None:
        """The rotated universe (portfolio.universe.in_engine) on daily bars the node stores beside its
        journal, its persisted rotation history as it was at the run's start."""
        if not self.config.portfolio.universe.in_engine:
            return None
        path = UniverseRotationTracker(self.config).path
        assert path is not None
        self._run_start_state("universe", path, universe_rotation.FORMAT_VERSION)
        store = BarStore(self.journal.path.parent / "bars")
        return SessionUniverse(store, self.config, self.symbols, persist=True)

    def _run_start_state(self, key: str, path: Path, version: int) -> None:
        """Put the state file at `path` back to what it held when this run started (journal `key`), so a
        restarted node's replay re-makes the run's allocations and rotations from the same start; a new
        run records it."""
        saved = self.journal.get(key)
        if saved is None:
            self.journal.put(key, {"state": read_state(path, version)})
        elif saved["state"] is not None:
            write_state(path, version, saved["state"])
        elif path.exists():
            log.info("%s: back to the run's start (no state file): this run's own file is replayed", path)
            path.unlink()

    def start(self) -> Reconciliation:
        """Ops endpoint up, broker connected, reconciled; raises StateError when a mismatch must refuse."""
        self.ops = OpsServer(
            self.metrics,
            self.heartbeat.check,
            self._ready,
            self.status,
            self.live.ops_host,
            self.live.ops_port,
        ).start()
        self.journal.put("ops", {"url": self.ops.url})
        log.info(
            "live node trading on %s (stream %s, data %s); ops on %s",
            self.endpoints.trading_url,
            self.endpoints.trading_stream_url,
            self.endpoints.data_url,
            self.ops.url,
        )
        self.broker.connect()
        rec = self.rec = reconcile(
            self.broker,
            self.journal,
            since_ns=int(self.run_info["since_ns"]),
            start_positions=self.run_info["start_positions"],
            tolerance=self.live.position_tolerance_shares,
            now_ns=self.clock.now_ns(),
        )
        if not rec.ok:
            self._alert("reconcile_mismatch", "account", "critical", "; ".join(rec.mismatches[:5]))
            if self.live.on_mismatch == "refuse":
                raise StateError(
                    f"live: reconciliation found {len(rec.mismatches)} mismatch(es), refusing "
                    f"to start (live.on_mismatch=refuse): {rec.mismatches[0]}"
                )
            self.halts["reduce-only"] = "reconciliation mismatch"
        self.reconciled = True
        strategies = self.strategies()
        exposure = ExposureManager(self.config)
        slippage = SlippageModel(self.config)
        rejected = [u for u in self.journal.updates() if u.kind == "rejected"]
        self.jbroker = JournaledBroker(self.broker, self.journal, self.metrics, rec, rejected)
        finnhub = f"{self.endpoints.venue_url}/api/v1" if self.endpoints.venue_url else None
        self.earnings = EarningsBlackout(
            self.config,
            finnhub_url=finnhub,
            window=(self.sessions[0] - timedelta(days=120), self.sessions[-1] + timedelta(days=120)),
            path=self._cache_path("earnings.json"),
            # the config's retries: a refresh that fails mid-session holds the bar time it is asked in
            limiter=RateLimiter(self.config, rates=[(FINNHUB_PER_MINUTE, 60.0)]),
            on_stale=lambda message: self._alert("earnings_stale", "earnings", "warning", message),
        )
        self.universe = self._universe()
        self.trader = Trader(
            self.config,
            strategies,
            self.feed,
            self.jbroker,
            self.clock,
            cash=float(self.run_info["cash"]),
            slippage=slippage,
            exposure=exposure,
            earnings_blackout=self.earnings,
            allocator=self._allocator(),
            universe=self.universe,
        )
        self.jbroker.orders = self.trader.orders
        self.feed.on_clock = self._on_clock
        if isinstance(self.feed, StreamFeed):
            self._resume(rec)
            self._warm_up()
            self.feed.start()
            self._go_live()
        return rec

    def _warm_up(self) -> None:
        """Real time: the strategies' history is the bars closed before now, from REST (a replay has it)."""
        trader = self.trader
        assert trader is not None
        need = max(s.history_bars for s in trader.strategies)
        if not need:
            return
        now = self.clock.now_ns()
        day = from_utc_ns(now).astimezone(NEW_YORK).date()
        for _ in range(need // SESSION_MINUTES + 1):  # back far enough for `need` 1-minute bars
            day = previous_session(day)
        start, end = utc_ns(session_bounds(day)[0]), now - self.feed.every_ns
        try:
            bars = self.data.get_bars(self.symbols, "1Min", rfc3339(start), rfc3339(end))
        except (FetchError, RateLimitError, OSError, DataError) as e:
            log.warning("no history (%s): the strategies warm up on the stream", e)
            return
        trader.warm_up(bars.filter(pl.col("ts").dt.epoch("ns") <= end).sort("ts", "symbol"))

    def _resume(self, rec: Reconciliation) -> None:
        """Real time: the engine continues from the journal (see the module documentation)."""
        trader, journal = self.trader, self.journal
        assert trader is not None
        updates = journal.updates()
        reported = {u.client_order_id for u in updates}
        known = []
        for cid, intent in journal.intents().items():
            if cid in rec.at_broker or cid in reported:
                known.append(intent.order())
            elif intent.outcome is None:  # never reached the broker, and its moment has passed
                journal.mark_outcome(cid, "abandoned")
                self.abandoned.append(cid)
        checkpoint = journal.get("checkpoint")
        try:
            trader.resume(checkpoint, known, updates, checkpoint["updates"] if checkpoint else 0)
        except (ValueError, KeyError, TypeError) as e:
            raise StateError(f"journal {journal.path}: its checkpoint cannot be restored: {e}") from None
        self.broker.adopt({o.client_order_id: (o.request, o.decision_ns) for o in known}, updates)

    # --------------------------------------------------------------------------------------- run
    def run(self) -> dict[str, Any]:
        """Trade the run's remaining bar times (after replaying the past ones); the summary."""
        assert self.trader is not None, "start() first"
        trader, jb = self.trader, self.jbroker
        fills_seen = 0
        session: date | None = None
        for batch in self.feed.batches():
            if batch.session != session:
                if session is not None:
                    self._after_close(session)
                session = batch.session
                self._before_open(session)
            jb.replaying = self.feed.replaying
            if not jb.replaying and not self.ready:
                jb.go_live()
                self._go_live()
            # the bar time's bars in hand (a session's open and close work, and going live, aside)
            jb.batch_t0 = time.perf_counter()
            self._swap_models(batch)
            self._check_halts(batch)
            trader.run_batch(batch)
            jb.flush()  # the bar time's orders: journaled together, then sent together
            bar_close = trader.now_ns
            if jb.replaying:
                self._replay_shutdowns(bar_close, batch.every_ns)  # a clean exit flattened here?
                continue
            if batch.bars.height:
                self.journal.put("cursor", bar_close, bar_close)
                self.cursor = bar_close
                if self.wall:  # what a restart resumes from (it cannot replay the past)
                    checkpoint = {**trader.checkpoint(), "updates": self.journal.n_updates}
                    self.journal.put("checkpoint", checkpoint, bar_close)
            fills_seen = self._observe(fills_seen)
            self.journal.checkpoint()  # the bar time's orders are out: its fsyncs delay none of them
            trader.trim_history()  # likewise the history's periodic cut (Polars, milliseconds)
            self.heartbeat.beat()
            if self.on_bar_time is not None:
                self.on_bar_time(self)
            if self.stop.is_set():
                break
        if not self.ready:  # everything was replay (a restart after the run's end)
            jb.go_live()
            self._go_live()
        if self.stop.is_set():
            self._shutdown()
        else:
            trader.finish()
            if session is not None:
                self._after_close(session)
        return self._summary()

    def _go_live(self) -> None:
        """Ready to trade. What start-up made (imports, history, the replay's state: hundreds of thousands
        of objects) is frozen out of the garbage collector's generations: a full collection during trading
        would otherwise scan all of it (100-200 ms, inside a bar time); it then scans what trading made."""
        gc.collect()
        gc.freeze()
        self.ready = True

    def _before_open(self, session: date) -> None:
        """Before a session: the universe's daily bars up to the previous session (replays too: the
        universe is re-chosen from them), then (live) the shortability and earnings caches refreshed and
        a running retraining given up to live.retrain_wait_s to finish."""
        if self.universe is not None:
            s = self.config.portfolio.universe
            window = sessions_ending(previous_session(session), s.lookback_sessions)
            fetch_to_store(
                self.data,
                self.universe.store,
                self.symbols,
                s.timeframe,
                window[0],
                window[-1],
                source="live",
            )
        if self.feed.replaying and self.trader is not None and self.trader.n_sessions:
            return
        self._refresh_caches()
        if self.models.retraining is not None and self.live.retrain_wait_s > 0 and not self.feed.replaying:
            self.models.wait(self.live.retrain_wait_s, self.heartbeat.beat, self.stop)

    def _refresh_caches(self) -> None:
        """Shortability (to the exposure manager) and earnings dates of the symbols: entries past their TTL
        or never fetched are fetched now. A failed refresh halts entries (one alert) until one succeeds:
        nothing older than its TTL is ever served."""
        trader = self.trader
        assert trader is not None and self.earnings is not None
        try:
            if self._shortability is None:
                self._shortability = ShortabilityCache(
                    self.config,
                    trading_url=self.endpoints.trading_url,
                    limiter=self.limiter,
                    path=self._cache_path("shortability.json"),
                )
            found = self._shortability.get_many(self.symbols)
            self.earnings.prefetch(self.symbols)
        except CacheRefreshError as e:
            if "cache refresh" not in self.halts:
                self._alert("cache_refresh", "caches", "critical", str(e))
            self.halts["cache refresh"] = str(e)
            return
        self.halts.pop("cache refresh", None)
        trader.exposure.load_symbols(
            pl.DataFrame({"symbol": list(found), "shortable": [v.shortable for v in found.values()]})
        )

    def _cache_path(self, name: str) -> Path | None:
        """Where a data cache lives: the run's own folder for a local venue (`run_cache_dir`), else the
        data caches' usual place (None)."""
        return run_cache_dir(self.journal.path) / name if self.endpoints.venue_url else None

    def _swap_models(self, batch: BarBatch) -> None:
        """At this bar boundary, before the bar time is traded: the model changes due (`LiveModels`)."""
        if batch.bars.height:
            start = int(epoch_ns(batch.bars["ts"])[0])
            self.models.apply_due(start + batch.every_ns, self.feed.replaying)

    def _after_close(self, session: date) -> None:
        """After a session: positions and breaker state to the journal, the day's report (JSON beside the
        journal: orders, fills, P&L, positions, halts and alerts); intraday books confirmed flat."""
        if self.feed.replaying:
            return
        trader = self.trader
        assert trader is not None
        held = self.broker.positions()
        self.journal.put(f"positions/{session.isoformat()}", held, trader.now_ns)
        self.journal.put("breaker", trader.exposure.breaker_state(), trader.now_ns)
        self._daily_report(session, held)
        books = {s.name: s.book for s in trader.strategies}
        intraday = {
            sym for (name, sym), p in trader.ledger.book.items() if p.qty and books[name] == "intraday"
        }
        if intraday:
            self._alert(
                "not_flat",
                session.isoformat(),
                "critical",
                f"intraday positions open after the close: {', '.join(sorted(intraday))}",
            )
        if session != self.sessions[-1]:  # the run's last close ends it: nothing would trade a new model
            self.models.after_close(session, self.symbols, self.endpoints.data_url, trader.now_ns)

    def _on_clock(self, now_ns: int) -> None:
        if self.ready:  # live, past the replay: the broker knows the orders sent before (`go_live`)
            assert self.trader is not None
            self.jbroker.prepoll(now_ns, self.trader.apply_early)

    # ------------------------------------------------------------------------------------ checks
    def _daily_report(self, session: date, held: dict[str, float]) -> None:
        trader = self.trader
        assert trader is not None
        result = trader.result()
        day = pl.col("decision_ts").dt.convert_time_zone("America/New_York").dt.date() == session
        orders = result.orders.filter(day)
        fills = result.fills.filter(
            pl.col("ts").dt.convert_time_zone("America/New_York").dt.date() == session
        )
        report = {
            "session": session.isoformat(),
            "orders": orders.height,
            "rejected": orders.filter(pl.col("status") == "rejected").height,
            "fills": fills.height,
            "filled_shares": float(fills["qty"].sum()),
            "fees": float(fills["fee"].sum()),
            "realized_pnl": float(fills["realized_pnl"].sum()),
            "equity": trader.ledger.equity(),
            "broker_positions": held,
            "skipped": dict(trader.skipped),
            "events": [e for e in trader.events if e.startswith(session.isoformat())],
            "alerts": [m for _, kind, m in self.journal.events()],
        }
        path = self.journal.path.parent / "reports" / f"{session.isoformat()}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, lambda f: f.write(orjson.dumps(report, option=orjson.OPT_INDENT_2) + b"\n"))

    def _on_request(self, endpoint: str, seconds: float) -> None:
        self.metrics.request_seconds.labels(endpoint).observe(seconds)
        if (
            endpoint in ("submit_order", "cancel_order", "replace_order")
            and seconds > self.live.max_execution_lag_s
        ):
            self._lag_until = time.monotonic() + self.live.max_execution_lag_s * 10
            self._alert(
                "execution_lag",
                endpoint,
                "warning",
                f"{endpoint} took {seconds:.2f} s (> {self.live.max_execution_lag_s:g} s)",
            )

    def _check_halts(self, batch: Any) -> None:
        trader = self.trader
        assert trader is not None
        if self.feed.replaying:
            trader.entry_halt = "; ".join(self.halts.values())
            return
        now = self.clock.now_ns()
        stale_s = (now - self.feed.last_data_ns) / NS_PER_SECOND if self.feed.last_data_ns else 0.0
        self._feed_lag_s = stale_s  # to the metrics after the bar time (`_observe`)
        if stale_s > self.live.max_feed_staleness_s:
            if "stale feed" not in self.halts:
                self._alert(
                    "stale_feed",
                    "bars",
                    "critical",
                    f"no bars for {stale_s:.0f} s of market time (> {self.live.max_feed_staleness_s:g} s)"
                    f"{': ' + self.feed.error if self.feed.error else ''}",
                )
            self.halts["stale feed"] = f"no bars for {stale_s:.0f} s"
        else:
            self.halts.pop("stale feed", None)
        if time.monotonic() < self._lag_until:
            self.halts["execution lag"] = "an order call was slow"
        else:
            self.halts.pop("execution lag", None)
        trader.entry_halt = "; ".join(self.halts.values())

    def _observe(self, fills_seen: int) -> int:
        """Metrics from the Trader and the halts after a bar time (off the path from its bars to its orders:
        a labelled metric's update costs microseconds)."""
        trader = self.trader
        assert trader is not None
        m = self.metrics
        m.feed_lag.set(self._feed_lag_s)
        for reason in ("stale feed", "execution lag", "reduce-only"):
            m.halted.labels(reason).set(1 if reason in self.halts else 0)
        for row in trader.fill_rows(fills_seen):
            _ts, _cid, strategy, _book, _sym, side, qty, _px, _fee, _rpnl, _dp, forecast, realized = row
            m.fills.labels(strategy, side).inc()
            m.filled_shares.labels(strategy).inc(qty)
            m.slippage_forecast.observe(forecast / 1e4)
            m.slippage_realized.observe(realized / 1e4)
        equity, gross, net = trader.ledger.totals()
        m.equity.set(equity)
        m.realized.set(trader.ledger.realized())
        m.unrealized.set(trader.ledger.unrealized())
        m.exposure.labels("all", "gross").set(gross)
        m.exposure.labels("all", "net").set(net)
        m.bar_time.set(trader.now_ns / NS_PER_SECOND)
        if trader.allocator is not None:
            for name, capital in trader.capital().items():
                m.capital.labels(name).set(capital)
                m.weight.labels(name).set(trader.weight[name])
        m.universe.set(len(self.symbols) if trader.tradable is None else len(trader.tradable))
        m.limiter_waits.set(self.limiter.stats().get("retries", 0))
        m.stream_recoveries.inc(self.broker.recovered - self._recovered)
        self._recovered = self.broker.recovered
        for event in trader.events[self._events_seen :]:
            if "circuit breaker" in event:
                self._alert("breaker", "account", "critical", event)
        self._events_seen = len(trader.events)
        return trader.flow.n_fills

    def _alert(self, kind: str, subject: str, severity: Any, message: str) -> None:
        self.metrics.alerts.labels(kind).inc()
        self.journal.event(kind, message, self.clock.now_ns())
        self.alerts.emit(kind, subject, severity, message, {})

    def _ready(self) -> tuple[bool, str]:
        if not self.reconciled:
            return False, "not reconciled yet"
        if not self.ready:
            return False, "replaying the run's past"
        if "stale feed" in self.halts:
            return False, f"data not fresh: {self.halts['stale feed']}"
        return True, "ready"

    # ---------------------------------------------------------------------------------- shutdown
    def _shutdown(self) -> None:
        """Stop entries, cancel open orders, flatten if configured, and wait (within SHUTDOWN_WAIT_S) until
        the broker has confirmed every order closed. An order can fill before its cancel arrives (in
        lockstep the venue fills a market order as it takes it, so the last bar time's entries have
        filled before their fills are polled): what those fills leave is flattened again, at a new
        decision time (a new id), each flatten's time journaled so that a restart's replay re-makes it."""
        trader = self.trader
        assert trader is not None
        trader.entry_halt = "shutting down"
        deadline = time.monotonic() + SHUTDOWN_WAIT_S
        why = "shutdown"
        for _ in range(SHUTDOWN_FLATTENS):
            if self.live.flatten_on_exit:
                self.shutdowns.append(trader.now_ns)
                self.journal.put("shutdowns", self.shutdowns, trader.now_ns)
                trader.flatten_all(why)
                self.jbroker.flush()
            else:
                for cid in list(trader.open):
                    trader.cancel(cid)
            while trader.open and time.monotonic() < deadline:
                trader.poll_broker(self.clock.now_ns())
                if trader.open:
                    time.sleep(0.05)
            held = any(trader.ledger.net.values())
            if not (self.live.flatten_on_exit and held) or time.monotonic() >= deadline:
                return
            trader.now_ns = max(trader.now_ns + 1, self.clock.now_ns())
            why = "shutdown: fills after the cancel"

    def _replay_shutdowns(self, bar_close: int, every_ns: int) -> None:
        """Replaying: re-make the shutdown flattens a clean exit made after the bar time closing at
        `bar_close` (`_shutdown`: the first at the close, each later one after the updates until then)."""
        trader = self.trader
        assert trader is not None
        for at in sorted(t for t in self.shutdowns if bar_close <= t < bar_close + every_ns):
            if at > bar_close:
                trader.poll_broker(at)
                trader.now_ns = at
            trader.flatten_all("shutdown" if at == bar_close else "shutdown: fills after the cancel")

    def close(self) -> None:
        gc.unfreeze()  # what `_go_live` froze is collectable again once the node is done
        if isinstance(self.feed, StreamFeed):
            self.feed.close()
        self.models.close()
        self.broker.close()
        if self.ops is not None:
            self.ops.stop()
        self.journal.close()

    # ------------------------------------------------------------------------------------ status
    def status(self) -> dict[str, Any]:
        t = self.trader
        out: dict[str, Any] = {
            "ready": self.ready,
            "reconciled": self.reconciled,
            "cursor_ns": self.cursor,
            "halts": dict(self.halts),
            "endpoints": repr(self.endpoints),
            "models": {name: v or "rules" for name, v in self.models.trading.items()},
        }
        if t is not None:
            out.update(
                equity=t.ledger.equity(),
                orders=len(t.sent),
                open_orders=len(t.open),
                fills=t.flow.n_fills,
                positions={s: p for s, p in t.ledger.net.items() if p},
                skipped=dict(t.skipped),
            )
        if isinstance(self.feed, StreamFeed):
            out["stream"] = self.feed.stats()
        return out

    def _summary(self) -> dict[str, Any]:
        t = self.trader
        assert t is not None
        result = t.result()
        self.summary = {
            "sessions": [d.isoformat() for d in self.sessions],
            "bars": t.n_bars,
            "orders": result.orders.height,
            "fills": result.fills.height,
            "equity": t.ledger.equity(),
            "realized_pnl": t.ledger.realized(),
            "broker_positions": self.broker.positions(),
            "skipped": result.skipped,
            "events": result.events,
            "diverged": self.jbroker.diverged,
            "models": self.journal.get("models", []),  # [strategy, version, first bar close traded]
            "model_notes": self.models.lines,
            "stopped": self.stop.is_set(),
        }
        self.result = result
        return self.summary
