"""`SimBroker`: the engine's Broker port on the Rust fill simulator (`execution.fills.FillSimulator`), the
same matching code the local venue serves over HTTP.

The engine hands over each batch's bars once (`on_bars`); `poll(now)` then feeds the simulator the bar
times that have closed by `now` (only while orders are open: with none there is nothing to match) and
returns what it reported. The batch's columns are loaded into the simulator once (`load_bar_arrays`), which
keeps track of its bar times: each call brings it to a time (`catch_up`: the bar times closed by then and not
fed yet) and its events come back as `OrderUpdate`s made in one call (`drain_updates`), or, for an engine
whose strategies do not listen to updates, are booked straight into its order flow (`poll_into`: catch-up,
advance and booking in one call): no frame, array or column list per bar time.

The simulator keeps every order it was given (the venue answers queries about closed orders from it); the
backtest has no use for closed ones, so a batch of a new day that finds no order open starts a fresh
simulator, and a long backtest's memory stays flat in its sessions. Nothing carries over that could matter:
an order only meets market data of its own session.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import polars as pl

from hybridtrader._core import OrderFlowCore
from hybridtrader.engine.events import OrderUpdate, symbol_index
from hybridtrader.engine.orders import OrderRequest
from hybridtrader.errors import DataError
from hybridtrader.execution.fills import FillSimulator
from hybridtrader.market.timeconv import NS_PER_DAY, epoch_ns

# an OrderUpdate from its fields' tuple, by tuple.__new__ (C; the named tuple's own __new__ is a Python frame)
_UPDATE = partial(tuple.__new__, OrderUpdate)


class SimBroker:
    """Orders go to the simulator; market data comes in batches; `poll` advances it to now (matching,
    acks, expirations) and turns what it reports into `OrderUpdate`s. Positions are the sum of the fills
    it reported (summed by the simulators when asked: nothing per event)."""

    def __init__(self, simulator: FillSimulator) -> None:
        self.sim = simulator
        self._open = 0  # orders submitted and not yet terminal, by the events reported
        self._positions: dict[str, float] = {}  # filled by the simulators before this one
        self._names: list[str] = []  # simulator symbol code -> symbol ("": a code that no bar had yet)
        self._day = -1  # the UTC day (ns // NS_PER_DAY) of the last batch: a session never spans two

    # ------------------------------------------------------------------------------------ orders
    def submit(self, client_order_id: str, request: OrderRequest, ts_ns: int) -> None:
        self._catch_up(ts_ns)  # bars closed before the order exists are not for it
        self.sim.submit(
            client_order_id,
            request.symbol,
            request.side,
            request.qty,
            ts_ns,
            type=request.type,
            time_in_force=request.time_in_force,
            limit_price=request.limit_price,
            stop_price=request.stop_price,
        )
        self._open += 1

    def submit_from(
        self,
        flow: OrderFlowCore,
        strategy: str,
        book: str,
        leg: str,
        request: OrderRequest,
        ts_ns: int,
        reference: float,
        price: float,
    ) -> str:
        """`flow.submit` of a strategy's order and `submit` of it, in one call into the simulator; its
        client order id. A subclass that overrides `submit` (to watch it) has it called."""
        if type(self).submit is not SimBroker.submit:
            cid = flow.submit(strategy, book, leg, request, ts_ns, reference, price)
            self.submit(cid, request, ts_ns)
            return cid
        # bars closed before the order exists are not for it: caught up in the same call
        feed = self._open > 0
        cid = self.sim.submit_from(flow, strategy, book, leg, request, ts_ns, reference, price, feed)
        self._open += 1
        return cid

    def cancel(self, client_order_id: str, ts_ns: int) -> None:
        self._catch_up(ts_ns)
        self.sim.cancel(client_order_id, ts_ns)

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
        self._catch_up(ts_ns)
        self.sim.replace(
            client_order_id,
            new_client_order_id,
            ts_ns,
            qty=qty,
            limit_price=limit_price,
            stop_price=stop_price,
        )
        self._open += 1

    # ------------------------------------------------------------------------------- market data
    def on_bars(
        self, bars: pl.DataFrame, every_ns: int, index: tuple[list[str], np.ndarray] | None = None
    ) -> None:
        """The next batch of bars (BAR_SCHEMA, sorted by ts): fed to the simulator as their bar times
        close (`poll`). Bars of the previous batch not fed yet are dropped: no order was open for them.
        `index` is the batch's symbol encoding when the caller has it (`BarBatch.symbol_index`)."""
        ts = epoch_ns(bars["ts"])
        day = int(ts[0]) // NS_PER_DAY
        if day != self._day and self._open == 0 and self._day >= 0:
            self._positions = self._held()
            self.sim = FillSimulator(self.sim.settings, self.sim.slippage)
            self._names = []
        self._day = day
        if bars["symbol"].null_count():
            raise DataError(f"bars: {bars['symbol'].null_count()} null symbols")
        names, rows = index if index is not None else symbol_index(bars["symbol"])
        self.sim.load_bar_arrays(
            self._symbol_codes(names, rows),
            ts,
            # BAR_SCHEMA's Float64 columns as they are (the core copies what it keeps)
            *(
                bars[c].to_numpy().astype(np.float64, copy=False)
                for c in ("open", "high", "low", "close", "volume")
            ),
            every_ns=every_ns,
        )

    def _symbol_codes(self, names: list[str], rows: np.ndarray) -> np.ndarray:
        """The simulator's code of each row's symbol, from the batch's encoding (`names`: its distinct
        symbols, sorted; `rows`: each row's position in them). The simulator is given the names in that
        order, so a new symbol's code does not depend on where the encoding came from."""
        codes = self.sim.symbol_codes(pl.Series(names, dtype=pl.String))
        if len(codes):
            self._names += [""] * (int(codes.max()) + 1 - len(self._names))  # a no-op if long enough
        for name, code in zip(names, codes.tolist(), strict=True):
            self._names[code] = name
        return codes[rows]

    def on_quotes(self, quotes: pl.DataFrame) -> None:
        self.sim.on_quotes(quotes)

    # -------------------------------------------------------------------------------------- poll
    def poll(self, now_ns: int) -> list[OrderUpdate]:
        self._catch_up(now_ns)
        self.sim.advance(now_ns)
        return self._drain()

    def _catch_up(self, now_ns: int) -> None:
        """Feed the bar times closed by `now_ns` and not fed yet, or skip them when no order is open."""
        self.sim.catch_up(now_ns, self._open > 0)

    def poll_into(self, flow: OrderFlowCore, now_ns: int) -> bool:
        """`poll`, its events booked by `flow` as they come from the simulator (no `OrderUpdate` made);
        whether there were any. A subclass that overrides `poll` (to watch its updates) has them made."""
        if type(self).poll is not SimBroker.poll:
            updates = self.poll(now_ns)
            for update in updates:
                flow.apply(update)
            return bool(updates)
        events, ended = self.sim.poll_into(flow, now_ns, self._open > 0)
        self._open -= ended
        return events > 0

    def _drain(self) -> list[OrderUpdate]:
        updates, ended = self.sim.drain_updates(self._names, _UPDATE)
        self._open -= ended
        return updates

    def has_open_orders(self) -> bool:
        return self._open > 0

    def _held(self) -> dict[str, float]:
        """Signed shares filled per symbol: those before this simulator, plus its orders' filled shares."""
        held = dict(self._positions)
        for symbol, q in self.sim.filled_shares().items():
            held[symbol] = held.get(symbol, 0.0) + q
        return held

    def positions(self) -> dict[str, float]:
        return {s: q for s, q in sorted(self._held().items()) if q}
