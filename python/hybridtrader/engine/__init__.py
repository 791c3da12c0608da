"""The trading engine: ports (Clock, Feed, Broker), typed events, the order state machine and the one
`Trader` loop that backtest and live both run."""

from hybridtrader.engine.events import BarBatch, OrderUpdate, SessionEvent
from hybridtrader.engine.orders import Order, OrderRequest, client_order_id
from hybridtrader.engine.ports import Broker, Clock, Feed
from hybridtrader.engine.trader import Trader, TraderResult

__all__ = [
    "BarBatch",
    "Broker",
    "Clock",
    "Feed",
    "Order",
    "OrderRequest",
    "OrderUpdate",
    "SessionEvent",
    "Trader",
    "TraderResult",
    "client_order_id",
]
