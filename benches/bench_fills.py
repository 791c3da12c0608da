"""Fill simulator: ours (Rust core, `hybridtrader.execution.fills`) beside the same rules in pure Python, in
the same run, on the same orders and market data (both must produce the same fills).

- quotes: 10 symbols of quotes (100k quick, 1M with HYBRIDTRADER_BENCH=full) fed in chunks of 100 as a
  replay would; after each chunk a 500-share market order (it walks several quotes' displayed size), and 200
  resting limits that never trade (every quote checks them).
- bars: 50 symbols x 390 one-minute bars x 2 NYSE sessions (20 full), one cross-section per minute as the
  engine feeds them, a 100-share day market order per symbol every 10 minutes (participation cap 10% of
  volume; what is left at the close expires).
  Also through `on_bar_arrays` (numpy columns, no frame per minute).
- submit: ns per `FillSimulator.submit` from Python (1,000 per round).
"""

from __future__ import annotations

import math
import os
from collections import defaultdict
from datetime import date
from typing import Any

import numpy as np
import polars as pl
import pytest
from hybridtrader.execution.fills import FillSettings, FillSimulator
from hybridtrader.market import calendar
from hybridtrader.market.schema import BAR_SCHEMA, TS
from hybridtrader.market.timeconv import utc_ns

FULL = os.environ.get("HYBRIDTRADER_BENCH") == "full"
N_QUOTES = 1_000_000 if FULL else 100_000
SESSIONS = 20 if FULL else 2
CHUNK = 100
OPEN = 1_704_205_800_000_000_000  # 2024-01-02 14:30 UTC
MIN = 60_000_000_000
SETTINGS = FillSettings(entry_latency_ms=0.0, ack_latency_ms=0.0, sec_fee_rate=0.0, taf_per_share=0.0)


def quote_data() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    mid = 50 + np.cumsum(rng.normal(0, 0.01, N_QUOTES))
    half = rng.integers(1, 4, N_QUOTES) / 100
    return {"codes": rng.integers(0, 10, N_QUOTES).astype(np.uint32),
            "ts": OPEN + np.arange(N_QUOTES, dtype=np.int64) * 10_000_000,  # every 10 ms: within a session
            "bid": (mid - half).round(2), "ask": (mid + half).round(2),
            "bid_size": rng.integers(1, 3, N_QUOTES) * 100.0,
            "ask_size": rng.integers(1, 3, N_QUOTES) * 100.0}


def ours_quotes(d: dict[str, np.ndarray]) -> float:
    sim = FillSimulator(SETTINGS)
    codes = sim.symbol_codes(pl.Series([f"S{i}" for i in range(10)]))[d["codes"]]
    for i in range(200):
        sim.submit(f"rest{i}", f"S{i % 10}", "buy", 100, OPEN, type="limit", limit_price=1.0)
    cols = [d[c] for c in ("ts", "bid", "ask", "bid_size", "ask_size")]
    for k, lo in enumerate(range(0, N_QUOTES, CHUNK)):
        part = slice(lo, lo + CHUNK)
        sim.on_quote_arrays(codes[part], *(c[part] for c in cols))
        sim.submit(f"m{k}", f"S{k % 10}", "buy" if k % 2 else "sell", 500, int(d["ts"][part][-1]))
    ev = sim.drain()
    return float((ev["qty"] * ev["price"]).sum())


class PythonFills:
    """Market and limit day orders against quotes (displayed size, standing quote on arrival), in Python."""

    def __init__(self) -> None:
        self.book: dict[int, list[list]] = defaultdict(list)  # symbol -> [side, limit, left]
        self.last: dict[int, tuple] = {}
        self.notional = 0.0

    def submit(self, symbol: int, side: str, qty: float, limit: float | None = None) -> None:
        order = [side, limit, qty]
        q = self.last.get(symbol)
        if q is not None:
            self._trade(order, q)
        if order[2] > 0:
            self.book[symbol].append(order)

    def _trade(self, order: list, q: tuple) -> None:
        side, limit, left = order
        price, size = (q[1], q[3]) if side == "buy" else (q[0], q[2])
        if limit is not None and (price > limit if side == "buy" else price < limit):
            return
        take = min(size, left)
        order[2] -= take
        self.notional += take * price

    def on_quote(self, symbol: int, q: tuple) -> None:
        self.last[symbol] = q
        orders = self.book.get(symbol)
        if orders:
            for o in orders:
                self._trade(o, q)
            self.book[symbol] = [o for o in orders if o[2] > 0]


def peer_quotes(d: dict[str, np.ndarray]) -> float:
    p = PythonFills()
    for i in range(200):
        p.submit(i % 10, "buy", 100, 1.0)
    rows = list(zip(d["codes"].tolist(), d["bid"].tolist(), d["ask"].tolist(), d["bid_size"].tolist(),
                    d["ask_size"].tolist(), strict=True))
    for k, lo in enumerate(range(0, N_QUOTES, CHUNK)):
        for code, *q in rows[lo:lo + CHUNK]:
            p.on_quote(code, tuple(q))
        p.submit(k % 10, "buy" if k % 2 else "sell", 500)
    return p.notional


@pytest.mark.benchmark(group="fills-quotes")
def test_quotes_ours(benchmark) -> None:  # type: ignore[no-untyped-def]
    d = quote_data()
    notional = benchmark.pedantic(ours_quotes, args=(d,), rounds=3, iterations=1)
    assert notional == pytest.approx(peer_quotes(d), rel=1e-12)
    benchmark.extra_info["quotes_per_s"] = N_QUOTES / benchmark.stats["mean"]


@pytest.mark.benchmark(group="fills-quotes")
def test_quotes_pure_python(benchmark) -> None:  # type: ignore[no-untyped-def]
    d = quote_data()
    benchmark.pedantic(peer_quotes, args=(d,), rounds=3, iterations=1)
    benchmark.extra_info["quotes_per_s"] = N_QUOTES / benchmark.stats["mean"]


def bar_data() -> list[dict[str, Any]]:
    """One cross-section per minute of 50 symbols: the arrays (for the peer) and the BAR_SCHEMA frame (for
    ours, as the engine's feed hands it over)."""
    rng = np.random.default_rng(3)
    symbols = pl.Series([f"S{i:02d}" for i in range(50)])
    out = []
    for day in calendar.sessions(date(2024, 1, 2), date(2024, 12, 31))[:SESSIONS]:
        opens_at = utc_ns(calendar.session_bounds(day)[0])
        for m in range(390):
            o = 50 + rng.normal(0, 1, 50)
            d = {"ts": opens_at + m * MIN, "open": o, "high": o + 0.05, "low": o - 0.05,
                 "close": o + 0.01, "volume": rng.integers(0, 3000, 50) * 1.0, "last": m == 389}
            d["frame"] = pl.DataFrame({"symbol": symbols, "ts": pl.Series([d["ts"]] * 50).cast(TS),
                                       **{c: d[c] for c in ("open", "high", "low", "close", "volume")},
                                       "vwap": d["close"], "trades": 1}, schema=BAR_SCHEMA)
            out.append(d)
    return out


def ours_bars(minutes: list[dict[str, Any]]) -> float:
    sim = FillSimulator(SETTINGS)
    symbols = [f"S{i:02d}" for i in range(50)]
    for i, m in enumerate(minutes):
        sim.on_bars(m["frame"], MIN)
        if i % 10 == 0:
            for s in symbols:
                sim.submit(f"{s}-{i}", s, "buy", 100, m["ts"] + MIN)
    ev = sim.drain()
    return float((ev["qty"] * ev["price"]).sum())


def ours_bars_arrays(minutes: list[dict[str, Any]]) -> float:
    """The same through `on_bar_arrays`: the caller holds numpy columns (no frame per minute)."""
    sim = FillSimulator(SETTINGS)
    symbols = [f"S{i:02d}" for i in range(50)]
    codes = sim.symbol_codes(pl.Series(symbols))
    for i, m in enumerate(minutes):
        ts = np.full(50, m["ts"], dtype=np.int64)
        sim.on_bar_arrays(codes, ts, m["open"], m["high"], m["low"], m["close"], m["volume"], every_ns=MIN)
        if i % 10 == 0:
            for s in symbols:
                sim.submit(f"{s}-{i}", s, "buy", 100, m["ts"] + MIN)
    ev = sim.drain()
    return float((ev["qty"] * ev["price"]).sum())


def peer_bars(minutes: list[dict[str, Any]]) -> float:
    book: dict[int, list[list]] = defaultdict(list)
    notional = 0.0
    for i, m in enumerate(minutes):
        for s, (o, v) in enumerate(zip(m["open"].tolist(), m["volume"].tolist(), strict=True)):
            cap = math.floor(0.1 * v)
            for order in book[s]:
                if order[0] <= m["ts"]:
                    take = min(cap, order[1])
                    order[1] -= take
                    notional += take * o
            book[s] = [x for x in book[s] if x[1] > 0 and not m["last"]]  # day orders expire at the close
        if i % 10 == 0:
            for s in range(50):
                book[s].append([m["ts"] + MIN, 100.0])
    return notional


@pytest.mark.benchmark(group="fills-bars")
def test_bars_ours(benchmark) -> None:  # type: ignore[no-untyped-def]
    minutes = bar_data()
    notional = benchmark.pedantic(ours_bars, args=(minutes,), rounds=3, iterations=1)
    assert notional == pytest.approx(peer_bars(minutes), rel=1e-12)
    benchmark.extra_info["bars_per_s"] = 50 * len(minutes) / benchmark.stats["mean"]


@pytest.mark.benchmark(group="fills-bars")
def test_bars_ours_arrays(benchmark) -> None:  # type: ignore[no-untyped-def]
    minutes = bar_data()
    notional = benchmark.pedantic(ours_bars_arrays, args=(minutes,), rounds=3, iterations=1)
    assert notional == pytest.approx(peer_bars(minutes), rel=1e-12)
    benchmark.extra_info["bars_per_s"] = 50 * len(minutes) / benchmark.stats["mean"]


@pytest.mark.benchmark(group="fills-bars")
def test_bars_pure_python(benchmark) -> None:  # type: ignore[no-untyped-def]
    minutes = bar_data()
    benchmark.pedantic(peer_bars, args=(minutes,), rounds=3, iterations=1)
    benchmark.extra_info["bars_per_s"] = 50 * len(minutes) / benchmark.stats["mean"]


@pytest.mark.benchmark(group="fills-submit")
def test_submit_ours(benchmark) -> None:  # type: ignore[no-untyped-def]
    sim = FillSimulator(SETTINGS)
    counter = iter(range(10**9))

    def thousand() -> None:
        for _ in range(1000):
            i = next(counter)
            sim.submit(f"o{i}", "AAA", "buy", 100, OPEN + i, type="limit", limit_price=1.0)

    benchmark(thousand)
    benchmark.extra_info["ns_per_submit"] = benchmark.stats["mean"] / 1000 * 1e9


@pytest.mark.benchmark(group="fills-submit")
def test_submit_pure_python(benchmark) -> None:  # type: ignore[no-untyped-def]
    p = PythonFills()

    def thousand() -> None:
        for _ in range(1000):
            p.submit(0, "buy", 100, 1.0)

    benchmark(thousand)
    benchmark.extra_info["ns_per_submit"] = benchmark.stats["mean"] / 1000 * 1e9
