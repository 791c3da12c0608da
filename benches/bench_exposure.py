"""Exposure checks: `check_order` with 500 open positions (ours vs the same checks in pure Python with
running sums) and `check_orders` over many orders (ours vs a numpy-vectorised implementation).

Each `check_order` round is a loop over 1,000 pre-generated orders: ns per call = mean / 1000 (also in
`extra_info`). `check_orders` runs 100k orders (quick) or 1M (HYBRIDTRADER_BENCH=full).
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from hybridtrader.risk.exposure_manager import REASON_CODES, ExposureManager

FULL = os.environ.get("HYBRIDTRADER_BENCH") == "full"
N_POSITIONS = 500
N_SYMBOLS = 600
N_SECTORS = 11
N_BATCH = 1_000_000 if FULL else 100_000
LOOP = 1_000
EQUITY = 10_000_000.0
CAPS = {"gross": 50.0, "net": 35.0, "symbol": 10.0, "sector": 25.0, "notional": 100_000.0, "open": 1_000}
CONFIG = {
    "risk": {
        "max_gross_exposure_pct_intraday": CAPS["gross"],
        "exposure": {"books": {"intraday": {
            "max_net_exposure_pct": CAPS["net"], "max_symbol_exposure_pct": CAPS["symbol"],
            "max_sector_exposure_pct": CAPS["sector"], "max_order_notional": CAPS["notional"],
            "max_open_positions": CAPS["open"],
        }}},
    }
}
SYMBOLS = [f"S{i:03d}" for i in range(N_SYMBOLS)]
SECTOR = {s: f"SEC{i % N_SECTORS}" for i, s in enumerate(SYMBOLS)}
NOT_SHORTABLE = {s for i, s in enumerate(SYMBOLS) if i % 17 == 0}


def _positions(rng: np.random.Generator) -> list[tuple[str, float, float]]:
    """500 open positions, gross about 40% of equity."""
    qty = rng.integers(50, 400, N_POSITIONS) * rng.choice([-1, 1], N_POSITIONS)
    price = rng.uniform(20.0, 60.0, N_POSITIONS).round(2)
    return [(SYMBOLS[i], float(qty[i]), float(price[i])) for i in range(N_POSITIONS)]


def ours() -> ExposureManager:
    m = ExposureManager(CONFIG)
    m.set_equity(EQUITY)
    m.set_sectors(SECTOR)
    for s in NOT_SHORTABLE:
        m.set_shortable(s, False)
    for sym, q, p in _positions(np.random.default_rng(1)):
        m.update_position("intraday", sym, q, p)
    return m


class PurePythonExposure:
    """The same per-book checks in plain Python, O(1) per order with running sums (the peer)."""

    def __init__(self) -> None:
        self.qty: dict[str, float] = {}
        self.mv: dict[str, float] = {}
        self.sector_gross: dict[str, float] = {}
        self.gross = self.net = 0.0
        self.open = 0
        self.equity = EQUITY

    def update_position(self, symbol: str, qty: float, price: float) -> None:
        old_mv, old_q = self.mv.get(symbol, 0.0), self.qty.get(symbol, 0.0)
        mv = qty * price
        self.qty[symbol], self.mv[symbol] = qty, mv
        self.gross += abs(mv) - abs(old_mv)
        self.net += mv - old_mv
        self.open += (qty != 0) - (old_q != 0)
        sec = SECTOR.get(symbol)
        if sec is not None:
            self.sector_gross[sec] = self.sector_gross.get(sec, 0.0) + abs(mv) - abs(old_mv)

    def check_order(self, symbol: str, side: str, qty: float, price: float) -> tuple[bool, str]:
        if side not in ("buy", "sell") or not qty > 0 or not price > 0:
            raise ValueError("bad order")
        old_q = self.qty.get(symbol, 0.0)
        new_q = old_q + (qty if side == "buy" else -qty)
        reducing = old_q != 0 and new_q * old_q >= 0 and abs(new_q) < abs(old_q)
        eq = self.equity
        if not reducing:
            if qty * price > CAPS["notional"]:
                return False, f"order notional {qty * price:.2f} > cap {CAPS['notional']:.2f} (book intraday)"
            if new_q < 0 and symbol in NOT_SHORTABLE:
                return False, f"{symbol} is not shortable (book intraday)"
            if old_q == 0 and self.open >= CAPS["open"]:
                return False, f"open positions {self.open + 1} > cap {CAPS['open']} (book intraday)"
        old_mv, new_mv = self.mv.get(symbol, 0.0), new_q * price
        d = abs(new_mv) - abs(old_mv)
        if _past(abs(old_mv), abs(new_mv), CAPS["symbol"] / 100 * eq, reducing):
            return False, f"symbol {symbol} exposure {abs(new_mv) / eq * 100:.2f}% > cap (book intraday)"
        sec = SECTOR.get(symbol)
        if sec is not None:
            before = self.sector_gross.get(sec, 0.0)
            if _past(before, before + d, CAPS["sector"] / 100 * eq, reducing):
                return False, f"sector {sec} exposure {(before + d) / eq * 100:.2f}% > cap (book intraday)"
        if _past(self.gross, self.gross + d, CAPS["gross"] / 100 * eq, reducing):
            return False, f"gross exposure {(self.gross + d) / eq * 100:.2f}% > cap (book intraday)"
        net_after = abs(self.net + new_mv - old_mv)
        if _past(abs(self.net), net_after, CAPS["net"] / 100 * eq, reducing):
            return False, f"net exposure {net_after / eq * 100:.2f}% > cap (book intraday)"
        return True, "ok"


def _past(before: float, after: float, cap: float, reducing: bool) -> bool:
    """A cap check: past the cap and either newly past it (risk-reducing orders) or larger than before."""
    return after > cap and (before <= cap if reducing else after > before)


def peer() -> PurePythonExposure:
    p = PurePythonExposure()
    for sym, q, pr in _positions(np.random.default_rng(1)):
        p.update_position(sym, q, pr)
    return p


def _orders(n: int, seed: int = 2) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    syms = np.array(SYMBOLS)[rng.integers(0, N_SYMBOLS, n)]
    sides = np.array(["buy", "sell"])[rng.integers(0, 2, n)]
    qtys = rng.integers(1, 3_000, n).astype(np.float64)
    prices = rng.uniform(20.0, 60.0, n).round(2)
    return syms, sides, qtys, prices


def _loop_orders() -> list[tuple[str, str, float, float]]:
    syms, sides, qtys, prices = _orders(LOOP)
    rows = zip(syms, sides, qtys, prices, strict=True)
    return [(str(s), str(d), float(q), float(p)) for s, d, q, p in rows]


# ------------------------------------------------------------------------------------- check_order
def _same_answers() -> None:
    """The peer is a faithful implementation: same allowed flags on the benchmark orders."""
    m, p = ours(), peer()
    for o in _loop_orders():
        assert m.check_order(*o)[0] == p.check_order(*o)[0], o


def _per_call(benchmark) -> None:
    benchmark.extra_info["calls_per_round"] = LOOP
    if benchmark.stats is not None:
        benchmark.extra_info["ns_per_call"] = benchmark.stats.stats.mean / LOOP * 1e9


@pytest.mark.benchmark(group="check_order x1000 (500 open positions)")
def test_check_order_ours(benchmark) -> None:
    _same_answers()
    check = ours().check_order
    orders = _loop_orders()

    def run() -> None:
        for s, d, q, p in orders:
            check(s, d, q, p, "intraday")

    benchmark(run)
    _per_call(benchmark)


@pytest.mark.benchmark(group="check_order x1000 (500 open positions)")
def test_check_order_pure_python(benchmark) -> None:
    check = peer().check_order
    orders = _loop_orders()

    def run() -> None:
        for s, d, q, p in orders:
            check(s, d, q, p)

    benchmark(run)
    _per_call(benchmark)


# ------------------------------------------------------------------------------------ check_orders
class NumpyExposure:
    """The same checks vectorised with numpy over pre-encoded symbol indices (the peer)."""

    def __init__(self) -> None:
        self.qty = np.zeros(N_SYMBOLS)
        self.mv = np.zeros(N_SYMBOLS)
        for sym, q, p in _positions(np.random.default_rng(1)):
            i = SYMBOLS.index(sym)
            self.qty[i], self.mv[i] = q, q * p
        self.sector = np.array([int(SECTOR[s][3:]) for s in SYMBOLS])
        self.sector_gross = np.bincount(self.sector, weights=np.abs(self.mv), minlength=N_SECTORS)
        self.shortable = np.array([s not in NOT_SHORTABLE for s in SYMBOLS])
        self.gross, self.net = np.abs(self.mv).sum(), self.mv.sum()
        self.open = int((self.qty != 0).sum())

    def check(self, idx: np.ndarray, signs: np.ndarray, qty: np.ndarray, price: np.ndarray) -> np.ndarray:
        eq = EQUITY
        old_q, old_mv = self.qty[idx], self.mv[idx]
        new_q = old_q + signs * qty
        new_mv = new_q * price
        d = np.abs(new_mv) - np.abs(old_mv)
        sec_after = self.sector_gross[self.sector[idx]] + d
        net_after = np.abs(self.net + new_mv - old_mv)
        reducing = (old_q != 0) & (new_q * old_q >= 0) & (np.abs(new_q) < np.abs(old_q))

        def past(before: np.ndarray | float, after: np.ndarray, cap_pct: float) -> np.ndarray:
            cap = cap_pct / 100 * eq
            return (after > cap) & np.where(reducing, before <= cap, after > before)

        conditions = [
            ~reducing & (qty * price > CAPS["notional"]),
            ~reducing & (new_q < 0) & ~self.shortable[idx],
            ~reducing & (old_q == 0) & (self.open >= CAPS["open"]),
            past(np.abs(old_mv), np.abs(new_mv), CAPS["symbol"]),
            past(self.sector_gross[self.sector[idx]], sec_after, CAPS["sector"]),
            past(self.gross, self.gross + d, CAPS["gross"]),
            past(abs(self.net), net_after, CAPS["net"]),
        ]
        names = ["order_notional", "not_shortable", "open_positions", "symbol", "sector", "gross", "net"]
        codes = [REASON_CODES.index(c) for c in names]
        return np.select(conditions, codes, default=0).astype(np.uint8)


@pytest.fixture(scope="module")
def batch() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    return _orders(N_BATCH, seed=3)


@pytest.mark.benchmark(group=f"check_orders {N_BATCH:,} orders")
def test_check_orders_ours(benchmark, batch) -> None:
    m = ours()
    syms, sides, qtys, prices = batch
    out = benchmark(m.check_orders, syms, sides, qtys, prices)
    # the numpy peer is a faithful implementation: same decisions
    idx = np.searchsorted(np.array(SYMBOLS), syms)
    codes = NumpyExposure().check(idx, np.where(sides == "buy", 1.0, -1.0), qtys, prices)
    assert (out["reason"].to_physical().to_numpy() == codes).all()


@pytest.mark.benchmark(group=f"check_orders {N_BATCH:,} orders")
def test_check_orders_ours_preencoded(benchmark, batch) -> None:
    """Our batch core on pre-encoded columns (what the numpy peer gets)."""
    m = ours()
    syms, sides, qtys, prices = batch
    names, codes = m.encode_symbols(np.ascontiguousarray(syms).view(np.uint32).reshape(len(syms), -1))
    signs = np.where(sides == "buy", 1, -1).astype(np.int8)
    allowed, _ = benchmark(m.check_batch_codes, "intraday", names, codes, signs, qtys, prices, False)
    assert len(allowed) == N_BATCH


@pytest.mark.benchmark(group=f"check_orders {N_BATCH:,} orders")
def test_check_orders_numpy_preencoded(benchmark, batch) -> None:
    syms, sides, qtys, prices = batch
    idx = np.searchsorted(np.array(SYMBOLS), syms)
    signs = np.where(sides == "buy", 1.0, -1.0)
    peer_ = NumpyExposure()
    out = benchmark(peer_.check, idx, signs, qtys, prices)
    assert len(out) == N_BATCH


@pytest.mark.benchmark(group=f"check_orders {N_BATCH:,} orders")
def test_check_orders_numpy_from_strings(benchmark, batch) -> None:
    """The numpy peer including the string -> index step (np.searchsorted on the sorted universe)."""
    syms, sides, qtys, prices = batch
    universe = np.array(SYMBOLS)
    peer_ = NumpyExposure()

    def run() -> np.ndarray:
        idx = np.searchsorted(universe, syms)
        return peer_.check(idx, np.where(sides == "buy", 1.0, -1.0), qtys, prices)

    out = benchmark(run)
    assert len(out) == N_BATCH
