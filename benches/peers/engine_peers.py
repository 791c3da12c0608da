"""The peers of benches/bench_engine.py, run by the peers' own interpreter (.benchmarks/peers, see
requirements.txt).

One strategy in every engine: an EMA 10/30 crossover on each symbol's 1-minute closes that holds +100 shares
while EMA(10) >= EMA(30) and -100 otherwise, one market order per change of target (the first at the bar
where EMA(30) has seen 30 closes). EMA_t = a*close_t + (1-a)*EMA_{t-1}, a = 2/(n+1), seeded with the first
close (NautilusTrader's and vectorbt's definition; backtrader's own EMA seeds with the mean of the first n
closes, so its first crossings can differ). EMAs run on across sessions.

Protocol, one JSON object per line: commands on stdin, replies on the original stdout (the engines' own
logging goes to stderr):
  {"op": "prepare", "peer": NAME, "path": PARQUET}  -> {"version": ...} or {"error": ...}  (untimed: load
                                                       data, build the engine, one warm-up run)
  {"op": "reset"}                                   -> {}                                   (untimed)
  {"op": "run"}                                     -> {"orders": n, "fills": n, "cpu": s, "wall": s} (the
                                                       timed part: this process's CPU time and wall time)
Peers: nautilus_ticks (trade ticks -> internal 1-minute bars), nautilus_bars, nautilus_bars_no_strategy,
vectorbt_bars, backtrader_bars. Tick files have columns symbol, ts (int64 UTC ns), price, size; bar files
symbol, ts (bar start), open, high, low, close, volume.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from importlib.metadata import version
from typing import Any

import numpy as np
import pyarrow.parquet as pq

FAST, SLOW, SHARES = 10, 30, 100
MINUTE_NS = 60_000_000_000


def by_symbol(path: str) -> dict[str, dict[str, np.ndarray]]:
    """The file's columns split per symbol (rows keep their time order)."""
    table = pq.read_table(path)
    symbols = np.asarray(table.column("symbol").to_pylist())
    cols = {name: table.column(name).to_numpy() for name in table.column_names if name != "symbol"}
    out = {}
    for sym in dict.fromkeys(symbols.tolist()):
        mask = symbols == sym
        out[sym] = {name: values[mask] for name, values in cols.items()}
    return out


class Nautilus:
    """NautilusTrader's BacktestEngine: one Strategy subscribed to every symbol's 1-minute bars."""

    def __init__(self, path: str, source: str, with_strategy: bool) -> None:
        from nautilus_trader.backtest.engine import BacktestEngine, BacktestEngineConfig
        from nautilus_trader.config import DataEngineConfig, LoggingConfig
        from nautilus_trader.model.currencies import USD
        from nautilus_trader.model.data import Bar, BarType, TradeTick
        from nautilus_trader.model.enums import AccountType, AggressorSide, OmsType
        from nautilus_trader.model.identifiers import InstrumentId, Symbol, Venue
        from nautilus_trader.model.instruments import Equity
        from nautilus_trader.model.objects import Money, Price, Quantity

        venue = Venue("XNAS")
        config = BacktestEngineConfig(
            logging=LoggingConfig(log_level="ERROR"),
            # Bars as ours are labelled: [start, start + 1 minute), and none for minutes without trades.
            data_engine=DataEngineConfig(
                time_bars_interval_type="right-open", time_bars_build_with_no_updates=False
            ),
        )
        self.engine = engine = BacktestEngine(config=config)
        engine.add_venue(
            venue=venue,
            oms_type=OmsType.NETTING,
            account_type=AccountType.MARGIN,
            base_currency=USD,
            starting_balances=[Money(1_000_000_000, USD)],
            trade_execution=source == "ticks",
        )
        bar_types = []
        for sym, cols in by_symbol(path).items():
            instrument = Equity(
                instrument_id=InstrumentId(Symbol(sym), venue),
                raw_symbol=Symbol(sym),
                currency=USD,
                price_precision=2,
                price_increment=Price.from_str("0.01"),
                lot_size=Quantity.from_int(1),
                ts_event=0,
                ts_init=0,
            )
            engine.add_instrument(instrument)
            if source == "ticks":
                bar_type = BarType.from_str(f"{sym}.XNAS-1-MINUTE-LAST-INTERNAL")
                ts = cols["ts"].astype(np.uint64)
                ticks = TradeTick.from_raw_arrays_to_list(
                    instrument.id,
                    2,
                    0,
                    cols["price"].astype(np.float64),
                    cols["size"].astype(np.float64),
                    np.full(len(ts), int(AggressorSide.NO_AGGRESSOR), dtype=np.uint8),
                    [str(i) for i in range(len(ts))],
                    ts,
                    ts,
                )
                engine.add_data(ticks)
            else:
                bar_type = BarType.from_str(f"{sym}.XNAS-1-MINUTE-LAST-EXTERNAL")
                ts = (cols["ts"] + MINUTE_NS).astype(np.uint64)  # Nautilus stamps a bar at its close
                bars = Bar.from_raw_arrays_to_list(
                    bar_type,
                    2,
                    0,
                    *(cols[c].astype(np.float64) for c in ("open", "high", "low", "close")),
                    np.maximum(cols["volume"], 1).astype(np.float64),
                    ts,
                    ts,
                )
                engine.add_data(bars)
            bar_types.append(bar_type)
        if with_strategy:
            engine.add_strategy(ema_flip_strategy(bar_types))

    def reset(self) -> None:
        self.engine.reset()

    def run(self) -> dict[str, int]:
        self.engine.run()
        orders = self.engine.cache.orders()
        return {
            "orders": len(orders),
            "fills": sum(1 for o in orders if o.is_closed and o.filled_qty.as_double() > 0),
        }


def ema_flip_strategy(bar_types: list) -> Any:
    from nautilus_trader.indicators import ExponentialMovingAverage
    from nautilus_trader.model.enums import OrderSide
    from nautilus_trader.model.objects import Quantity
    from nautilus_trader.trading.strategy import Strategy

    class EmaFlip(Strategy):
        def on_start(self) -> None:
            self.emas, self.target = {}, {}
            for bar_type in bar_types:
                fast, slow = ExponentialMovingAverage(FAST), ExponentialMovingAverage(SLOW)
                self.register_indicator_for_bars(bar_type, fast)
                self.register_indicator_for_bars(bar_type, slow)
                self.emas[bar_type.instrument_id] = (fast, slow)
                self.target[bar_type.instrument_id] = 0
                self.subscribe_bars(bar_type)

        def on_bar(self, bar) -> None:
            instrument_id = bar.bar_type.instrument_id
            fast, slow = self.emas[instrument_id]
            if not slow.initialized:
                return
            want = SHARES if fast.value >= slow.value else -SHARES
            have = self.target[instrument_id]
            if want != have:
                side = OrderSide.BUY if want > have else OrderSide.SELL
                self.submit_order(
                    self.order_factory.market(instrument_id, side, Quantity.from_int(abs(want - have)))
                )
                self.target[instrument_id] = want

    return EmaFlip()


class Vectorbt:
    """vectorbt's fully vectorised Portfolio.from_signals on the (bar time x symbol) close matrix; the order
    decided on a bar's close fills at the next bar's open, a change of sign is one reversing order."""

    def __init__(self, path: str) -> None:
        frame = pq.read_table(path).to_pandas()
        self.open = frame.pivot(index="ts", columns="symbol", values="open")
        self.close = frame.pivot(index="ts", columns="symbol", values="close")

    def reset(self) -> None:
        pass

    def run(self) -> dict[str, int]:
        import vectorbt as vbt

        fast = vbt.MA.run(self.close, FAST, ewm=True).ma.to_numpy()
        slow = vbt.MA.run(self.close, SLOW, ewm=True).ma.to_numpy()
        valid = ~np.isnan(slow)
        long = valid & (fast >= slow)
        short = valid & ~(fast >= slow)
        # decided on bar t's close, executed at bar t+1's open
        long = np.vstack([np.zeros((1, long.shape[1]), bool), long[:-1]])
        short = np.vstack([np.zeros((1, short.shape[1]), bool), short[:-1]])
        pf = vbt.Portfolio.from_signals(
            self.close,
            entries=long,
            short_entries=short,
            price=self.open,
            size=SHARES,
            size_type="amount",
            init_cash=1e9,
            freq="1min",
        )
        n_orders = int(pf.orders.count().sum())
        return {"orders": n_orders, "fills": n_orders}


class Backtrader:
    """backtrader's Cerebro: one PandasData feed per symbol, its EMA indicator, market orders filled at the
    next bar's open by its default broker; without the default observers (stdstats=False)."""

    def __init__(self, path: str) -> None:
        import pandas as pd

        self.frames = {}
        for sym, cols in by_symbol(path).items():
            index = pd.to_datetime(cols["ts"], utc=True).tz_localize(None)
            self.frames[sym] = pd.DataFrame(
                {c: cols[c] for c in ("open", "high", "low", "close", "volume")}, index=index
            )
        self.cerebro = None

    def reset(self) -> None:
        import backtrader as bt

        cerebro = bt.Cerebro(stdstats=False)
        for sym, frame in self.frames.items():
            cerebro.adddata(bt.feeds.PandasData(dataname=frame, openinterest=None), name=sym)
        cerebro.broker.setcash(1e9)
        cerebro.addstrategy(backtrader_strategy())
        self.cerebro = cerebro

    def run(self) -> dict[str, int]:
        (strategy,) = self.cerebro.run()
        return {"orders": strategy.orders, "fills": strategy.fills}


def backtrader_strategy() -> type:
    import backtrader as bt

    class EmaFlip(bt.Strategy):
        def __init__(self) -> None:
            self.emas = [
                (bt.ind.EMA(d.close, period=FAST), bt.ind.EMA(d.close, period=SLOW)) for d in self.datas
            ]
            self.target = [0] * len(self.datas)
            self.orders = self.fills = 0

        def next(self) -> None:
            for i, (fast, slow) in enumerate(self.emas):
                want = SHARES if fast[0] >= slow[0] else -SHARES
                have = self.target[i]
                if want != have:
                    data = self.datas[i]
                    (self.buy if want > have else self.sell)(data=data, size=abs(want - have))
                    self.target[i] = want
                    self.orders += 1

        def notify_order(self, order) -> None:
            if order.status == order.Completed:
                self.fills += 1

    return EmaFlip


PEERS = {
    "nautilus_ticks": (lambda path: Nautilus(path, "ticks", True), "nautilus_trader"),
    "nautilus_bars": (lambda path: Nautilus(path, "bars", True), "nautilus_trader"),
    "nautilus_bars_no_strategy": (lambda path: Nautilus(path, "bars", False), "nautilus_trader"),
    "vectorbt_bars": (Vectorbt, "vectorbt"),
    "backtrader_bars": (Backtrader, "backtrader"),
}


def warm() -> None:
    """Run every bars peer once on a small random walk (compiles and caches vectorbt's numba kernels)."""
    import tempfile

    import pyarrow as pa

    rng = np.random.default_rng(0)
    n, symbols = 500, 2
    close = 100 * np.exp(np.cumsum(rng.normal(0, 1e-3, (symbols, n)), axis=1)).ravel()
    table = pa.table({
        "symbol": np.repeat([f"S{i}" for i in range(symbols)], n),
        "ts": np.tile(1_704_205_800 * 10**9 + MINUTE_NS * np.arange(n), symbols),
        "open": close, "high": close, "low": close, "close": close, "volume": np.full(n * symbols, 100.0),
    })  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/bars.parquet"
        pq.write_table(table, path)
        for name in ("vectorbt_bars", "backtrader_bars", "nautilus_bars"):
            engine = PEERS[name][0](path)
            engine.reset()
            engine.run()


def main() -> None:
    if sys.argv[1:] == ["--warm"]:
        warm()
        return
    replies = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # whatever the engines print goes to stderr, not into the protocol
    engine = None
    for line in sys.stdin:
        command = json.loads(line)
        try:
            if command["op"] == "prepare":
                make, package = PEERS[command["peer"]]
                engine = make(command["path"])
                engine.reset()
                engine.run()  # warm-up: imports, JIT, caches
                engine.reset()
                reply: dict[str, Any] = {"version": f"{package} {version(package)}"}
            elif command["op"] == "reset":
                engine.reset()
                reply = {}
            else:
                wall, cpu = time.perf_counter(), time.process_time()
                reply = engine.run()
                reply |= {"cpu": time.process_time() - cpu, "wall": time.perf_counter() - wall}
        except Exception as e:
            traceback.print_exc()
            first_line = (str(e).strip().splitlines() or [""])[0]
            reply = {"error": f"{type(e).__name__}: {first_line}"}
        replies.write(json.dumps(reply) + "\n")


if __name__ == "__main__":
    main()
