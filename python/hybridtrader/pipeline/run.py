"""`hybridtrader run`: the whole system end to end on local parts, in five stages.

1. venue: a seeded synthetic market (optionally with a planted mean-reversion / trend signal) served by the
   local venue in-process on loopback;
2. data: every session's 1-minute bars fetched over HTTP with `AlpacaClient` (rate limiter, backoff) into
   a `BarStore` under the run directory, then `check_data_quality`;
3. train: both seed strategies through `MLPipeline` on every session but the last (MLflow store under the
   run directory);
4. trade: the last session, on the venue's trading API through alpaca-py, with the promoted models'
   signals (`SessionTrader`); nothing is traded for a strategy whose model was not promoted;
5. summary: `summary.json` in the run directory (also returned).
The stage callbacks let the CLI show progress; this module prints nothing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import polars as pl

from hybridtrader.config import Config
from hybridtrader.errors import DataError
from hybridtrader.market import calendar

if TYPE_CHECKING:
    from hybridtrader.ml.result import TrainingResult

SUMMARY_VERSION = 1


@dataclass(frozen=True)
class RunSettings:
    out: Path
    symbols: int = 8
    sessions: int = 20
    seed: int = 0
    start: str = "2024-01-02"
    mean_reversion: float = 0.3
    trend: float = 0.0
    regime_reversion: float = 0.0
    max_trades: int = 30

    def __post_init__(self) -> None:
        if self.symbols < 1:
            raise DataError(f"symbols must be >= 1, got {self.symbols}")
        if self.max_trades < 0:
            raise DataError(f"max_trades must be >= 0, got {self.max_trades}")
        if self.sessions < 2:
            raise DataError(
                f"sessions must be >= 2 (train on all but the last, trade the last), got {self.sessions}"
            )


class Reporter(Protocol):
    def stage(self, number: int, title: str) -> None: ...
    def progress(self, task: str, done: int, total: int | None) -> None: ...
    def done(self, number: int, result: dict[str, Any]) -> None: ...


def run_config(config: Config, out: Path) -> Config:
    """The config with every local store (features, MLflow) under the run directory."""
    return config.model_copy(update={"data_dir": out})


def run_pipeline(config: Config, settings: RunSettings, reporter: Reporter) -> dict[str, Any]:
    """Run the main job into `settings.out`. The stores there (bars, MLflow, caches) are updated in place,
    each atomically; the run's results (summary.json, report/, orders.parquet, slippage_state.json) appear
    together or not at all (`staged_outputs`). A run that fails leaves no output directory it created
    empty."""
    from hybridtrader.data.atomic import staged_outputs

    out = settings.out
    created = not out.exists()
    try:
        with staged_outputs(out, "summary.json") as staging:
            return _run(config, settings, reporter, out, staging)
    except BaseException:
        if created and out.is_dir() and not any(out.iterdir()):
            out.rmdir()
        raise


def _run(
    config: Config, settings: RunSettings, reporter: Reporter, out: Path, staging: Path
) -> dict[str, Any]:
    started = time.perf_counter()
    cfg = run_config(config, out)
    summary: dict[str, Any] = {
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in settings.__dict__.items()}
    }
    timings: dict[str, float] = {}

    # ---- 1. venue
    t = time.perf_counter()
    reporter.stage(1, "local venue")
    from hybridtrader.market.synth import generate_market
    from hybridtrader.venue.server import Venue

    market = generate_market(
        symbols=settings.symbols,
        sessions=settings.sessions,
        start=settings.start,
        seed=settings.seed,
        mean_reversion=settings.mean_reversion,
        trend=settings.trend,
        regime_reversion=settings.regime_reversion,
        progress=lambda _s: reporter.progress("generating market", 1, settings.symbols),
    )
    venue_cfg = cfg.venue.model_copy(update={"speed": "max", "replay_start": None})
    with Venue(cfg.model_copy(update={"venue": venue_cfg}), market=market) as venue:
        days = sorted(market.bars_1d["ts"].dt.convert_time_zone(calendar.NEW_YORK.key).dt.date().unique())
        venue_info = {
            "url": venue.url,
            "symbols": venue.market.names,
            "sessions": len(days),
            "first_session": str(days[0]),
            "last_session": str(days[-1]),
            "trades": market.trades.height,
            "quotes": market.quotes.height,
        }
        summary["venue"] = venue_info
        reporter.done(1, venue_info)
        timings["venue"] = time.perf_counter() - t

        # ---- 2. data
        t = time.perf_counter()
        reporter.stage(2, "fetch bars over HTTP")
        # the resume key of an interrupted fetch: the market, not the venue's port (new on every run)
        source = "hybridtrader run synthetic " + ",".join(
            f"{k}={v}" for k, v in summary["settings"].items() if k not in ("out", "max_trades")
        )
        data = fetch_stage(cfg, venue.url, venue.market.names, days, out, reporter, source)
        summary["data"] = data["summary"]
        reporter.done(2, data["summary"])
        timings["data"] = time.perf_counter() - t

        # ---- 3. train
        t = time.perf_counter()
        reporter.stage(3, "train and gate models")
        bars: pl.DataFrame = data["bars"]
        last = days[-1]
        last_open = calendar.session_bounds(last)[0]
        history = bars.filter(pl.col("ts") < last_open)
        results = train_stage(cfg, history, reporter)
        summary["training"] = [
            {
                "strategy": r.strategy,
                "promoted": r.promoted,
                "model_id": r.model_id,
                "version": r.version,
                "alias": r.alias,
                "gates": [g.as_dict() for g in r.gates],
                "reason": r.reason,
                "metrics": {
                    k: r.metrics[k]
                    for k in ("sharpe", "n_trades", "win_rate", "deflated_sharpe", "auc")
                    if k in r.metrics
                },
                "threshold": r.best.threshold if r.best else None,
                "verdict": r.verdict,
                "rule_only": None
                if r.rule is None
                else {"offered": r.rule.offered, "promoted": r.rule.promoted, "model_id": r.rule.model_id},
            }
            for r in results
        ]
        summary["mlflow"] = str(out / "mlflow")
        from hybridtrader.ml.report import write_report

        write_report(results, staging / "report")
        reporter.done(3, {"results": results})
        timings["train"] = time.perf_counter() - t

        # ---- 4. trade
        t = time.perf_counter()
        reporter.stage(4, f"trade the last session ({last})")
        trade = trade_stage(cfg, venue, bars, history, results, last, settings, out, staging, reporter)
        summary["trading"] = trade["summary"]
        reporter.done(4, trade)
        timings["trade"] = time.perf_counter() - t

    timings["total"] = time.perf_counter() - started
    summary["seconds"] = {k: round(v, 2) for k, v in timings.items()}
    summary["files"] = {
        "bar_store": str(out / "bars"),
        "mlflow": str(out / "mlflow"),
        "orders": str(out / "orders.parquet"),
        "slippage_state": str(out / "slippage_state.json"),
        "training_report": str(out / "report" / "index.html"),
        "summary": str(out / "summary.json"),
    }
    from hybridtrader.data.atomic import write_state

    write_state(staging / "summary.json", SUMMARY_VERSION, summary)
    reporter.done(5, summary)
    return summary


def fetch_stage(
    cfg: Config, url: str, symbols: list[str], days: list[Any], out: Path, reporter: Reporter, source: str
) -> dict[str, Any]:
    from hybridtrader.data.alpaca_client import AlpacaClient
    from hybridtrader.data.bar_store import BarStore
    from hybridtrader.data.fetch import fetch_to_store
    from hybridtrader.data.quality import check_data_quality
    from hybridtrader.metrics import METRICS

    store = BarStore(out / "bars")
    client = AlpacaClient(cfg, data_url=url)
    start = calendar.session_bounds(days[0])[0]
    end = calendar.session_bounds(days[-1])[1]
    before = METRICS.snapshot()
    result = fetch_to_store(
        client,
        store,
        symbols,
        "1Min",
        start,
        end,
        progress=lambda d, n, b: reporter.progress("fetching 1Min bars", d, n),
        source=source,
    )
    bars = store.read(symbols, "1Min", start, end)
    quality = check_data_quality(
        bars,
        timeframe="1Min",
        jump_zscore=cfg.data.jump_zscore,
        max_abs_log_return=cfg.data.max_abs_log_return,
    )
    after = METRICS.snapshot()
    api = {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0)}
    summary = {
        "bars_fetched": result.bars,
        "bars_new": result.added,
        "bars_in_store": bars.height,
        "chunks": result.chunks,
        "symbols": len(symbols),
        "store": str(store.root),
        "store_problems": store.verify(),
        "quality": quality.to_dict(),
        "api": api,
        "first_bar": str(bars["ts"].min()),
        "last_bar": str(bars["ts"].max()),
    }
    return {"bars": bars, "summary": summary}


def train_stage(cfg: Config, history: pl.DataFrame, reporter: Reporter) -> list[TrainingResult]:
    from hybridtrader.ml.pipeline import MLPipeline

    pipeline = MLPipeline(cfg)
    strategies = [n for n, s in cfg.strategies.items() if s.enabled and s.ml_model.enabled]
    results = []
    for name in strategies:

        def progress(stage: str, done: int, total: int, name: str = name) -> None:
            reporter.progress(f"{name}: {stage}", done, total)

        results.append(pipeline.train_strategy_model(name, history, progress=progress))
    return results


def trade_stage(
    cfg: Config,
    venue: Any,
    bars: pl.DataFrame,
    history: pl.DataFrame,
    results: list[TrainingResult],
    session: Any,
    settings: RunSettings,
    out: Path,
    staging: Path,
    reporter: Reporter,
) -> dict[str, Any]:
    """Trade `session`; stores under `out`, the order file and slippage state into `staging`."""
    from alpaca.trading.client import TradingClient

    from hybridtrader.credentials import alpaca_keys
    from hybridtrader.data.alpaca_client import AlpacaClient
    from hybridtrader.data.earnings_cache import EarningsBlackout
    from hybridtrader.execution.rate_limiter import RateLimiter
    from hybridtrader.execution.slippage_model import SlippageModel
    from hybridtrader.market.bars import aggregate_quotes
    from hybridtrader.market.synth import daily_bars_from_minutes
    from hybridtrader.pipeline.session_trader import SessionTrader
    from hybridtrader.pipeline.signals import load_champion, strategy_signals
    from hybridtrader.risk.exposure_manager import ExposureManager

    open_dt, close_dt = calendar.session_bounds(session)
    session_bars = bars.filter((pl.col("ts") >= open_dt) & (pl.col("ts") < close_dt))
    limiter = RateLimiter(cfg)
    slippage = SlippageModel(cfg)
    learned = slippage.learn_from_daily_bars(daily_bars_from_minutes(history))
    # spreads: quote bars of the last session before the traded one
    quote_session = calendar.previous_session(session)
    q_open, q_close = calendar.session_bounds(quote_session)
    data = AlpacaClient(cfg, data_url=venue.url, limiter=limiter)
    quotes = data.get_quotes(venue.market.names, q_open, q_close).filter(
        (pl.col("ts") < q_close) & (pl.col("bid") > 0) & (pl.col("ask") >= pl.col("bid"))
    )
    quote_bars = aggregate_quotes(quotes, every="1m") if quotes.height else quotes
    spreads = slippage.learn_from_quote_bars(quote_bars) if quote_bars.height else {"learned": 0}
    exposure = ExposureManager(cfg)
    exposure.load_symbols(venue.market.symbols)

    promoted = [r for r in results if r.promoted and r.best is not None]
    frames = []
    models: dict[str, str] = {}
    for r in promoted:
        model = load_champion(cfg, r.strategy, r.version)
        models[r.strategy] = r.model_id
        frames.append(strategy_signals(cfg, r.strategy, model, r.best.threshold, bars, open_dt, close_dt))
    signals = pl.concat(frames) if frames else pl.DataFrame()
    key, secret = alpaca_keys(cfg, venue.url)
    trading = TradingClient(key, secret, paper=True, url_override=venue.url)
    # earnings blackouts from the venue's Finnhub-compatible calendar (cached under the run directory)
    earnings = EarningsBlackout(
        cfg,
        finnhub_url=venue.urls["finnhub"],
        window=(session - timedelta(days=30), session + timedelta(days=30)),
        path=out / "cache" / "earnings.json",
    )
    earnings.prefetch(venue.market.names)
    blackouts = [s for s in venue.market.names if earnings.is_blacked_out(s, session)]
    trader = SessionTrader(
        cfg,
        trading,
        venue.clock,
        limiter,
        slippage,
        exposure,
        max_trades=settings.max_trades,
        progress=lambda m, n, k: reporter.progress("trading minutes", m, n),
        earnings_blackout=earnings,
    )
    if not promoted:
        # No model passed its gates: no model-driven orders. The session is still walked (equity, flatten).
        trader.max_trades = 0
    result = trader.trade_session(session, session_bars, signals if frames else _no_signals())
    from hybridtrader.data.atomic import write_parquet_atomic

    write_parquet_atomic(result.orders, staging / "orders.parquet")
    slippage.save(staging / "slippage_state.json")
    o = result.orders
    filled = o.filter(pl.col("filled_qty") > 0)
    summary = {
        "session": str(session),
        "models": models,
        "no_model_reason": None if promoted else "no strategy model passed its gates: no model-driven orders",
        "signals": result.signals,
        "skipped": result.skipped,
        "trades": len(result.trades),
        "orders": o.height,
        "filled_orders": filled.height,
        "filled_shares": float(filled["filled_qty"].sum()) if filled.height else 0.0,
        "forecast_bps_mean": _mean(filled, "forecast_bps"),
        "realised_bps_mean": _mean(filled, "realised_bps"),
        "start_equity": result.start_equity,
        "end_equity": result.end_equity,
        "pnl": result.pnl,
        "positions_after_close": result.positions_after,
        "flattened": result.flattened,
        "earnings_blackout": blackouts,
        "api_calls": result.api_calls,
        "slippage_learned_fills": result.learned_fills,
        "slippage_symbols_calibrated": learned.height,
        "spreads": {
            "session": str(quote_session),
            "quotes": quotes.height,
            "quote_bars": quote_bars.height,
            "learned": spreads["learned"],
        },
    }
    return {
        "summary": summary,
        "orders": o,
        "orders_path": str(out / "orders.parquet"),
        "slippage_path": str(out / "slippage_state.json"),
    }


def _no_signals() -> pl.DataFrame:
    from hybridtrader.pipeline.signals import SIGNAL_SCHEMA

    return pl.DataFrame(schema=SIGNAL_SCHEMA)


def _mean(frame: pl.DataFrame, col: str) -> float | None:
    v = frame[col].drop_nulls().drop_nans().mean() if frame.height else None
    return float(v) if v is not None else None  # type: ignore[arg-type]
