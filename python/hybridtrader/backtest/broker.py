"""`SimBroker`: the engine's Broker port on the Rust fill simulator (`execution.fills.FillSimulator`), the
same matching code the local venue serves over HTTP."""

from __future__ import annotations

import polars as pl

from hybridtrader.engine.events import OrderUpdate
from hybridtrader.engine.orders import OrderRequest
from hybridtrader.execution.fills import FillSimulator


class SimBroker:
    """Orders go to the simulator; `on_bars`/`on_quotes` feed it market data; `poll` advances it to now
    (acks, expirations) and turns what it reports into `OrderUpdate`s. Positions are the sum of the fills
    it reported."""

    def __init__(self, simulator: FillSimulator) -> None:
        self.sim = simulator
        self._open = 0  # orders submitted and not yet terminal, by the events reported
        self._positions: dict[str, float] = {}

    def submit(self, client_order_id: str, request: OrderRequest, ts_ns: int) -> None:
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

    def cancel(self, client_order_id: str, ts_ns: int) -> None:
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
        self.sim.replace(
            client_order_id,
            new_client_order_id,
            ts_ns,
            qty=qty,
            limit_price=limit_price,
            stop_price=stop_price,
        )
        self._open += 1

    def on_bars(self, bars: pl.DataFrame, every_ns: int) -> None:
        self.sim.on_bars(bars, every_ns)

    def on_quotes(self, quotes: pl.DataFrame) -> None:
        self.sim.on_quotes(quotes)

    def poll(self, now_ns: int) -> list[OrderUpdate]:
        self.sim.advance(now_ns)
        events = self.sim.drain()
        if events.height == 0:
            return []
        cols = events.with_columns(pl.col("ts").dt.epoch("ns")).select(
            "ts",
            "client_order_id",
            "symbol",
            "side",
            "event",
            "qty",
            "price",
            "fee",
            "filled_qty",
            "leaves_qty",
            "reason",
        )
        updates = [OrderUpdate(*row) for row in cols.iter_rows()]
        for u in updates:
            if u.kind in ("fill", "canceled", "expired", "rejected", "replaced"):
                self._open -= 1
            if u.is_fill:
                signed = u.qty if u.side == "buy" else -u.qty
                self._positions[u.symbol] = self._positions.get(u.symbol, 0.0) + signed
        return updates

    def has_open_orders(self) -> bool:
        return self._open > 0

    def positions(self) -> dict[str, float]:
        return {s: q for s, q in sorted(self._positions.items()) if q}
