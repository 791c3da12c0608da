"""Strategy labels: each event is a trade with a side, an entry time t0 and an end time t1.

Both seed strategies are meta-labelled (López de Prado ch. 3): a primary rule gives the event and its
side, the model learns whether that trade pays *net of costs* (label 1) or not (label 0), and the backtest
trades exactly these events, so a label and its backtest P&L are the same number.

- `mean_reversion_labels` (intraday_mean_reversion): event when |z| = |close - SMA_w| / std_w reaches
  `entry_z`; side = -sign(z) (bet on the way back to the mean). The trade enters at the event's close and
  exits at the first later close on the other side of (or at) the entry-time mean, else after
  `horizon_bars`; with intraday bars the trade never crosses the session close (it exits on the session's
  last bar).
- `triple_barrier_labels` (swing_trend_following): event when |trend_strength_w| reaches
  `entry_strength` on every `event_spacing_bars`-th bar of the symbol; side = sign(trend_strength).
  Barriers on the side-adjusted log return: +profit_take x trgt and -stop_loss x trgt with trgt = EWM std
  of 1-bar log returns (span `vol_span`) x sqrt(horizon_bars), and a vertical barrier after
  `horizon_bars` bars (may cross sessions: swing). The first barrier touched (on closes) ends the trade;
  the label is 1 when the side-adjusted return to that time (vertical barrier included: its return's
  sign, not 0) beats the round-trip cost.

The rules (events, barriers, the mean) watch the symbol's close; returns are measured on the `pnl_price`
column (the close by default; the pipeline passes the basket-relative price for market-neutral P&L).
Costs are priced on the close.

Output columns: symbol, t0, t1, side (+1/-1), price (entry pnl_price), exit_price, ret (gross,
side-adjusted), cost (round trip), ret_net, barrier (1 profit-take/reversion, -1 stop, 0 vertical/session
end), label (0/1).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import polars as pl

from hybridtrader.config import MeanReversionLabelConfig, TripleBarrierLabelConfig
from hybridtrader.ml.costs import CostModel
from hybridtrader.ml.features import compute_features, log_return, normalise_bars

NY = "America/New_York"
_DAY_NS = 86_400 * 10**9
_CHUNK = 65_536  # events per forward-path block: bounds memory at CHUNK x horizon floats
# (event rows, forward closes) -> (barrier touched per forward bar, barrier kind per forward bar)
HitFn = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def is_intraday(bars: pl.DataFrame) -> bool:
    """True when the typical spacing of a symbol's bars is below one day."""
    gaps = (
        bars.sort("symbol", "ts")
        .select(pl.col("ts").diff().over("symbol").dt.total_nanoseconds())
        .to_series()
    )
    gaps = gaps.drop_nulls()
    return gaps.len() > 0 and float(gaps.median()) < _DAY_NS


def _prepared(bars: pl.DataFrame, confine_to_session: bool) -> pl.DataFrame:
    """Bars sorted by (symbol, ts) with a `group` id: the trade may not leave its group."""
    frame = normalise_bars(bars)
    keys = ["symbol"]
    if confine_to_session and is_intraday(frame):
        frame = frame.with_columns(_session=pl.col("ts").dt.convert_time_zone(NY).dt.date())
        keys.append("_session")
    changed = pl.any_horizontal([pl.col(k) != pl.col(k).shift(1) for k in keys]).fill_null(True)
    return frame.with_columns(group=changed.cast(pl.Int64).cum_sum())


def _forward(close: np.ndarray, group: np.ndarray, ev: np.ndarray, horizon: int) -> np.ndarray:
    """Closes of the `horizon` bars after each event within its group; NaN past the group's end."""
    ks = np.arange(1, horizon + 1)
    j = ev[:, None] + ks[None, :]
    n = len(close)
    jc = np.minimum(j, n - 1)
    valid = (j < n) & (group[jc] == group[ev][:, None])
    return np.where(valid, close[jc], np.nan)


def _first_true(hit: np.ndarray) -> np.ndarray:
    """Column of the first True per row, -1 when none."""
    any_hit = hit.any(axis=1)
    return np.where(any_hit, hit.argmax(axis=1), -1)


def _exit_offsets(path_hit: np.ndarray, fwd: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Offset (1-based bars after entry) of the exit and whether a barrier (not time) ended the trade."""
    last_valid = (~np.isnan(fwd)).sum(axis=1)  # forward bars are contiguous: the count is the last offset
    first = _first_true(path_hit)
    barrier = first >= 0
    return np.where(barrier, first + 1, last_valid), barrier


def _finish(
    frame: pl.DataFrame,
    ev: np.ndarray,
    side: np.ndarray,
    exit_idx: np.ndarray,
    barrier: np.ndarray,
    costs: CostModel,
    pnl_price: str,
) -> pl.DataFrame:
    close = frame[pnl_price].to_numpy()
    ts = frame["ts"].to_numpy()
    symbols = frame["symbol"].to_numpy()
    price = close[ev]
    ret = side * (close[exit_idx] / price - 1.0)
    cost = costs.round_trip(symbols[ev], side, frame["close"].to_numpy()[ev], ts[ev])
    ret_net = ret - cost
    return pl.DataFrame(
        {
            "symbol": pl.Series(symbols[ev], dtype=pl.String),
            "t0": ts[ev],
            "t1": ts[exit_idx],
            "side": side.astype(np.int8),
            "price": price,
            "exit_price": close[exit_idx],
            "ret": ret,
            "cost": cost,
            "ret_net": ret_net,
            "barrier": barrier.astype(np.int8),
            "label": (ret_net > 0).astype(np.int8),
        }
    ).with_columns(pl.col("t0", "t1").cast(pl.Datetime("ns", "UTC")))


def _label_events(
    frame: pl.DataFrame,
    events: np.ndarray,
    side: np.ndarray,
    horizon: int,
    hit_fn: HitFn,
    costs: CostModel,
    pnl_price: str,
) -> pl.DataFrame:
    close = frame["close"].to_numpy()
    group = frame["group"].to_numpy()
    exit_parts, barrier_parts = [], []
    for lo in range(0, len(events), _CHUNK):
        ev = events[lo : lo + _CHUNK]
        fwd = _forward(close, group, ev, horizon)
        hit, kind = hit_fn(ev, fwd)
        off, touched = _exit_offsets(hit, fwd)
        exit_parts.append(ev + off)
        barrier_parts.append(np.where(touched, kind[np.arange(len(ev)), np.maximum(off - 1, 0)], 0))
    exit_idx = np.concatenate(exit_parts) if exit_parts else np.empty(0, np.int64)
    barrier = np.concatenate(barrier_parts) if barrier_parts else np.empty(0, np.int8)
    return _finish(frame, events, side, exit_idx, barrier, costs, pnl_price)


def _with_forward_room(frame: pl.DataFrame, mask: np.ndarray) -> np.ndarray:
    """Event rows that have at least one later bar in their group."""
    group = frame["group"].to_numpy()
    has_next = np.append(group[1:] == group[:-1], False)
    return np.flatnonzero(mask & has_next)


def mean_reversion_labels(
    bars: pl.DataFrame, cfg: MeanReversionLabelConfig, costs: CostModel, pnl_price: str = "close"
) -> pl.DataFrame:
    frame = _prepared(bars, confine_to_session=True).with_columns(
        _mean=pl.col("close").rolling_mean(cfg.window).over("symbol")
    )
    z = compute_features(frame, [f"zscore_{cfg.window}"])[f"zscore_{cfg.window}"].fill_null(0.0).to_numpy()
    events = _with_forward_room(frame, np.abs(z) >= cfg.entry_z)
    side = -np.sign(z[events])
    mean = frame["_mean"].to_numpy()

    def hit(ev: np.ndarray, fwd: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        s = -np.sign(z[ev])[:, None]
        reached = s * (fwd - mean[ev][:, None]) >= 0.0  # NaN compares False
        return reached, np.ones_like(fwd, dtype=np.int8)

    return _label_events(frame, events, side, cfg.horizon_bars, hit, costs, pnl_price)


def triple_barrier_labels(
    bars: pl.DataFrame, cfg: TripleBarrierLabelConfig, costs: CostModel, pnl_price: str = "close"
) -> pl.DataFrame:
    frame = _prepared(bars, confine_to_session=False).with_columns(
        _vol=log_return(1).ewm_std(span=cfg.vol_span, adjust=False, min_samples=cfg.vol_span).over("symbol"),
    )
    name = f"trend_strength_{cfg.trend_window}"
    strength = compute_features(frame, [name])[name].fill_null(0.0).to_numpy()
    vol = frame["_vol"].fill_null(0.0).to_numpy()
    row = frame.select(pl.int_range(pl.len()).over("symbol")).to_series().to_numpy()
    on_grid = row % cfg.event_spacing_bars == 0
    mask = (np.abs(strength) >= cfg.entry_strength) & (strength != 0.0) & (vol > 0.0) & on_grid
    events = _with_forward_room(frame, mask)
    side = np.sign(strength[events])
    close = frame["close"].to_numpy()
    trgt = vol * np.sqrt(cfg.horizon_bars)

    def hit(ev: np.ndarray, fwd: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        path = np.sign(strength[ev])[:, None] * np.log(fwd / close[ev][:, None])
        up = path >= cfg.profit_take * trgt[ev][:, None]
        down = path <= -cfg.stop_loss * trgt[ev][:, None]
        return up | down, np.where(up, 1, -1).astype(np.int8)

    return _label_events(frame, events, side, cfg.horizon_bars, hit, costs, pnl_price)
