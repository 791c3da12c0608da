"""Bar features carried from one bar time to the next, per symbol, in O(symbols) numpy steps: what a live
node computes for each new bar time instead of recomputing the features over every symbol's history with
Polars (a fixed cost of ten milliseconds and more per call, ~50 ms for the swing strategy's 780 bars of
history x 50 symbols; a step here is well under a millisecond).

The definitions are those of `ml.features` (the Polars path the backtest runs on whole sessions; see its
docstring), row by row of each symbol (row k = the symbol's k-th bar, from 0), with null as NaN; and of
the labels' `reversion_mean` (to the bit: the same additions in the same order) and `barrier_vol`. The
rest is equal to rounding (Polars slides its rolling sums and runs its own recursions), see tests/strategy.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl

from hybridtrader.errors import StateError
from hybridtrader.market.timeconv import epoch_ns, time_runs
from hybridtrader.ml.features import parse_feature


def _grow(a: np.ndarray, k: int, fill: float) -> np.ndarray:
    """`a` with `k` more rows (symbols) of `fill`."""
    return np.concatenate([a, np.full((k, *a.shape[1:]), fill)])


class _Window:
    """Each symbol's last `width` values of a series, oldest first (NaN where there were none yet)."""

    def __init__(self, width: int) -> None:
        self.width = width
        self.values = np.empty((0, width))

    def push(self, r: np.ndarray, x: np.ndarray) -> np.ndarray:
        window = np.concatenate([self.values[r, 1:], x[:, None]], axis=1)
        self.values[r] = window
        return window


class _Smoother:
    """An exponential smoother seeded by a simple mean, as `ml.features.wilder` / `ema` define it: the input
    is valid from row `first` of the symbol; the value is null before row first + n - 1, the mean of the
    n values of rows first .. first + n - 1 there, then s_k = (1 - alpha) s_(k-1) + alpha x_k."""

    def __init__(self, n: int, first: int, alpha: float) -> None:
        self.n, self.first, self.alpha = n, first, alpha
        self.window = _Window(n)  # the seed's values
        self.value = np.empty(0)
        self.before = np.empty(0)  # the values before the last step, of its symbols

    def step(self, r: np.ndarray, k: np.ndarray, x: np.ndarray) -> np.ndarray:
        seed_row = self.first + self.n - 1
        prev = self.before = self.value[r]
        a = self.alpha
        if len(k) and k.min() > seed_row:  # all seeded (the usual step): the seed's window is not read again
            out = (1.0 - a) * prev + a * x
        else:
            window = self.window.push(r, x)
            seed = window.mean(axis=1) if (k == seed_row).any() else np.nan
            out = np.where(k < seed_row, np.nan, np.where(k == seed_row, seed, (1.0 - a) * prev + a * x))
        self.value[r] = out
        return out


class FeatureState:
    """Per-symbol state of `ml.features` features (any of zscore, volume_zscore, rsi, atr, natr, adx,
    ema_slope, trend_strength, ret, rv and spread without quotes, with their windows), plus `vol_span`
    (`ml.labels.barrier_vol`: the EWM std of 1-bar log returns) and `mean_window` (`ml.labels.reversion_mean`)
    when given, advanced one bar time at a time by `step` in O(symbols x windows) numpy work.

    Row by row of each symbol it computes what `ml.features.compute_features` computes on the symbol's bars
    from its first row: the rolling statistics over the same windows, the smoothers with the same seeds
    and recursions, nulls (NaN here) on the same rows. Equal to rounding (Polars slides its rolling sums);
    tests/strategy compare it with the Polars path. `supported(names)` says whether it can take a list."""

    KINDS = frozenset(
        {"zscore", "volume_zscore", "rsi", "atr", "natr", "adx", "ema_slope", "trend_strength", "ret", "rv",
         "spread"}
    )  # fmt: skip

    def __init__(self, names: list[str], vol_span: int | None = None, mean_window: int | None = None) -> None:
        if not self.supported(names):
            raise StateError(f"features {names}: FeatureState carries only {sorted(self.KINDS)}")
        self.names = list(dict.fromkeys(names))
        self.specs = [parse_feature(n) for n in self.names]
        kinds = {s.kind for s in self.specs}
        self._log_returns = vol_span is not None or "rv" in kinds  # what `step` computes only when read
        self._moves = bool(kinds & {"rsi", "adx"})
        self.vol_span, self.mean_window = vol_span, mean_window
        self.index: dict[str, int] = {}
        self.count = np.zeros(0, np.int64)
        self.prev = np.empty((0, 3))  # each symbol's last high, low, close
        self.last_ns = -1
        need = {"close": 1}  # the windows kept (series -> width): the closes, and what the features read
        self.smoothers: dict[tuple[str, int, int, float], _Smoother] = {}
        for s in self.specs:
            n = s.window
            if s.kind in ("zscore", "volume_zscore"):
                key = "close" if s.kind == "zscore" else "volume"
                need[key] = max(need.get(key, 1), n)
            elif s.kind == "ret":
                need["close"] = max(need["close"], n + 1)
            elif s.kind == "rv":
                need["ret1"] = max(need.get("ret1", 1), n)
            elif s.kind == "spread":
                need["spread"] = max(need.get("spread", 1), n)
        if mean_window:
            need["close"] = max(need["close"], mean_window)
        self.windows = {key: _Window(w) for key, w in need.items()}
        # EWM variance of log returns (`vol_span`): mean, variance, sum of squared weights, observations
        self.ewm = np.empty((0, 4))

    @classmethod
    def supported(cls, names: list[str]) -> bool:
        return all(parse_feature(n).kind in cls.KINDS for n in names)

    @classmethod
    def start(
        cls, bars: pl.DataFrame, session_rows: int, names: list[str], **extras: int
    ) -> FeatureState | None:
        """The state a live strategy carries, started in `prepare` on a batch of one bar time (`bars`: its
        history in front, then the batch's `session_rows` rows) by stepping through all of it: the
        session's later bar times are then taken by `frame`, with the features a backtest of the session
        computes (its history starts where this one does). None for a batch of several bar times (a
        backtest's), bars with quotes (the spread is then the quoted one) or a feature not carried."""
        ts = bars["ts"]
        if ts[-session_rows] != ts[-1] or "bid" in bars.columns or not cls.supported(names):
            return None
        state = cls(names, **extras)
        state.run(bars)
        return state

    def take(self, bars: pl.DataFrame) -> tuple[dict[str, np.ndarray], list[str]]:
        """`step` on a batch of one bar time: the values, and the batch's symbols (a list)."""
        columns = {c: bars[c].to_numpy() for c in ("high", "low", "close", "volume")}
        symbols = bars["symbol"].to_list()
        return self.step(int(epoch_ns(bars["ts"])[0]), symbols, columns), symbols

    def frame(self, bars: pl.DataFrame, extra: str) -> tuple[dict[str, np.ndarray], pl.DataFrame]:
        """`take` and the frame `RuleStrategy.features` gives on the batch (`features_frame`)."""
        values, _ = self.take(bars)
        return values, self.features_frame(bars, values, extra)

    def features_frame(self, bars: pl.DataFrame, values: dict[str, np.ndarray], extra: str) -> pl.DataFrame:
        """The frame `RuleStrategy.features` gives on a batch of one bar time from `take`'s values: symbol,
        ts, the features, close, then `extra` ("mean" or "vol"), nulls where NaN."""
        return pl.DataFrame([
            bars["symbol"], bars["ts"],
            *(pl.Series(name, values[name], nan_to_null=True) for name in self.names),
            bars["close"], pl.Series(extra, values[extra], nan_to_null=True),
        ])  # fmt: skip

    def _smoother(self, series: str, n: int, first: int, alpha: float) -> _Smoother:
        key = (series, n, first, alpha)
        s = self.smoothers.get(key)
        if s is None:
            s = self.smoothers[key] = _Smoother(n, first, alpha)
            s.window.values = np.full((len(self.index), n), np.nan)
            s.value = np.full(len(self.index), np.nan)
        return s

    def _rows(self, symbols: list[str]) -> np.ndarray:
        """The symbols' rows in the state, new symbols given rows first."""
        index = self.index
        try:
            return np.fromiter(map(index.__getitem__, symbols), np.intp, len(symbols))
        except KeyError:
            pass
        new = [s for s in dict.fromkeys(symbols) if s not in index]
        k, base = len(new), len(index)
        index.update((s, base + i) for i, s in enumerate(new))
        self.count = np.r_[self.count, np.zeros(k, np.int64)]
        self.prev = _grow(self.prev, k, np.nan)
        self.ewm = _grow(self.ewm, k, 0.0)
        for w in self.windows.values():
            w.values = _grow(w.values, k, np.nan)
        for s in self.smoothers.values():
            s.window.values = _grow(s.window.values, k, np.nan)
            s.value = _grow(s.value, k, np.nan)
        return np.fromiter(map(index.__getitem__, symbols), np.intp, len(symbols))

    def step(self, ts_ns: int, symbols: list[str], bars: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Take one bar time's bars (distinct symbols; arrays high, low, close, volume) and return each
        feature's values (and "vol", "mean" when asked for), NaN where Polars gives null."""
        if ts_ns <= self.last_ns:
            raise StateError(f"bar time {ts_ns} is not after the last one taken ({self.last_ns})")
        self.last_ns = ts_ns
        r = self._rows(symbols)
        k = self.count[r]
        high, low, close = bars["high"], bars["low"], bars["close"]
        ph, pl_, pc = self.prev[r].T  # NaN on a symbol's first bar: what Polars' lag gives (null)
        self.prev[r] = np.column_stack([high, low, close])
        self.count[r] = k + 1
        first = k == 0
        tr = np.maximum(high - low, np.maximum(np.abs(high - pc), np.abs(low - pc)))
        if first.any():
            tr = np.where(first, np.nan, tr)
        windows = self.windows
        with np.errstate(divide="ignore", invalid="ignore"):
            ret1 = np.log(close / pc) if self._log_returns else close  # (else never read)
            closes = windows["close"].push(r, close)
            # the other windows, where kept (else never read)
            volumes = (
                windows["volume"].push(r, bars["volume"].astype(np.float64)) if "volume" in windows else close
            )
            rets = windows["ret1"].push(r, ret1) if "ret1" in windows else closes
            if "spread" in windows:
                spreads = windows["spread"].push(r, _corwin_schultz(high, low, ph, pl_))
            delta, up, down = (close - pc, high - ph, pl_ - low) if self._moves else (close, close, close)
            inputs = {  # what the smoothers other than ATR and the EMAs take (computed when asked for)
                "gain": lambda: np.clip(delta, 0.0, None),
                "loss": lambda: np.clip(-delta, 0.0, None),
                # Polars: when((up > down) & (up > 0)) with a null up is false: 0.0 on the first row
                "pdm": lambda: np.where(~first & (up > down) & (up > 0), up, 0.0),
                "mdm": lambda: np.where(~first & (down > up) & (down > 0), down, 0.0),
            }
            out: dict[str, np.ndarray] = {}
            smoothed: dict[tuple[str, int, int, float], np.ndarray] = {}

            def smooth(series: str, n: int, first: int, alpha: float, x: np.ndarray) -> np.ndarray:
                key = (series, n, first, alpha)
                if key not in smoothed:
                    smoothed[key] = self._smoother(series, n, first, alpha).step(r, k, x)
                return smoothed[key]

            def atr(n: int) -> np.ndarray:
                return smooth("tr", n, 1, 1.0 / n, tr)

            def ema(n: int) -> np.ndarray:
                return smooth("close", n, 0, 2.0 / (n + 1), close)

            for spec in self.specs:
                n = spec.window
                if spec.kind in ("zscore", "volume_zscore"):
                    w = (closes if spec.kind == "zscore" else volumes)[:, -n:]
                    v = (w[:, -1] - w.mean(axis=1)) / w.std(axis=1, ddof=1)
                elif spec.kind == "rsi":
                    g, lo = (
                        smooth("gain", n, 1, 1.0 / n, inputs["gain"]()),
                        smooth("loss", n, 1, 1.0 / n, inputs["loss"]()),
                    )
                    v = np.where(
                        lo > 0,
                        100.0 - 100.0 / (1.0 + g / lo),
                        np.where(g > 0, 100.0, np.where(g == 0, 50.0, np.nan)),
                    )
                elif spec.kind == "atr":
                    v = atr(n)
                elif spec.kind == "natr":
                    v = 1e4 * atr(n) / close
                elif spec.kind == "adx":
                    a = atr(n)
                    pdi = 100.0 * smooth("pdm", n, 1, 1.0 / n, inputs["pdm"]()) / a
                    mdi = 100.0 * smooth("mdm", n, 1, 1.0 / n, inputs["mdm"]()) / a
                    total = pdi + mdi
                    dx = np.where(total > 0, 100.0 * np.abs(pdi - mdi) / total, 0.0)
                    v = smooth(f"dx{n}", n, n, 1.0 / n, dx)
                elif spec.kind == "ema_slope":
                    now = ema(n)  # the smoother's `before`: its value at the symbol's previous row
                    v = 1e4 * (now / self._smoother("close", n, 0, 2.0 / (n + 1)).before - 1.0)
                elif spec.kind == "trend_strength":
                    v = (ema(max(2, n // 3)) - ema(n)) / atr(14)
                elif spec.kind == "ret":
                    v = np.log(close / closes[:, -1 - n])
                elif spec.kind == "rv":
                    v = rets[:, -n:].std(axis=1, ddof=1)
                else:  # spread, from the bars' highs and lows (Corwin-Schultz): bars carry no quotes here
                    v = 1e4 * spreads[:, -n:].mean(axis=1)
                v = np.asarray(v, dtype=np.float64)
                v[~np.isfinite(v)] = np.nan
                out[spec.name] = v
            if self.mean_window:
                # oldest first, one addition at a time (a cumulative sum): `ml.labels.reversion_mean`'s
                total = np.cumsum(closes[:, -self.mean_window :], axis=1)[:, -1]
                out["mean"] = total * (1.0 / self.mean_window)
            if self.vol_span:
                out["vol"] = self._ewm_std(r, ret1)
        return out

    def _ewm_std(self, r: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Polars' `ewm_std(span, adjust=False, bias=False, min_samples=span)` of `x`, one value per symbol:
        the recursive mean m_t = (1 - a) m_(t-1) + a x_t and variance v_t = (1 - a)(v_(t-1) + a (x_t -
        m_(t-1))^2) from the first valid x (m = x, v = 0), unbiased by 1 / (1 - sum of squared weights),
        where the weights are (1 - a)^t for the first value and a (1 - a)^(t-i) for the later ones."""
        assert self.vol_span is not None
        a = 2.0 / (self.vol_span + 1)
        mean, var, w2, nobs = self.ewm[r].T
        valid = np.isfinite(x)
        start = valid & (nobs == 0)
        more = valid & (nobs > 0)
        delta = x - mean
        mean = np.where(start, x, np.where(more, mean + a * delta, mean))
        var = np.where(start, 0.0, np.where(more, (1.0 - a) * (var + a * delta * delta), var))
        w2 = np.where(start, 1.0, np.where(more, (1.0 - a) ** 2 * w2 + a * a, w2))
        nobs = nobs + valid
        self.ewm[r] = np.column_stack([mean, var, w2, nobs])
        with np.errstate(divide="ignore", invalid="ignore"):
            std = np.sqrt(var / (1.0 - w2))
        return np.where(nobs >= self.vol_span, std, np.nan)

    def run(self, bars: pl.DataFrame) -> dict[str, np.ndarray]:
        """`step` through `bars` (BAR_SCHEMA, sorted by ts then symbol); the last bar time's values."""
        ts = epoch_ns(bars["ts"])
        starts, ends = time_runs(ts)
        symbols = bars["symbol"].to_list()
        cols = {c: bars[c].to_numpy() for c in ("high", "low", "close", "volume")}
        out: dict[str, np.ndarray] = {}
        for lo, hi in zip(starts.tolist(), ends.tolist(), strict=True):
            out = self.step(int(ts[lo]), symbols[lo:hi], {c: v[lo:hi] for c, v in cols.items()})
        return out


def _corwin_schultz(
    high: np.ndarray, low: np.ndarray, prev_high: np.ndarray, prev_low: np.ndarray
) -> np.ndarray:
    """`ml.features.corwin_schultz` for the pair of bars (previous, this one); NaN without a previous bar."""
    hl, prev_hl = np.log(high / low) ** 2, np.log(prev_high / prev_low) ** 2
    beta = hl + prev_hl
    gamma = np.log(np.maximum(high, prev_high) / np.minimum(low, prev_low)) ** 2
    inv_k = 1.0 / (3.0 - 2.0 * math.sqrt(2.0))
    alpha = (np.sqrt(2.0 * beta) - np.sqrt(beta)) * inv_k - np.sqrt(gamma * inv_k)
    s = 2.0 * (np.exp(alpha) - 1.0) / (1.0 + np.exp(alpha))
    return np.where(np.isnan(beta), np.nan, np.clip(s, 0.0, None))
