"""The `Trader`: the one loop that backtest and live both run.

Per bar time t of a batch (bars cover [t, t + every); they are known at now = t + every):
1. the broker reports every update up to now (a simulated broker, given the batch's bars beforehand,
   first matches the open orders against the bars closed by now); each update moves its order's state
   machine, and each fill books into the ledger, the exposure manager (filled position plus open orders'
   remaining shares as pending exposure: never intentions) and the slippage model (realised cost against
   the decision price);
2. the ledger and the exposure manager are marked with the closes; the breaker sees the marked equity;
3. from `risk.exposure.flatten_minutes_before_close` before the close, intraday books are flattened (open
   orders cancelled, positions closed with market orders) and nothing new opens in them; a HALTED breaker
   flattens every book;
4. child orders of sliced parents that are due are sent;
5. each strategy's `on_bars` sees the bar time's closed bars and acts through its `Context`.
After the batch's session closes, the broker reports expirations up to the close and the strategies get
`on_session_close`.

When every strategy says where it may act next (`Strategy.wakes_at`), a stretch of bar times where nothing
else can happen (no order open, no child order due, before the flatten time) runs in one step: its marks in
numpy and its breaker steps in one Rust call (`update_breaker_path`, the same step), stopping where the
breaker halts (that bar time's flatten then runs as above); the results are those of the steps one by one.

With a `CapitalAllocator` (`portfolio.allocation.in_engine`), each strategy trades within its capital: at a
session close each strategy's return (its P&L of the session / its capital at the open) goes to the
allocator; at the next open the allocator's plan is adopted when `rebalance_needed` says so (always at the
first open). A strategy given weight w sizes against w x equity and its gross exposure (its filled
positions with its open orders at their worst, at this bar time's prices) may not pass w x equity x its
book's gross cap; that is checked beside the account-wide exposure caps, which still apply. Without an
allocator every weight is 1 and nothing of this runs.

With a `universe` (a function of the session giving the symbols that may be traded that session, or None
for all), asked at each session open, an order that would open or add to a position in a symbol outside it
is refused (counted in `skipped`); closing what is held is always allowed.

Orders carry deterministic client order ids (strategy, symbol, decision time, leg), so a replayed decision
re-uses its id.
"""

from __future__ import annotations

import gc
import math
from bisect import bisect_right
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from hybridtrader._core import OrderFlowCore, marked_values, order_columns
from hybridtrader.config import Config
from hybridtrader.data.earnings_cache import EarningsBlackout
from hybridtrader.engine.events import BarBatch, OrderUpdate, SessionEvent, symbol_index
from hybridtrader.engine.orders import Order, OrderRequest, client_order_id
from hybridtrader.engine.ports import BookingBroker, Broker, Clock, Feed
from hybridtrader.engine.results import ResultRows
from hybridtrader.engine.strategy import Strategy
from hybridtrader.errors import ConfigError, StateError
from hybridtrader.execution.slippage_model import SlippageModel
from hybridtrader.execution.time_slicing import plan_parent_order
from hybridtrader.execution.toxic_time import entry_blocked
from hybridtrader.market.calendar import NEW_YORK, session_bounds
from hybridtrader.market.frames import build_frame
from hybridtrader.market.schema import TS, side_sign
from hybridtrader.market.timeconv import NS_PER_MINUTE, epoch_ns, from_utc_ns, time_runs, utc_ns
from hybridtrader.portfolio.capital_allocator import CapitalAllocator
from hybridtrader.portfolio.ledger import Ledger
from hybridtrader.risk.dynamic_sizing import DynamicSizer
from hybridtrader.risk.exposure_manager import ExposureManager

ORDER_SCHEMA = {
    "client_order_id": pl.String,
    "strategy": pl.String,
    "book": pl.String,
    "leg": pl.String,
    "symbol": pl.String,
    "side": pl.String,
    "type": pl.String,
    "time_in_force": pl.String,
    "qty": pl.Float64,
    "limit_price": pl.Float64,
    "stop_price": pl.Float64,
    "decision_ts": TS,
    "decision_price": pl.Float64,
    "forecast_bps": pl.Float64,
    "status": pl.String,
    "filled_qty": pl.Float64,
    "avg_price": pl.Float64,
    "fees": pl.Float64,
    "realized_bps": pl.Float64,
    "updated_ts": TS,
    "reason": pl.String,
}
FILL_SCHEMA = {
    "ts": TS,
    "client_order_id": pl.String,
    "strategy": pl.String,
    "book": pl.String,
    "symbol": pl.String,
    "side": pl.String,
    "qty": pl.Float64,
    "price": pl.Float64,
    "fee": pl.Float64,
    "realized_pnl": pl.Float64,
    "decision_price": pl.Float64,
    "forecast_bps": pl.Float64,
    "realized_bps": pl.Float64,
}
EQUITY_SCHEMA: dict[str, Any] = {
    "ts": TS,
    "equity": pl.Float64,
    "cash": pl.Float64,
    "gross_exposure": pl.Float64,
    "net_exposure": pl.Float64,
}
ALLOCATION_SCHEMA = {
    "session": pl.Date,
    "strategy": pl.String,
    "weight": pl.Float64,  # share of equity the strategy traded with this session
    "capital": pl.Float64,  # weight x equity at the session's open
    "pnl": pl.Float64,  # the strategy's P&L of the session (realised + unrealised change - fees)
    "ret": pl.Float64,  # pnl / capital, what the allocator was told
    "rebalanced": pl.Boolean,  # the weight was (re)set at this session's open
    "reason": pl.String,  # why (or why not), from the allocator
}
# `run` reads the feed this far ahead for the strategies' `prepare_ahead` (sessions, and rows of bars)
AHEAD_SESSIONS = 4
AHEAD_ROWS = 100_000
Progress = Callable[[date, int], None]  # (session done, bars in it)
Universe = Callable[[date], Collection[str] | None]  # session -> the symbols it may trade (None: any)


_RANKED_ORDER_SCHEMA = {"rank": pl.Int64, **ORDER_SCHEMA}  # rank: in the run's order of sending


@dataclass
class TraderResult:
    # "fills", "equity"; "orders" and "late_orders" (_RANKED_ORDER_SCHEMA), each in the order sent, the late
    # ones sent before some order of "orders" that finished earlier: see `scan`
    rows: dict[str, ResultRows]
    positions: pl.DataFrame  # portfolio.ledger.POSITION_SCHEMA at the end
    skipped: dict[str, int]  # intents not sent, by reason
    bars: int
    sessions: int
    events: list[str] = field(default_factory=list)  # flattens and halts, one line each
    allocations: pl.DataFrame = field(  # ALLOCATION_SCHEMA, per session and strategy (allocator runs only)
        default_factory=lambda: pl.DataFrame(schema=ALLOCATION_SCHEMA)
    )

    @property
    def orders(self) -> pl.DataFrame:
        """ORDER_SCHEMA, one row per order sent, in the order sent."""
        return self.scan("orders").collect()

    @property
    def fills(self) -> pl.DataFrame:
        """FILL_SCHEMA, in time order."""
        return self.rows["fills"].frame()

    @property
    def equity(self) -> pl.DataFrame:
        """EQUITY_SCHEMA, one row per bar time (after its updates and marks)."""
        return self.rows["equity"].frame()

    def scan(self, name: str) -> pl.LazyFrame:
        """The rows of "orders", "fills" or "equity", lazily (a spilled run reads them from disk)."""
        if name != "orders":
            return self.rows[name].scan()
        orders, late = self.rows["orders"].scan(), self.rows["late_orders"]
        if late.height:  # few: orders still open when later ones were folded
            orders = orders.merge_sorted(late.frame().sort("rank").lazy(), key="rank")
        return orders.drop("rank")


def _realized_bps(sign: Any, decision: Any, price: Any) -> Any:
    """Implementation shortfall of a fill in bps (positive = paid more than the decision price); `sign`
    +1 buy, -1 sell. Floats, or numpy arrays of them elementwise (the same operations in the same order)."""
    return sign * (price / decision - 1.0) * 1e4


_MARKED_AHEAD = 64  # most bar times marked in one step (1 after an update, twice as many each time)


def _marked(pos: np.ndarray, prices: np.ndarray) -> tuple[list[float], list[float]]:
    """Net and gross value of the shares `pos` at each row of `prices` (bar time x symbol), as lists of
    floats (what the bar loop reads one bar time at a time). Each row is summed as numpy sums that row
    alone (`marked_values`: one Rust call, where the numpy steps cost more than the sums of a few rows)."""
    nets, grosses = marked_values(pos, prices)
    return nets.tolist(), grosses.tolist()


# a batch's equity rows (EQUITY_SCHEMA's columns: ts, equity, cash, gross, net), one per bar time
_Curve = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]
_Rows = tuple[list[float], list[float], list[float], list[float]]  # ...its last four, while the batch runs
# fewest bar times run in one step: a shorter stretch costs more than the loop's steps
_QUIET_MIN = 3


def _curve_frame(chunks: list[_Curve]) -> pl.DataFrame:
    """The equity rows of `chunks`, one after another, as an EQUITY_SCHEMA frame."""
    if not chunks:
        return pl.DataFrame(schema=EQUITY_SCHEMA)
    columns = map(np.concatenate, zip(*chunks, strict=True))
    return build_frame(EQUITY_SCHEMA, dict(zip(EQUITY_SCHEMA, columns, strict=True)))


class _Quiet:
    """Where a batch's bar times may run in one step (`Trader._run_quiet`): from a bar time on which no
    order is open, up to the first at which a strategy may act (`Strategy.wakes_at`, asked again after the
    strategies ran), a scheduled child order is due or the intraday books are flattened."""

    def __init__(self, trader: Trader, sess: _Session, nows: np.ndarray) -> None:
        self._t = trader
        self._nows = nows
        self._starts: list[int] = sess.starts.tolist()
        self._ends: list[int] = sess.ends.tolist()
        self._flatten_at = int(np.searchsorted(nows, trader._flatten_ns))  # the first bar time at or past it
        self._wake = -1  # the first bar time a strategy may act at (-1: to be asked)

    def woken(self) -> None:
        """The strategies ran (or saw an update): ask them again."""
        self._wake = -1

    def _first_wake(self, i: int) -> int:
        """The first bar time at or after `i` at which a strategy may act."""
        row, wake = self._starts[i], len(self._starts)
        for s in self._t.strategies:
            wake = min(wake, bisect_right(self._ends, s.wakes_at(row)))
            if wake == i:
                break
        return wake

    def end(self, i: int) -> int:
        """The first bar time at or after `i` at which something may happen besides marks and breaker."""
        t = self._t
        if self._wake < i:
            self._wake = self._first_wake(i)
        end = self._wake
        if "intraday" not in t._flattened:
            end = min(end, self._flatten_at)
        if t.schedule:
            end = min(end, int(np.searchsorted(self._nows, t.schedule[0][0])))
        return end


class _Session:
    """Per-batch arrays: bar-time boundaries and a forward-filled close grid (bar time x symbol)."""

    def __init__(self, batch: BarBatch) -> None:
        frame = batch.bars
        ts = epoch_ns(frame["ts"])
        self.starts, self.ends = time_runs(ts)
        self.times = ts[self.starts]
        names, codes = batch.symbol_index()
        self.index = {s: i for i, s in enumerate(names)}
        self.closes = _filled_grid(self.starts, self.ends, codes, frame["close"].to_numpy(), len(names))


def _filled_grid(
    starts: np.ndarray, ends: np.ndarray, codes: np.ndarray, values: np.ndarray, k: int
) -> np.ndarray:
    """The (bar time x symbol) grid of `values` (rows `starts[t]:ends[t]` at bar time t, in symbol column
    `codes`), forward filled down each column: a symbol without a bar at t keeps its last value (NaN before
    its first). On the flat grid (a flat gather costs half a 2-D fancy index): each cell's source cell,
    itself when it has a value, else the latest cell above it with one (row 0's when none)."""
    n = len(starts)
    grid = np.full(n * k, np.nan)
    grid[np.repeat(np.arange(0, n * k, k), ends - starts) + codes] = values
    source = np.arange(n * k)
    empty = np.flatnonzero(np.isnan(grid))
    source[empty] = empty % k  # row 0 of its column: a lower bound on the column's cells with a value
    columns = source.reshape(n, k)  # a view: the accumulation writes `source`
    np.maximum.accumulate(columns, axis=0, out=columns)
    return grid.take(source).reshape(n, k)


class Trader:
    """Runs strategies on a feed through a broker; see the module documentation for the loop."""

    def __init__(
        self,
        config: Config,
        strategies: Sequence[Strategy],
        feed: Feed,
        broker: Broker,
        clock: Clock,
        *,
        cash: float,
        slippage: SlippageModel | None = None,
        exposure: ExposureManager | None = None,
        earnings_blackout: EarningsBlackout | None = None,
        progress: Progress | None = None,
        allocator: CapitalAllocator | None = None,
        universe: Universe | None = None,
        spill: Path | None = None,
    ) -> None:
        names = [s.name for s in strategies]
        if not strategies or len(set(names)) != len(names):
            raise ConfigError(f"strategies: need one or more with distinct names, got {names}")
        for s in strategies:
            if s.book not in config.risk.exposure.books:
                known = ", ".join(config.risk.exposure.books)
                raise ConfigError(
                    f"strategy {s.name}: book {s.book!r} is not in risk.exposure.books ({known})"
                )
        self.config = config
        self.strategies = list(strategies)
        self._by_name = {s.name: s for s in strategies}
        # strategies that override on_update (the others are not called for every update)
        self._listening = {s.name for s in strategies if type(s).on_update is not Strategy.on_update}
        # every strategy says when it may act (`Strategy.wakes_at`): quiet bar times run in one step
        self._wakeful = all(type(s).wakes_at is not Strategy.wakes_at for s in strategies)
        self.feed, self.broker, self.clock = feed, broker, clock
        self.ledger = Ledger(cash)
        self.slippage = slippage if slippage is not None else SlippageModel(config)
        self.exposure = exposure if exposure is not None else ExposureManager(config)
        self.sizer = DynamicSizer(config)
        self.earnings = earnings_blackout
        self.progress = progress
        self.allocator = allocator
        self.universe = universe
        self.tradable: Collection[str] | None = None  # this session's universe (None: any symbol)
        self.weight = {s.name: 1.0 for s in strategies}  # share of equity each strategy trades with
        self._alloc_open: dict[str, tuple[float, float, bool, str]] = {}  # name -> (capital, pnl, rebal, why)
        self.allocations: list[tuple[Any, ...]] = []
        # the order flow: orders sent, broker updates booked into the ledger, exposure, slippage model and
        # fill rows (rust/src/py/flow.rs); its dicts are read in place
        self.flow = OrderFlowCore(self.ledger, self.exposure, self.slippage, self._last_mark)
        self.orders: dict[str, Order] = self.flow.orders  # not yet folded into `_done`, by client order id
        self.sent: dict[str, int] = self.flow.sent  # their ids -> rank in the run's order of sending
        self.open: dict[str, Order] = self.flow.open
        # the simulated broker takes orders from the flow, and books its events straight into it when no
        # strategy listens to updates
        self._takes_from_flow = isinstance(broker, BookingBroker)
        self._books_into = self._takes_from_flow and not self._listening
        self.curve: list[_Curve] = []  # the equity rows of the batches not yet folded
        # finished results (orders, fills, equity) as frames, added by `_fold` once per batch of `run`: in
        # memory, or written as part files under `spill` (a backtest's memory then stays flat in its sessions)
        self._done = {
            name: ResultRows(name, schema, spill)
            for name, schema in (
                ("orders", _RANKED_ORDER_SCHEMA),
                ("late_orders", _RANKED_ORDER_SCHEMA),
                ("fills", FILL_SCHEMA),
                ("equity", EQUITY_SCHEMA),
            )
        }
        self._folded_rank = 0  # 1 + the highest rank of the orders folded so far
        self.skipped: dict[str, int] = {}
        self.events: list[str] = []
        self.schedule: list[
            tuple[int, str, str, float, str]
        ] = []  # (ts, strategy, symbol, qty, leg) children
        self._contexts = {s.name: _StrategyContext(self, s) for s in self.strategies}
        self._history_bars = max(s.history_bars for s in strategies)
        self._history: pl.DataFrame | None = None  # the last _history_bars bars of each symbol...
        self._history_index: tuple[list[str], np.ndarray] = ([], np.zeros(0, np.intp))  # ...its symbol_index
        self._recent: list[_Encoded] = []  # ...before these batches (cut to that when asked for)
        self.entry_halt = ""  # why new positions may not open now ("" = they may); exits still go out
        self.session: date | None = None
        self._flatten_ns = 0
        self._close_ns = 0
        self._flattened: set[str] = set()  # books flattened this session
        self._sess: _Session | None = None
        self._pos = np.zeros(0)
        self._marked_i = self._marked_ns = -1  # the bar time the exposure marks are of
        # the ledger.held_changes the exposure core holds the symbols of (None: none in this batch)
        self._held: int | None = None
        self.equity = cash  # marked equity at the last bar time
        self._i = 0
        self.now_ns = 0
        self.n_bars = 0
        self.n_sessions = 0

    # ------------------------------------------------------------------------------------------ run
    def run(self) -> TraderResult:
        # A full collection during the run would scan every object of the process (a notebook's, a test
        # runner's: 34-60 ms each here, in a 0.4 s run); frozen, the objects made before the run are not
        # scanned. A process that froze its own objects (before forking workers) keeps them frozen.
        freeze = gc.get_freeze_count() == 0
        if freeze:
            gc.freeze()
        try:
            for batch in self._read_ahead(self.feed.batches()):
                self.run_batch(batch)
                self._fold()
            self.finish()
        finally:
            if freeze:
                gc.unfreeze()
        return self.result()

    def _read_ahead(self, batches: Iterable[BarBatch]) -> Iterator[BarBatch]:
        """The feed's batches, read up to `AHEAD_SESSIONS` (and `AHEAD_ROWS` rows) at a time, each group
        offered to the strategies' `prepare_ahead` before its first batch runs (the memory then holds a
        group, not the run: still flat in the number of sessions)."""
        group: list[BarBatch] = []
        rows = 0
        for batch in batches:
            group.append(batch)
            rows += batch.bars.height
            if len(group) >= AHEAD_SESSIONS or rows >= AHEAD_ROWS:
                yield from self._offer(group)
                group, rows = [], 0
        yield from self._offer(group)

    def _offer(self, group: list[BarBatch]) -> list[BarBatch]:
        """Hand `group`'s batches with bars to the strategies' `prepare_ahead`; `group`."""
        batches = [b for b in group if b.bars.height]
        if batches:
            for s in self.strategies:
                s.prepare_ahead(self._strategy_history(s), batches)
        return group

    def _fold(self) -> None:
        """Move finished results from Python rows into frames, so that a run's memory (and the garbage
        collector's work) stays flat in the number of sessions: the fills and equity rows so far, and the
        orders that are final (terminal, and decided before now: a later decision has a later time, hence
        another client order id, so the duplicate check needs only the rest). Called by `run` between
        batches; a live node driving `run_batch` reads `fills` as a growing list and keeps it."""
        final, ranks = self.flow.take_final(self.now_ns)
        if final:
            ontime, late = self._ranked_orders(final, ranks)
            self._done["orders"].add(ontime)
            self._done["late_orders"].add(late)
            self._folded_rank = max(self._folded_rank, int(ranks[-1]) + 1)
        if self.flow.n_fills:
            self._done["fills"].add(_fills_frame(self.flow.take_fills()))
        if self.curve:
            self._done["equity"].add(_curve_frame(self.curve))
            self.curve = []

    def run_batch(self, batch: BarBatch) -> None:
        if batch.bars.height == 0:
            return
        if batch.session != self.session:
            if self.session is not None:
                self._session_closed()
            self._session_opened(batch.session)
        sess = self._sess = _Session(batch)
        self._held = None
        every = batch.every_ns
        prepared = [(s, self._contexts[s.name], f) for s, f in self._prepare(batch)]
        frame = batch.bars
        self.broker.on_bars(frame, every, batch.symbol_index())
        starts, ends, closes = sess.starts, sess.ends, sess.closes
        ledger, exposure = self.ledger, self.exposure
        self._pos = pos = np.zeros(len(sess.index))  # account shares per symbol of the batch
        self.flow.start_batch(sess.index, pos, closes)  # fills move them; prices from the closes
        for sym, q in ledger.net.items():
            j = sess.index.get(sym)
            if j is not None:
                pos[j] = q
                first = int(np.argmax(~np.isnan(closes[:, j])))
                closes[:first, j] = ledger.marks[sym]  # held from before: valued at its last mark until a bar
        # Valuation prices: a symbol before its first bar of the batch is not held (fills come at its bars),
        # and 0 shares x NaN would make the equity NaN; `closes` keeps its NaN ("no price yet") for `price`.
        values_px = np.nan_to_num(closes, nan=0.0)
        n = len(starts)
        nows = sess.times + every
        # per bar time, as lists (a list's item is a Python int; a numpy scalar costs a conversion each)
        first_rows, end_rows, now_list = starts.tolist(), ends.tolist(), nows.tolist()
        flow = self.flow
        rows: _Rows = ([], [], [], [])  # equity, cash, gross, net of the bar times run so far
        add_equity, add_cash, add_gross, add_net = (column.append for column in rows)
        marked_to = 0  # the bar times before this one have their marked values in `nets`/`grosses`...
        marked_from = 0  # ...from this one on (recomputed when an update may have moved a position)
        ahead = 1  # how many bar times the next step marks: positions that moved may well move again
        nets: list[float] = []
        grosses: list[float] = []
        held_elsewhere = False  # a held symbol has no bar in this batch...
        held_seen = -1  # ...as of this `ledger.held_changes` (a symbol entering or leaving net changes it)
        quiet = _Quiet(self, sess, nows) if self._wakeful else None
        i = 0
        while i < n:
            if quiet is not None and not self.open and flow.repricing is None:
                end = quiet.end(i)
                if end - i >= _QUIET_MIN:  # nothing happens at bar times i..end-1 but marks and the breaker
                    i = self._run_quiet(i, end, values_px, nows, rows)
                    continue
            lo, hi, now = first_rows[i], end_rows[i], now_list[i]
            self._i, self.now_ns = i, now
            flow.row = i
            self.clock.advance_to(now)
            if flow.repricing is not None:  # `apply_early`: as if its updates were applied at this poll
                early, flow.repricing = flow.repricing, None
                for order in early.values():
                    flow.add_pending(order, 0.0)
            if self.open and self._poll(now):  # fills move `pos` (and only updates do)
                marked_to, ahead = i, 1
            if i >= marked_to:
                marked_from, marked_to = i, min(i + ahead, n)
                ahead = min(2 * ahead, _MARKED_AHEAD)
                nets, grosses = _marked(pos, values_px[marked_from:marked_to])
            if ledger.held_changes != held_seen:
                held_seen = ledger.held_changes
                held_elsewhere = any(sym not in sess.index for sym in ledger.net)
            net, gross = nets[i - marked_from], grosses[i - marked_from]
            if held_elsewhere:  # held symbols without a bar in this batch
                for sym, q in ledger.net.items():
                    if sym not in sess.index:
                        net += q * ledger.marks[sym]
                        gross += abs(q * ledger.marks[sym])
            equity = self.equity = ledger.cash + net
            # update_equity's step, minus its wrapper; it sets the exposure manager's equity first
            halted = exposure.update_breaker(equity, now)
            add_equity(equity)
            add_cash(ledger.cash)
            add_gross(gross)
            add_net(net)
            if halted and "*" not in self._flattened:
                self._flatten(None, f"circuit breaker: {exposure.state_reason}")
            elif now >= self._flatten_ns and "intraday" not in self._flattened:
                self._flatten("intraday", "end of day")
            if self.schedule and self.schedule[0][0] <= now:
                self._send_due(now)
            for strategy, ctx, frame_s in prepared:
                ctx.bar_index, ctx.row_start, ctx.row_end, ctx.now_ns = i, lo, hi, now
                strategy.on_bars(ctx, frame_s.slice(lo, hi - lo))
            if quiet is not None:
                quiet.woken()
            self.n_bars += hi - lo
            i += 1
        self.curve.append((nows, *map(np.array, rows)))
        for sym, j in sess.index.items():  # the ledger's marks: the batch's last closes
            if sym in ledger.net:
                ledger.mark(sym, float(closes[-1, j]))
        if self._history_bars:
            self._recent.append((frame, *batch.symbol_index()))
            if len(self._recent) >= self._history_bars:  # bounds the memory when `advance` takes every batch
                self._history_frame()
        if self.progress is not None:
            self.progress(batch.session, frame.height)

    def _run_quiet(self, i: int, end: int, values_px: np.ndarray, nows: np.ndarray, rows: _Rows) -> int:
        """Bar times i..end-1 at once, where no order is open and nothing is due (`_Quiet`): their marks,
        equity rows and breaker steps, in numpy and one Rust call; a breaker that halts stops the stretch
        at that bar time, whose flatten then runs as the loop's would. The bar time to go on from."""
        sess, ledger = self._sess, self.ledger
        assert sess is not None
        pos = self._pos
        net, gross = marked_values(pos, values_px[i:end])
        if len(ledger.net) != np.count_nonzero(pos):  # held symbols without a bar in this batch
            for sym, q in ledger.net.items():  # added as the loop adds them
                if sym not in sess.index:
                    net = net + q * ledger.marks[sym]
                    gross = gross + abs(q * ledger.marks[sym])
        equity = ledger.cash + net
        halting = "*" not in self._flattened  # a halt flattens every book once
        taken = self.exposure.update_breaker_path(equity, nows[i:end], halting)
        for column, values in zip(rows, (equity, np.full(taken, ledger.cash), gross, net), strict=True):
            column.extend(values[:taken].tolist())
        k = i + taken
        self._i, self.now_ns = k - 1, int(nows[k - 1])
        self.flow.row = k - 1
        self.equity = float(equity[taken - 1])
        self.clock.advance_to(self.now_ns)
        self.n_bars += int(sess.ends[k - 1] - sess.starts[i])
        if halting and self.exposure.state == "HALTED":
            self._flatten(None, f"circuit breaker: {self.exposure.state_reason}")
        return k

    def finish(self) -> None:
        if self.session is not None:
            self._session_closed()
            self.session = None

    def result(self) -> TraderResult:
        """The run's results: what `_fold` moved into frames and the rows since (a live node calls this
        more than once: the rows it adds here are copies, its lists stay as they are)."""
        done = self._done
        ontime, late = self._ranked_orders(*self.flow.ranked())
        return TraderResult(
            rows={
                "orders": done["orders"].plus(ontime),
                "late_orders": done["late_orders"].plus(late),
                "fills": done["fills"].plus(_fills_frame(self.flow.fill_columns())),
                "equity": done["equity"].plus(_curve_frame(self.curve)),
            },
            positions=self.ledger.positions(),
            skipped=dict(sorted(self.skipped.items())),
            bars=self.n_bars,
            sessions=self.n_sessions,
            events=self.events,
            allocations=pl.DataFrame(self.allocations, schema=ALLOCATION_SCHEMA, orient="row"),
        )

    # ------------------------------------------------------------------------------ session edges
    def _session_opened(self, session: date) -> None:
        open_dt, close_dt = session_bounds(session)
        self.session = session
        self.n_sessions += 1
        self._close_ns = utc_ns(close_dt)
        self._flatten_ns = self._first_flatten_ns(utc_ns(open_dt), self._close_ns)
        self._flattened = set()
        self.exposure.should_emergency_flatten(self.ledger.equity(), utc_ns(open_dt))
        if self.allocator is not None:
            self._allocate(session)
        if self.universe is not None:
            self.tradable = self.universe(session)
        self._notify(SessionEvent("open", session, utc_ns(open_dt)))

    def _first_flatten_ns(self, open_ns: int, close_ns: int) -> int:
        """The first minute at which the exposure manager asks for the end-of-day flatten (binary search
        over the session's minutes: its rule is monotone within a session)."""
        lo, hi = 0, (close_ns - open_ns) // NS_PER_MINUTE
        while lo < hi:
            mid = (lo + hi) // 2
            if self.exposure.should_flatten_intraday(open_ns + mid * NS_PER_MINUTE):
                hi = mid
            else:
                lo = mid + 1
        return open_ns + lo * NS_PER_MINUTE

    def _session_closed(self) -> None:
        assert self.session is not None
        self.clock.advance_to(max(self._close_ns, self.clock.now_ns()))
        self.now_ns = self._close_ns
        if self.open:
            self._poll(self._close_ns)
        for _ in self.schedule:  # children never outlive their session (the feed ended before they were due)
            self._skip("child order not due before the close")
        self.schedule = []
        if self.allocator is not None:
            self._record_performance(self.session)
        self._notify(SessionEvent("close", self.session, self._close_ns))

    # --------------------------------------------------------------------------------- allocation
    def _strategy_pnl(self, name: str) -> float:
        """A strategy's P&L so far at the ledger's marks: realised + unrealised - fees."""
        marks = self.ledger.marks
        return sum(
            p.realized - p.fees + p.qty * (marks[sym] - p.avg_price)
            for (owner, sym), p in self.ledger.book.items()
            if owner == name
        )

    def _allocate(self, session: date) -> None:
        """Adopt the allocator's plan at a session open when it asks for a rebalance (always the first)."""
        assert self.allocator is not None
        equity = self.ledger.equity()
        metrics: dict[str, Any] = {s.name: None for s in self.strategies}
        rebalance, why = True, "first allocation"
        if self._alloc_open and equity > 0:
            target = self.allocator.plan(equity, metrics)
            current = {n: w * equity for n, w in self.weight.items()}
            decision = self.allocator.rebalance_needed(current, target.capital, now=session, equity=equity)
            rebalance, why = bool(decision), decision.reason
        elif equity <= 0:
            rebalance, why = False, f"equity {equity:g} <= 0: weights kept"
        if rebalance:
            capital = self.allocator.allocate_capital(equity, metrics, now=session)
            self.weight = {n: c / equity for n, c in capital.items()}
        self._alloc_open = {
            n: (w * equity, self._strategy_pnl(n), rebalance, why) for n, w in self.weight.items()
        }

    def capital(self) -> dict[str, float]:
        """Capital each strategy was given at this session's open (weight x equity; allocator runs only)."""
        return {n: v[0] for n, v in self._alloc_open.items()}

    def _record_performance(self, session: date) -> None:
        """Each strategy's return of the session to the allocator, and one allocations row per strategy."""
        assert self.allocator is not None
        for name, (capital, pnl_open, rebalanced, why) in self._alloc_open.items():
            pnl = self._strategy_pnl(name) - pnl_open
            ret = pnl / capital if capital > 0 else 0.0
            self.allocator.update_strategy_performance(name, {session: ret})
            self.allocations.append((session, name, self.weight[name], capital, pnl, ret, rebalanced, why))

    def allocation_room(self, strategy: Strategy, symbol: str, sign: int, price: float) -> float:
        """Most shares `strategy` may add on side `sign` in `symbol` before its gross exposure could pass
        weight x equity x its book's gross cap. Open orders count at their worst: a symbol's exposure is
        max(|filled + open buys|, |filled - open sells|) (a pending exit is not counted as done, so the
        cap holds for whatever subset of the open orders fills), valued at this bar time's prices. With
        A the value left for `symbol`, the room is A / price - sign x filled - open shares on that side."""
        name = strategy.name
        filled: dict[str, float] = {}
        side_open: dict[tuple[str, int], float] = {}  # (symbol, sign) -> open orders' remaining shares
        for (owner, sym), p in self.ledger.book.items():
            if owner == name and p.qty:
                filled[sym] = p.qty
        for o in self.open.values():
            if o.strategy == name:
                key = (o.symbol, o.sign)
                side_open[key] = side_open.get(key, 0.0) + o.leaves_qty
        limit = self.weight[name] * self.equity * self.config.risk.gross_cap_pct(strategy.book) / 100.0
        others = 0.0
        for sym in {*filled, *(k[0] for k in side_open)} - {symbol}:
            f = filled.get(sym, 0.0)
            worst = max(abs(f + side_open.get((sym, 1), 0.0)), abs(f - side_open.get((sym, -1), 0.0)))
            px = self.price(sym)
            others += worst * (px if px == px else 0.0)
        room = (limit - others) / price - sign * filled.get(symbol, 0.0) - side_open.get((symbol, sign), 0.0)
        return max(0.0, room)

    def _notify(self, event: SessionEvent) -> None:
        if event.kind == "close":
            for s in self.strategies:
                s.on_session_close(self._contexts[s.name])

    def _history_frame(self) -> pl.DataFrame | None:
        """The last `_history_bars` bars of each symbol before this batch (None: none yet). The cut runs
        only when asked for (tail(history + recent) = tail(tail(history) + recent)), so a live bar time
        whose strategies all `advance` costs no Polars work here."""
        if self._recent:
            parts = self._recent
            if self._history is not None:
                parts = [(self._history, *self._history_index), *parts]
            frame, names, codes = _tail_of_parts(parts, self._history_bars)
            self._history, self._history_index = frame, (names, codes)
            self._recent = []
        return self._history

    def _strategy_history(self, s: Strategy) -> pl.DataFrame | None:
        """The last `s.history_bars` bars of each symbol before this batch (None: it wants none, or none
        yet)."""
        history = self._history_frame() if s.history_bars else None
        if history is not None and s.history_bars < self._history_bars:
            history = _tail_per_symbol(history, s.history_bars, self._history_index[1])
        return history

    def _prepare(self, batch: BarBatch) -> list[tuple[Strategy, pl.DataFrame]]:
        out = []
        ts = batch.bars["ts"]
        one_bar_time = ts[0] == ts[-1]
        for s in self.strategies:
            frame = s.advance(batch.bars) if one_bar_time else None
            if frame is None:
                bars = batch.bars
                history = self._strategy_history(s)
                if history is not None:
                    bars = pl.concat([history, bars])
                frame = s.prepare(bars, batch.bars.height)
            if frame is None:
                frame = batch.bars
            if frame.height != batch.bars.height:
                raise StateError(
                    f"strategy {s.name}: prepare gave {frame.height} rows for a batch of {batch.bars.height}"
                )
            out.append((s, frame))
        return out

    # --------------------------------------------------------------------------------- order flow
    def submit(
        self,
        strategy: Strategy,
        request: OrderRequest,
        leg: str,
        *,
        reducing: bool = False,
        checked: bool = False,
    ) -> str | None:
        """Check `request` against the exposure caps and send it; the client order id, or None (counted
        in `skipped`) when refused. `checked`: the caller found this very request allowed by every cap
        below at this bar time (`_StrategyContext.enter`), so the checks are not run again."""
        now = self.now_ns
        price = self.price(request.symbol)
        ref = request.limit_price or request.stop_price or price
        if ref != ref:  # NaN
            self._skip("no price yet")
            return None
        if not (reducing or checked):  # closing a strategy's own position is never refused
            if self.entry_halt:
                self._skip(f"entries halted: {self.entry_halt}")
                return None
            if strategy.book in self._flattened or "*" in self._flattened:
                self._skip("book flattened for the session")
                return None
            if self.tradable is not None and request.symbol not in self.tradable:
                self._skip("not in the universe")
                return None
            self.mark_exposure()
            refused = self.exposure.refusal(request.symbol, request.side, request.qty, ref, strategy.book)
            if refused is not None:  # counted by its cap: "exposure: " and the reason's first two words
                self._skip(refused)
                return None
            if self.allocator is not None and request.qty > self.allocation_room(
                strategy, request.symbol, request.sign, ref
            ):
                self._skip("allocation: strategy gross exposure")
                return None
        # the id, the forecast, the order, its pending exposure at this bar time's `price`; sent
        if self._takes_from_flow:
            return self.broker.submit_from(  # type: ignore[attr-defined]
                self.flow, strategy.name, strategy.book, leg, request, now, ref, price
            )
        cid = self.flow.submit(strategy.name, strategy.book, leg, request, now, ref, price)
        self.broker.submit(cid, request, now)
        return cid

    def cancel(self, cid: str) -> None:
        order = self.open.get(cid)
        if order is not None:
            self.broker.cancel(cid, self.now_ns)

    def replace(self, strategy: Strategy, cid: str, leg: str, **changes: float | None) -> str:
        """Replace an open order by a new one (same symbol, side, type, tif); a price not given is kept,
        the quantity defaults to what the old order has left. The old order ends "replaced" when the
        broker says so; until then both count as pending exposure."""
        old = self.open.get(cid)
        if old is None or old.strategy != strategy.name:
            raise StateError(
                f"strategy {strategy.name}: replace of {cid}, which is not one of its open orders"
            )
        r = old.request
        request = OrderRequest(
            r.symbol,
            r.side,
            changes.get("qty") or old.leaves_qty,
            r.type,
            r.time_in_force,
            changes.get("limit_price") or r.limit_price,
            changes.get("stop_price") or r.stop_price,
        )
        new = client_order_id(strategy.name, r.symbol, self.now_ns, leg)
        order = Order(
            new,
            strategy.name,
            strategy.book,
            leg,
            request,
            self.now_ns,
            old.decision_price,
            old.forecast_bps,
            updated_ns=self.now_ns,
        )
        self.flow.send(order)  # pending until the old order's "replaced" arrives
        self.broker.replace(cid, new, self.now_ns, **{k: v for k, v in changes.items() if v is not None})
        return new

    def _on_update(self, u: OrderUpdate) -> None:
        order = self.flow.apply(u)
        if order.strategy in self._listening:
            self._by_name[order.strategy].on_update(self._contexts[order.strategy], order, u)

    def _poll(self, now_ns: int) -> bool:
        """Book the broker's updates up to `now_ns`; whether there were any."""
        if self._books_into:
            return self.broker.poll_into(self.flow, now_ns)  # type: ignore[attr-defined]
        updates = self.broker.poll(now_ns)
        for update in updates:
            self._on_update(update)
        return bool(updates)

    def open_orders(self, strategy: str, symbol: str) -> list[Order]:
        """`strategy`'s open orders in `symbol`, in the order sent."""
        return self.flow.open_orders(strategy, symbol)

    def fill_rows(self, start: int = 0) -> list[tuple[Any, ...]]:
        """FILL_SCHEMA rows of the fills not yet folded, from the `start`-th on (a live node reads the new
        ones after each bar time; `flow.n_fills` counts them)."""
        return _fills_frame(self.flow.fill_columns(start)).rows()

    @property
    def _repricing(self) -> dict[tuple[str, str], Order] | None:
        """`apply_early`: the orders whose pending exposure its updates moved, by (book, symbol), to be
        priced at the next bar time's closes (None: none)."""
        return self.flow.repricing

    @_repricing.setter
    def _repricing(self, value: dict[tuple[str, str], Order] | None) -> None:
        self.flow.repricing = value

    def _send_due(self, now: int) -> None:
        due = [c for c in self.schedule if c[0] <= now]
        self.schedule = [c for c in self.schedule if c[0] > now]
        for _, name, symbol, qty, leg in due:
            strategy = self._by_name[name]
            side = "buy" if qty > 0 else "sell"
            self.submit(strategy, OrderRequest(symbol, side, abs(qty)), leg)

    def _flatten(self, book: str | None, why: str) -> None:
        """Cancel open orders and scheduled children, then close positions, of `book` (None: every book)."""
        self._flattened.add(book or "*")
        canceled = 0
        for order in list(self.open.values()):
            if book is None or order.book == book:
                self.broker.cancel(order.client_order_id, self.now_ns)
                canceled += 1
        self.schedule = [c for c in self.schedule if book is not None and self._book_of(c[1]) != book]
        closed = 0
        for s in self.strategies:
            if book is not None and s.book != book:
                continue
            for (name, symbol), pos in list(self.ledger.book.items()):
                if name == s.name and pos.qty:
                    side = "sell" if pos.qty > 0 else "buy"
                    if self.submit(s, OrderRequest(symbol, side, abs(pos.qty)), "flatten", reducing=True):
                        closed += 1
        if closed or canceled or book is None:
            at = from_utc_ns(self.now_ns).astimezone(NEW_YORK)
            what = f"{closed} positions closed, {canceled} orders canceled"
            self.events.append(f"{self.session} {at:%H:%M} New York, {why}: {what}")

    def warm_up(self, bars: pl.DataFrame) -> None:
        """Closed bars from before the feed's first (BAR_SCHEMA, sorted by ts then symbol) as the strategies'
        history, which their features warm up on (a live node starting mid-stream); nothing trades on them."""
        if self._history_bars and bars.height:
            self._recent = [(bars, *symbol_index(bars["symbol"]))]
            self._history = None
            self._history_frame()

    # -------------------------------------------------------------------------------- checkpoints
    def checkpoint(self) -> dict[str, Any]:
        """This bar boundary's state that orders and their updates cannot rebuild, as JSON-able data (a
        live node journals it): the slippage model's learned state, the breaker, each strategy's `state()`,
        the session's flattened books, the scheduled child orders, the marks and the marked equity."""
        return {
            "now_ns": self.now_ns,
            "session": None if self.session is None else self.session.isoformat(),
            "flattened": sorted(self._flattened),
            "schedule": self.schedule,
            "marks": self.ledger.marks,
            "equity": self.equity,
            "slippage": self.slippage.to_json(),
            "breaker": self.exposure.breaker_state(),
            "strategies": {s.name: s.state() for s in self.strategies},
        }

    def resume(
        self,
        checkpoint: dict[str, Any] | None,
        orders: Iterable[Order],
        updates: Sequence[OrderUpdate],
        seen: int,
    ) -> None:
        """Continue after a restart without replaying bars: the `orders` sent before are known again (open
        ones as pending exposure) and `updates` (every update booked before, in order) go through the
        ledger, exposure and order states as when they happened. The `checkpoint` (None: none was taken)
        already includes the first `seen` updates, so the slippage model, breaker and strategies are
        restored from it after those and learn from the rest only."""
        if checkpoint is not None:
            self.ledger.marks.update(checkpoint["marks"])
        for order in orders:
            self.flow.send(order)
        for u in updates[:seen]:
            self._on_update(u)
        if checkpoint is not None:
            if checkpoint["session"] is not None:
                self._session_opened(date.fromisoformat(checkpoint["session"]))
                self._flattened = set(checkpoint["flattened"])
            self.now_ns = int(checkpoint["now_ns"])
            self.equity = float(checkpoint["equity"])
            due = checkpoint["schedule"]
            self.schedule = [(int(ts), name, sym, float(q), leg) for ts, name, sym, q, leg in due]
            self.slippage.load_json(checkpoint["slippage"], "the journal's checkpoint")
            self.exposure.restore_breaker_state(checkpoint["breaker"])
            for s in self.strategies:
                if s.name in checkpoint["strategies"]:  # a strategy added since starts afresh
                    s.restore(checkpoint["strategies"][s.name])
        for u in updates[seen:]:
            self._on_update(u)

    def apply_early(self, updates: Sequence[OrderUpdate], now_ns: int) -> bool:
        """Apply the broker's `updates` (all at or before `now_ns`) before the bar time closing at `now_ns` is
        run, leaving the state its poll would leave (a live node, as its clock moves: the work is then off
        the path from the bars to the orders). Pending exposure is priced at the current close
        (`flow.add_pending`), so what these updates moved is priced again at that bar time's poll. False, and
        nothing applied, when that cannot be promised: a strategy listens to updates (it would see them
        outside its bar time), no order is open (the poll would not run), or `now_ns` is past the
        session's close (the close's own poll comes first)."""
        if self._listening or not self.open or self.session is None or now_ns > self._close_ns:
            return False
        if self._repricing is None:
            self._repricing = {}
        for update in updates:
            self._on_update(update)
        return True

    def trim_history(self) -> None:
        """Cut the strategies' history to its last `history_bars` bars now if `run_batch` would in its next
        batch (it does every `history_bars` batches: a Polars group-by of milliseconds); a live node calls
        this once a bar time's orders are out, so that the cut never runs between its bars and orders."""
        if self._history_bars and len(self._recent) >= self._history_bars - 1:
            self._history_frame()

    def poll_broker(self, now_ns: int) -> None:
        """Apply the broker's updates up to `now_ns` outside the bar loop (a live node shutting down)."""
        self._poll(now_ns)

    def flatten_all(self, why: str) -> None:
        """Cancel every open order and close every position now (a live node shutting down)."""
        self._flatten(None, why)

    def mark_exposure(self) -> None:
        """Mark the exposure manager's positions to this bar time's closes, once per bar time and only
        when an order is about to be checked (its caps are the only reader of the marks)."""
        if (self._marked_i == self._i and self._marked_ns == self.now_ns) or self._sess is None:
            return
        self._marked_i, self._marked_ns = self._i, self.now_ns
        if self._held != self.ledger.held_changes:
            index = self._sess.index
            names = [sym for sym in self.ledger.net if sym in index]
            self.exposure.hold(names, [index[s] for s in names])  # their columns in the close grid
            self._held = self.ledger.held_changes
        self.exposure.mark_row(self._sess.closes[self._i])  # one call, no string lookups

    def _book_of(self, name: str) -> str:
        return self._by_name[name].book

    def price(self, symbol: str) -> float:
        """The close of `symbol` at this bar time, else (no bar of it yet) its last mark, else NaN: the
        order flow's rule (`OrderFlowCore.price`), which values pending exposure by it in the same call."""
        return self.flow.price(symbol)

    def _last_mark(self, symbol: str) -> float:
        """The price before any batch: the ledger's mark (NaN: none)."""
        return self.ledger.marks.get(symbol, math.nan)

    def _skip(self, reason: str) -> None:
        """Count an intent not sent, by kind of reason."""
        self.skipped[reason] = self.skipped.get(reason, 0) + 1

    def _ranked_orders(self, orders: list[Order], ranks: np.ndarray) -> tuple[pl.DataFrame, pl.DataFrame]:
        """_RANKED_ORDER_SCHEMA rows of `orders` (in the order sent, their `ranks`): those sent after every
        order folded so far (they follow them), and the others (late: they go between them)."""
        k = int(np.searchsorted(ranks, self._folded_rank))
        return self._orders_frame(orders[k:], ranks[k:]), self._orders_frame(orders[:k], ranks[:k])

    def _orders_frame(self, orders: list[Order], ranks: np.ndarray) -> pl.DataFrame:
        """_RANKED_ORDER_SCHEMA rows of `orders` (their `ranks`), built column by column (each column one
        C-level pass over the orders, no tuple per order; numbers as numpy columns)."""
        if not orders:
            return _NO_ORDERS
        text, numbers, (decision_ns, updated_ns), signs = order_columns(orders)
        qty, decision, forecast, filled, notional, fees = numbers
        traded = filled > 0
        with np.errstate(divide="ignore", invalid="ignore"):  # orders with no fill: null below
            avg = notional / filled
            bps = _realized_bps(signs, decision, avg)
        columns: dict[str, Any] = {
            "rank": ranks,
            **dict(zip(_ORDER_TEXT, text, strict=True)),
            "qty": qty,
            "decision_ts": decision_ns,
            "decision_price": decision,
            "forecast_bps": forecast,
            "filled_qty": filled,
            "avg_price": _null_unless(traded, avg),
            "fees": fees,
            "realized_bps": _null_unless(traded, bps),
            "updated_ts": updated_ns,
        }
        for name in ("limit_price", "stop_price"):  # None when the order has none
            columns[name] = pl.Series(name, columns[name], dtype=pl.Float64)
        return build_frame(_RANKED_ORDER_SCHEMA, columns)


# `_orders_frame` of no orders (most batches have no late ones): one frame, as building an empty frame from
# a schema costs 90 us; it goes only to `ResultRows.add`/`plus`, which keep no empty frame
_NO_ORDERS = pl.DataFrame(schema=_RANKED_ORDER_SCHEMA)

# the columns of `order_columns`' lists, in its order
_ORDER_TEXT = (
    "client_order_id",
    "strategy",
    "book",
    "leg",
    "status",
    "reason",
    "symbol",
    "side",
    "type",
    "time_in_force",
    "limit_price",
    "stop_price",
)


def _null_unless(valid: np.ndarray, values: np.ndarray) -> pl.Series:
    """`values` with nulls where not `valid` (0.0 behind them, as a column built from Python None has)."""
    return pl.Series(np.where(valid, values, 0.0)).set(pl.Series(~valid), None)  # type: ignore[arg-type]


class _StrategyContext:
    """The `engine.strategy.Context` the Trader gives one strategy."""

    def __init__(self, trader: Trader, strategy: Strategy) -> None:
        self._t = trader
        self._s = strategy
        self.price = trader.flow.price  # `Trader.price`'s rule with no Python frame in between
        self._positions = trader.ledger.book  # the core books fills into this very dict
        self._name = strategy.name
        self.now_ns = 0
        self.bar_index = 0
        self.row_start = 0
        self.row_end = 0

    @property
    def session(self) -> date:
        assert self._t.session is not None
        return self._t.session

    @property
    def equity(self) -> float:
        """The equity the strategy sizes against: its weight (1 without an allocator) x the account's."""
        return self._t.equity * self._t.weight[self._s.name]

    def position(self, symbol: str) -> float:
        pos = self._positions.get((self._name, symbol))  # ledger.position, minus a call per bar
        return 0.0 if pos is None else pos.qty

    def open_orders(self, symbol: str | None = None) -> list[Order]:
        name = self._s.name
        if symbol is not None:
            return self._t.flow.open_orders(name, symbol)
        return [o for o in self._t.open.values() if o.strategy == name]

    def open_shares(self, symbol: str) -> float:
        return self._t.flow.open_shares(self._s.name, symbol)

    def submit(self, request: OrderRequest, leg: str = "0") -> str | None:
        return self._t.submit(self._s, request, leg)

    def enter(self, symbol: str, side: str, atr: float, leg: str = "entry") -> float:
        t, s = self._t, self._s
        price = t.price(symbol)
        if not (price > 0 and atr > 0):
            t._skip("no price or ATR")
            return 0.0
        if t.entry_halt:
            t._skip(f"entries halted: {t.entry_halt}")
            return 0.0
        if s.book in t._flattened or "*" in t._flattened:
            t._skip("book flattened for the session")
            return 0.0
        if t.tradable is not None and symbol not in t.tradable:
            t._skip("not in the universe")
            return 0.0
        t.mark_exposure()
        # refused whatever the size (no sizing or calendar work), counted as `submit` counts it
        if t.exposure.refusal(symbol, side, 1.0, price, s.book, t.skipped) is not None:
            return 0.0
        blocked, why = entry_blocked(
            self.now_ns, symbol, config=t.config.execution, earnings_blackout=self._blackout
        )
        if blocked:
            t._skip("toxic time: " + why.split(" of the ")[0].split(" for ")[0])
            return 0.0
        qty = t.sizer.calculate_position_size(self.equity, price, atr, symbol)
        # a positive answer is a quantity the exposure caps allow as it is (checked, not inferred)
        allowed = t.exposure.max_allowed_qty(symbol, side, qty, price, s.book)
        qty = allowed
        sign = side_sign(side)
        if t.allocator is not None:
            qty = min(qty, int(t.allocation_room(s, symbol, sign, price)))
        if qty <= 0:
            t._skip("sized to zero")
            return 0.0
        if not t.config.execution.enable_time_slicing:
            # every check of `submit` passed for this order just now: at or below the allocation room,
            # and the very quantity the caps allowed (a smaller one is checked again)
            request = OrderRequest(symbol, side, float(qty))
            return qty if t.submit(s, request, leg, checked=qty == allowed) else 0.0
        plan = plan_parent_order(qty, self.now_ns, config=t.config.execution, model=t.slippage, symbol=symbol)
        children = [
            (int(ts), int(q))
            for ts, q in plan.children.select(pl.col("ts").dt.epoch("ns"), "qty").iter_rows()
            if q > 0
        ]
        sent = 0.0
        for k, (ts, q) in enumerate(children):
            if ts <= self.now_ns:
                sent += q if t.submit(s, OrderRequest(symbol, side, float(q)), f"{leg}.{k}") else 0.0
            else:
                t.schedule.append((ts, s.name, symbol, float(sign * q), f"{leg}.{k}"))
                sent += q
        t.schedule.sort(key=lambda c: c[0])
        return sent

    def close(self, symbol: str, leg: str = "exit") -> str | None:
        t, name = self._t, self._s.name
        t.schedule = [c for c in t.schedule if not (c[1] == name and c[2] == symbol)]
        for order in self.open_orders(symbol):
            t.broker.cancel(order.client_order_id, self.now_ns)
        pos = self.position(symbol)
        if pos == 0:
            return None
        return t.submit(
            self._s, OrderRequest(symbol, "sell" if pos > 0 else "buy", abs(pos)), leg, reducing=True
        )

    def cancel(self, client_order_id: str) -> None:
        self._t.cancel(client_order_id)

    def replace(
        self,
        client_order_id: str,
        leg: str,
        *,
        qty: float | None = None,
        limit_price: float | None = None,
        stop_price: float | None = None,
    ) -> str:
        return self._t.replace(
            self._s, client_order_id, leg, qty=qty, limit_price=limit_price, stop_price=stop_price
        )

    def _blackout(self, symbol: str, t: Any) -> bool:
        e = self._t.earnings
        return e is not None and e.is_blacked_out(symbol, t.astimezone(NEW_YORK).date())


def _fills_frame(columns: tuple[Any, ...]) -> pl.DataFrame:
    """FILL_SCHEMA frame of the order flow's fill columns (`OrderFlowCore.fill_columns`)."""
    ts, text, (qty, price, fee, realized, decision, forecast), signs = columns
    return build_frame(
        FILL_SCHEMA,
        {
            "ts": ts,
            **dict(zip(("client_order_id", "strategy", "book", "symbol", "side"), text, strict=True)),
            "qty": qty,
            "price": price,
            "fee": fee,
            "realized_pnl": realized,
            "decision_price": decision,
            "forecast_bps": forecast,
            "realized_bps": _realized_bps(signs, decision, price),
        },
    )


# bars (BAR_SCHEMA, in time order) with their symbols' encoding: the distinct names, sorted, and each row's
# position in them (`BarBatch.symbol_index`)
_Encoded = tuple[pl.DataFrame, list[str], np.ndarray]


def _last_of_each(codes: np.ndarray, n: int) -> np.ndarray:
    """Mask of the rows that are among the last `n` rows of their code (codes >= 0)."""
    if not len(codes):
        return np.zeros(0, dtype=bool)
    small = codes.max() < 1 << 16  # then a stable sort is a radix sort
    # by code, each code's rows in their order
    order = np.argsort(codes.astype(np.uint16) if small else codes, kind="stable")
    by_code = codes[order]
    ends = np.flatnonzero(np.r_[by_code[1:] != by_code[:-1], True]) + 1  # of each code's run in `order`
    starts = np.r_[0, ends[:-1]]
    inside = np.zeros(len(order) + 1, dtype=np.intp)  # +1 where a run's last n rows start, -1 at its end
    inside[np.maximum(starts, ends - n)] = 1
    inside[ends] -= 1
    keep = np.zeros(len(order), dtype=bool)
    keep[order[np.cumsum(inside[:-1]) > 0]] = True
    return keep


def _tail_per_symbol(bars: pl.DataFrame, n: int, codes: np.ndarray | None = None) -> pl.DataFrame:
    """The last `n` rows of each symbol, in the frame's order; `codes`: the rows' symbol codes when known
    (else the strings are encoded)."""
    if codes is None:
        codes = symbol_index(bars["symbol"])[1]
    return bars.filter(pl.Series(_last_of_each(codes, n)))


def _holding_suffix(part: _Encoded, symbols: int, n: int) -> _Encoded | None:
    """The last rows of `part` (about n x `symbols` and a quarter more), when they hold at least `n` rows
    of each of the `symbols` symbols of some parts ending with it: the last n rows of each of those are
    then all in them. None when they do not (or the part does not have every symbol)."""
    frame, names, codes = part
    if not symbols or len(names) != symbols:
        return None
    rows = min(frame.height, n * symbols + n * symbols // 4)
    tail = codes[frame.height - rows :]
    if np.bincount(tail, minlength=symbols).min() < n:
        return None
    return frame.slice(frame.height - rows), names, tail


def _tail_of_parts(parts: Sequence[_Encoded], n: int) -> _Encoded:
    """The last `n` rows of each symbol of the `parts` one after another, in their order, with their
    encoding: from the parts' encodings (no string is hashed, no window expression per symbol)."""
    names = sorted({name for _, part_names, _ in parts for name in part_names})
    suffix = _holding_suffix(parts[-1], len(names), n)
    if suffix is not None:  # a session's last rows: the older parts and rows have nothing to keep
        parts = [suffix]
    at = {name: i for i, name in enumerate(names)}
    codes = np.concatenate([np.array([at[s] for s in part_names], np.intp)[c] for _, part_names, c in parts])
    keep = _last_of_each(codes, n)
    # each part's kept rows, one chunk in all: the history stays one chunk however many batches it saw
    ends = np.cumsum([frame.height for frame, _, _ in parts])
    pieces = [
        frame.filter(pl.Series(keep[end - frame.height : end]))
        for (frame, _, _), end in zip(parts, ends, strict=True)
        if keep[end - frame.height : end].any()
    ]
    return pl.concat(pieces, rechunk=True), names, codes[keep]
