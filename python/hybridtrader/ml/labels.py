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
Costs are priced on the close. The forward scans for the exits run in Rust (`_core.reversion_exits`,
`_core.barrier_exits`): the batch form of `reverted` and `barrier_touch`, the per-bar rules the strategies
call (tests/ml/test_label_exit_scan.py holds the two equal).

Output columns: symbol, t0, t1, side (+1/-1), price (entry pnl_price), exit_price, ret (gross,
side-adjusted), cost (round trip), ret_net, barrier (1 profit-take/reversion, -1 stop, 0 vertical/session
end), label (0/1), bar (the event's row in the bars sorted by (symbol, ts), as `compute_features` orders
its rows).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from hybridtrader._core import barrier_exits, reversion_exits
from hybridtrader.config import MeanReversionLabelConfig, TripleBarrierLabelConfig
from hybridtrader.market.timeconv import NS_PER_DAY
from hybridtrader.ml.costs import CostModel
from hybridtrader.ml.features import (
    GROUP,
    ROW,
    SortedBars,
    compute_features,
    log_return,
    out_of_order,
    per_symbol,
    row_in_symbol,
)

NY = "America/New_York"


def is_intraday(bars: pl.DataFrame | SortedBars) -> bool:
    """True when the typical spacing of a symbol's bars is below one day."""
    if isinstance(bars, SortedBars):  # sorted, with each row's number in its symbol: no string compared
        frame, same = bars.bars.with_columns(bars.row), pl.col(ROW) > 0
    else:
        frame = bars.sort("symbol", "ts") if bars.select(out_of_order()).item() else bars  # usually sorted
        same = pl.col("symbol") == pl.col("symbol").shift(1)
    gaps = frame.select(pl.col("ts").diff().dt.total_nanoseconds().filter(same)).to_series().drop_nulls()
    return gaps.len() > 0 and float(gaps.median()) < NS_PER_DAY


def time_slots(ts: pl.Series, distinct: pl.Series) -> np.ndarray:
    """Each timestamp's position in `distinct` (`ts.unique().sort()`, no nulls)."""
    return np.searchsorted(distinct.to_physical().to_numpy(), ts.to_physical().to_numpy())


def session_of(
    ts: pl.Series, distinct: pl.Series | None = None, slots: np.ndarray | None = None
) -> pl.Series:
    """New York date of each timestamp. Bars of many symbols share their timestamps, so the time-zone
    conversion runs once per distinct timestamp and is mapped back by position. `distinct`:
    `ts.unique().sort()` and `slots`: `time_slots(ts, distinct)` when the caller holds them."""
    if ts.null_count():
        return ts.dt.convert_time_zone(NY).dt.date()
    uniq = ts.unique().sort() if distinct is None else distinct
    pos = time_slots(ts, uniq) if slots is None or distinct is None else slots
    return uniq.dt.convert_time_zone(NY).dt.date().gather(pos).alias(ts.name)


def _prepared(
    bars: pl.DataFrame | SortedBars,
    confine_to_session: bool,
    intraday: bool | None = None,
    sessions: pl.Series | None = None,
) -> pl.DataFrame:
    """Bars sorted by (symbol, ts) with a `group` id (the trade may not leave its group), each row's number
    in its symbol (`features.ROW`) and the symbols' run numbers (`features.GROUP`, the key of
    `features.per_symbol`). `intraday` (`is_intraday(bars)`) and
    `sessions` (`session_of(bars["ts"])`, row for row) when the caller holds them; `sessions` is used only
    when `bars` are already normalised (then its rows are the frame's): a `SortedBars` is, and brings the
    run numbers with it."""
    ready = bars if isinstance(bars, SortedBars) else SortedBars.of(bars)
    normalised = isinstance(bars, SortedBars) or ready.bars is bars
    frame = ready.bars.with_columns(ready.row, ready.group)
    keys = [GROUP]  # the symbol's run number: changes where the symbol does, an integer compared
    if confine_to_session and (is_intraday(frame) if intraday is None else intraday):
        same_rows = sessions is not None and normalised and sessions.len() == frame.height
        frame = frame.with_columns(_session=sessions if same_rows else session_of(frame["ts"]))
        keys.append("_session")
    changed = pl.any_horizontal([pl.col(k) != pl.col(k).shift(1) for k in keys]).fill_null(True)
    return frame.with_columns(group=changed.cast(pl.Int64).cum_sum())


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
    symbols = frame["symbol"].gather(ev).cast(pl.String)  # a Series: no Python string per event
    price = close[ev]
    ret = side * (close[exit_idx] / price - 1.0)
    cost = costs.round_trip(symbols, side, frame["close"].to_numpy()[ev], ts[ev])
    ret_net = ret - cost
    return pl.DataFrame(
        {
            "symbol": symbols,
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
            "bar": ev,
        }
    ).with_columns(pl.col("t0", "t1").cast(pl.Datetime("ns", "UTC")))


def _floats(col: pl.Series) -> np.ndarray:
    return np.ascontiguousarray(col.to_numpy(), dtype=np.float64)


def _forward_room(frame: pl.DataFrame, events: np.ndarray, horizon: int) -> np.ndarray:
    """Bars each event may hold: those left in its group (groups are contiguous, ids ascending), at most
    `horizon`."""
    group = frame["group"].to_numpy()
    group_end = np.searchsorted(group, group[events], side="right") - 1
    return np.minimum(group_end - events, horizon)


def _with_forward_room(frame: pl.DataFrame, mask: np.ndarray) -> np.ndarray:
    """Event rows that have at least one later bar in their group."""
    group = frame["group"].to_numpy()
    has_next = np.append(group[1:] == group[:-1], False)
    return np.flatnonzero(mask & has_next)


def rule_feature(cfg: MeanReversionLabelConfig | TripleBarrierLabelConfig) -> str:
    """The feature whose value makes the events and sides of these labels."""
    if isinstance(cfg, MeanReversionLabelConfig):
        return f"zscore_{cfg.window}"
    return f"trend_strength_{cfg.trend_window}"


def mean_reversion_entries(z: np.ndarray, cfg: MeanReversionLabelConfig) -> tuple[np.ndarray, np.ndarray]:
    """The primary rule of mean reversion on zscore values: event mask |z| >= entry_z, side -sign(z)."""
    return np.abs(z) >= cfg.entry_z, -np.sign(z)


def trend_entries(
    strength: np.ndarray, row: np.ndarray, cfg: TripleBarrierLabelConfig
) -> tuple[np.ndarray, np.ndarray]:
    """The primary rule of the swing strategy on trend_strength values and each row's index within its
    symbol: event mask |strength| >= entry_strength (non-zero) on every event_spacing_bars-th bar, side
    sign(strength)."""
    on_grid = row % cfg.event_spacing_bars == 0
    return (np.abs(strength) >= cfg.entry_strength) & (strength != 0.0) & on_grid, np.sign(strength)


def reversion_mean(window: int) -> pl.Expr:
    """The mean the mean-reversion strategy's exit watches: the symbol's last `window` closes added oldest
    first, one fixed sequence of additions, times 1/window (null before the window fills). A fixed order,
    not a rolling sum, so that a live node adding the same closes bar by bar (`strategy.streaming`) gets
    the same bits: `reverted` compares a close with this mean, and on cent prices they are often equal.
    (The labels keep Polars' rolling mean: the same value to rounding; switching them changes a retrained
    model's verdict in tests/live/test_live_champion.py.)

    On rows in (symbol, ts) order: the shifts run over the whole column (elementwise: cheaper than a
    per-symbol window, which Polars evaluates group by group) and the rows whose window reaches into the
    symbol before are null."""
    close = pl.col("close")
    total = close.shift(window - 1)
    for lag in range(window - 2, -1, -1):
        total = total + close.shift(lag)
    return pl.when(row_in_symbol() >= window - 1).then(total * (1.0 / window))


def reverted(
    side: np.ndarray | float, mean: np.ndarray | float, close: np.ndarray | float
) -> np.ndarray | bool:
    """The exit rule of mean reversion: the close is on the other side of (or at) the entry-time mean,
    side x (close - mean) >= 0 (NaN compares False). Elementwise on arrays; a bool on floats (the
    strategy asks it per open trade and bar time, where a 0-d array costs four times the comparison)."""
    return side * (close - mean) >= 0.0


def barrier_vol(cfg: TripleBarrierLabelConfig, by: str = "symbol") -> pl.Expr:
    """The barrier unit's volatility per symbol: EWM std of 1-bar log returns (span `vol_span`); the
    barriers sit at multiples of this x sqrt(horizon_bars). `by`: the column that partitions the rows by
    symbol (the labels pass `features.GROUP`, the symbols' run number: the same groups, cheaper)."""
    return log_return(1).ewm_std(span=cfg.vol_span, adjust=False, min_samples=cfg.vol_span).over(by)


def barrier_touch(
    side: np.ndarray | float,
    entry: np.ndarray | float,
    trgt: np.ndarray | float,
    close: np.ndarray | float,
    cfg: TripleBarrierLabelConfig,
) -> tuple[np.ndarray, np.ndarray]:
    """The horizontal barriers of the swing strategy on the side-adjusted log return since entry:
    (touched, kind) with kind +1 at >= profit_take x trgt and -1 at <= -stop_loss x trgt."""
    path = side * np.log(close / entry)
    up = path >= cfg.profit_take * trgt
    down = path <= -cfg.stop_loss * trgt
    return np.asarray(up | down), np.where(up, 1, -1).astype(np.int8)


def _rule_values(frame: pl.DataFrame, name: str, features: pl.DataFrame | None) -> np.ndarray:
    """Column `name` of `features` when it has it for exactly the rows of `frame` (same symbol and ts
    order), else computed here; nulls (warm-up) as 0, which never makes an event."""
    if (
        features is not None
        and name in features.columns
        and features.height == frame.height
        and features["ts"].equals(frame["ts"])
        and features["symbol"].equals(frame["symbol"])
    ):
        col = features[name]
    else:
        col = compute_features(frame, [name])[name]
    return col.fill_null(0.0).to_numpy()


def mean_reversion_labels(
    bars: pl.DataFrame | SortedBars,
    cfg: MeanReversionLabelConfig,
    costs: CostModel,
    pnl_price: str = "close",
    features: pl.DataFrame | None = None,
    intraday: bool | None = None,
    sessions: pl.Series | None = None,
) -> pl.DataFrame:
    """`features`: optional `compute_features` output for `bars` holding `rule_feature(cfg)` (reused);
    `intraday` and `sessions`: `is_intraday(bars)` and `session_of(bars["ts"])` when the caller holds them."""
    frame = _prepared(bars, True, intraday, sessions).with_columns(
        _mean=per_symbol(pl.col("close").rolling_mean(cfg.window))
    )
    z = _rule_values(frame, rule_feature(cfg), features)
    entry, sides = mean_reversion_entries(z, cfg)
    events = _with_forward_room(frame, entry)
    side = sides[events]
    mean = frame["_mean"].to_numpy()[events]
    # `reverted` on every later close of each event, first touch wins (the batch scan in Rust)
    exit_idx, barrier = reversion_exits(
        _floats(frame["close"]), events, _forward_room(frame, events, cfg.horizon_bars), side, mean
    )
    return _finish(frame, events, side, exit_idx, barrier, costs, pnl_price)


def triple_barrier_labels(
    bars: pl.DataFrame | SortedBars,
    cfg: TripleBarrierLabelConfig,
    costs: CostModel,
    pnl_price: str = "close",
    features: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """`features`: optional `compute_features` output for `bars` holding `rule_feature(cfg)` (reused)."""
    frame = _prepared(bars, confine_to_session=False).with_columns(
        _vol=barrier_vol(cfg, GROUP),
    )
    strength = _rule_values(frame, rule_feature(cfg), features)
    vol = frame["_vol"].fill_null(0.0).to_numpy()
    row = frame[ROW].to_numpy()
    entry, sides = trend_entries(strength, row, cfg)
    events = _with_forward_room(frame, entry & (vol > 0.0))
    side = sides[events]
    trgt = vol[events] * np.sqrt(cfg.horizon_bars)
    # `barrier_touch` on every later close of each event, first touch wins (the batch scan in Rust)
    exit_idx, barrier = barrier_exits(
        _floats(frame["close"]),
        events,
        _forward_room(frame, events, cfg.horizon_bars),
        side,
        cfg.profit_take * trgt,
        -cfg.stop_loss * trgt,
    )
    return _finish(frame, events, side, exit_idx, barrier, costs, pnl_price)
