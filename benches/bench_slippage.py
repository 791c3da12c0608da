"""Slippage forecasts: ours (Rust) beside a pure-Python per-call implementation and a numpy-vectorised
batch implementation of the same formula, in the same run.

Quick by default; HYBRIDTRADER_BENCH=full runs the 1M-row batch.
"""

from __future__ import annotations

import os
from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl
import pytest
from hybridtrader import SlippageModel

FULL = os.environ.get("HYBRIDTRADER_BENCH") == "full"
N_BATCH = 1_000_000 if FULL else 100_000
N_SYMBOLS = 500
NEW_YORK = ZoneInfo("America/New_York")
TS = 1_714_570_200_000_000_000  # 2024-05-01 13:30 UTC (09:30 New York)


def build_model() -> SlippageModel:
    rng = np.random.default_rng(0)
    m = SlippageModel()
    ts = TS + np.arange(13, dtype=np.int64) * 1800 * 1_000_000_000
    names = [f"S{i:04d}" for i in range(N_SYMBOLS)]
    for name in names:
        m.set_daily_stats(name, float(rng.uniform(1e5, 5e7)), float(rng.uniform(80, 400)))
    m.learn_from_quote_bars(
        pl.DataFrame(
            {
                "symbol": np.repeat(names, 13),
                "ts": np.tile(ts, N_SYMBOLS),
                "spread_bps_mean": rng.uniform(1, 20, 13 * N_SYMBOLS),
            }
        )
    )
    m.set_daily_stats("AAPL", 5e7, 150.0)
    return m


class PythonSlippage:
    """The same formula in pure Python (dict lookups, zoneinfo for the time of day)."""

    def __init__(self, model: SlippageModel, symbols: list[str]) -> None:
        self.params = {s: model.symbol_params(s) for s in symbols}
        self.pooled = model.symbol_params("__pooled__")
        self.e = model.impact_exponent
        self.cap = model.max_slippage_bps
        self.bucket_minutes = model.config.bucket_minutes
        self.n_buckets = model.n_buckets

    def forecast_slippage(self, symbol: str, side: str, qty: float, price: float, ts: int) -> float:
        if side not in ("buy", "sell"):
            raise ValueError(f"side must be 'buy' or 'sell', got {side!r}")
        if not (qty > 0 and price > 0):
            raise ValueError("qty and price must be > 0")
        p = self.params.get(symbol, self.pooled)
        local = datetime.fromtimestamp(ts // 1_000_000_000, NEW_YORK)
        minutes = local.hour * 60 + local.minute - 570
        bucket = min(max(minutes, 0) // self.bucket_minutes, self.n_buckets - 1)
        impact = p["impact_coef"] * p["daily_vol_bps"] * (qty / p["adv_shares"]) ** self.e
        return min(0.5 * p["spread_bps"][bucket] + impact, self.cap)


def numpy_transitions(first_year: int = 2000, last_year: int = 2040) -> tuple[np.ndarray, np.ndarray]:
    """UTC instants (s) where the New York offset changes and the offset (s) from each one on."""
    edges, offsets = [], []
    for y in range(first_year, last_year + 1):
        for month, day_from in ((3, 8), (11, 1)):  # second Sunday of March, first Sunday of November
            d = np.datetime64(f"{y}-{month:02d}-{day_from:02d}")
            d = d + (6 - (d.astype("datetime64[D]").view("int64") + 3) % 7) % 7  # next Sunday (0 = Monday)
            edges.append(int(d.astype("datetime64[s]").view("int64")) + (7 if month == 3 else 6) * 3600)
            offsets.append(-4 * 3600 if month == 3 else -5 * 3600)
    return np.array(edges), np.array(offsets)


class NumpySlippage:
    """The same formula vectorised with numpy: per-symbol arrays gathered by code, DST by searchsorted."""

    def __init__(self, model: SlippageModel, names: list[str]) -> None:
        ps = [model.symbol_params(n) for n in names]
        e = model.impact_exponent
        self.e, self.cap = e, model.max_slippage_bps
        self.coef_vol = np.array([p["impact_coef"] * p["daily_vol_bps"] for p in ps])
        self.adv = np.array([p["adv_shares"] for p in ps])
        self.half = 0.5 * np.array([p["spread_bps"] for p in ps])
        self.bucket_minutes, self.n_buckets = model.config.bucket_minutes, model.n_buckets
        self.edges, self.offsets = numpy_transitions()

    def forecast(self, codes: np.ndarray, qty: np.ndarray, price: np.ndarray, ts: np.ndarray) -> np.ndarray:
        if not ((qty > 0).all() and (price > 0).all()):
            raise ValueError("qty and price must be > 0")
        secs = ts // 1_000_000_000
        offset = self.offsets[np.searchsorted(self.edges, secs, side="right") - 1]
        minutes = (secs + offset) % 86_400 // 60 - 570
        bucket = np.minimum(np.maximum(minutes, 0) // self.bucket_minutes, self.n_buckets - 1)
        impact = self.coef_vol[codes] * (qty / self.adv[codes]) ** self.e
        return np.minimum(self.half[codes, bucket] + impact, self.cap)


@pytest.fixture(scope="module")
def model() -> SlippageModel:
    return build_model()


@pytest.fixture(scope="module")
def batch(model: SlippageModel) -> dict[str, object]:
    rng = np.random.default_rng(1)
    names = sorted(model.symbols)
    codes = rng.integers(0, len(names), N_BATCH).astype(np.uint32)
    qty = np.round(10 ** rng.uniform(0, 5, N_BATCH))
    price = rng.uniform(5, 500, N_BATCH)
    ts = TS + rng.integers(0, 390 * 60, N_BATCH) * 1_000_000_000
    symbols = pl.Series("symbol", names).gather(codes)
    return {"names": names, "codes": codes, "qty": qty, "price": price, "ts": ts, "symbols": symbols}


# ------------------------------------------------------------------------------------------ per call
@pytest.mark.benchmark(group="forecast_slippage per call", min_time=0.0002, warmup=True)
def test_ours_per_call(benchmark, model: SlippageModel) -> None:
    out = benchmark(model.forecast_slippage, "AAPL", "buy", 100, 150.0, TS)
    assert 0 <= out <= 20


@pytest.mark.benchmark(group="forecast_slippage per call", min_time=0.0002, warmup=True)
def test_ours_per_call_ts_none(benchmark, model: SlippageModel) -> None:
    out = benchmark(model.forecast_slippage, "AAPL", "buy", 100, 150.0)
    assert 0 <= out <= 20


@pytest.mark.benchmark(group="forecast_slippage per call", min_time=0.0002, warmup=True)
def test_pure_python_per_call(benchmark, model: SlippageModel) -> None:
    peer = PythonSlippage(model, model.symbols)
    for qty, ts in ((100, TS), (30_000, TS + 7_000 * 10**9), (1e7, TS + 20_000 * 10**9)):
        assert peer.forecast_slippage("AAPL", "buy", qty, 150.0, ts) == pytest.approx(
            model.forecast_slippage("AAPL", "buy", qty, 150.0, ts), rel=1e-12
        )
    benchmark(peer.forecast_slippage, "AAPL", "buy", 100, 150.0, TS)


# ------------------------------------------------------------------------------------------ batch
@pytest.mark.benchmark(group=f"forecast batch {N_BATCH:,} rows")
def test_ours_batch_codes(benchmark, model: SlippageModel, batch: dict) -> None:
    b = batch
    out = benchmark(model.forecast_codes, b["names"], b["codes"], b["qty"], b["price"], b["ts"])
    peer = NumpySlippage(model, b["names"])
    np.testing.assert_allclose(out, peer.forecast(b["codes"], b["qty"], b["price"], b["ts"]), rtol=1e-12)


@pytest.mark.benchmark(group=f"forecast batch {N_BATCH:,} rows")
def test_ours_batch_from_polars_symbols(benchmark, model: SlippageModel, batch: dict) -> None:
    b = batch
    out = benchmark(model.forecast_many, b["symbols"], "buy", b["qty"], b["price"], b["ts"])
    assert out.shape == (N_BATCH,)


@pytest.mark.benchmark(group=f"forecast batch {N_BATCH:,} rows")
def test_ours_batch_from_polars_enum_symbols(benchmark, model: SlippageModel, batch: dict) -> None:
    b = batch
    symbols = b["symbols"].cast(pl.Enum(b["names"]))
    out = benchmark(model.forecast_many, symbols, "buy", b["qty"], b["price"], b["ts"])
    assert out.shape == (N_BATCH,)


@pytest.mark.benchmark(group=f"forecast batch {N_BATCH:,} rows")
def test_numpy_batch(benchmark, model: SlippageModel, batch: dict) -> None:
    b = batch
    peer = NumpySlippage(model, b["names"])
    benchmark(peer.forecast, b["codes"], b["qty"], b["price"], b["ts"])
