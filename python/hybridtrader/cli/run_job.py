"""`hybridtrader run`'s job: the whole system end to end on local parts, in five stages.

1. venue: a seeded synthetic market (optionally with a planted mean-reversion / trend signal) served by the
   local venue in-process on loopback;
2. data: every session's 1-minute bars fetched over HTTP with `AlpacaClient` (rate limiter, backoff) into
   a `BarStore` under the run directory, then `check_data_quality`;
3. train: both seed strategies through `MLPipeline` on every session but the last (MLflow store under the
   run directory);
4. trade: the last session, by the live node (`LiveNode`: the engine's one `Trader` loop, `AlpacaBroker`
   over the venue's trading API and trade_updates stream, journal before every send) with the promoted
   models as the strategies' champions; a strategy whose model was not promoted is not traded;
5. summary: `summary.json` in the run directory (also returned).
The stage callbacks let the command show progress; this module prints nothing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import polars as pl

from hybridtrader.config import Config
from hybridtrader.errors import ConfigError, DataError, ModelError
from hybridtrader.market import calendar

if TYPE_CHECKING:
    from hybridtrader.data.earnings_cache import EarningsBlackout
    from hybridtrader.ml.result import TrainingResult
    from hybridtrader.venue.server import Venue

SUMMARY_VERSION = 2  # 2: the session is traded by the live node (the engine's orders, fills and legs)


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

    def __post_init__(self) -> None:
        if self.symbols < 1:
            raise DataError(f"symbols must be >= 1, got {self.symbols}")
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


def run_job(config: Config, settings: RunSettings, reporter: Reporter) -> dict[str, Any]:
    """Run the main job into `settings.out`. The stores there (bars, MLflow, caches) are updated in place,
    each atomically; the run's results (summary.json, report/, orders.parquet, fills.parquet,
    slippage_state.json, live/: the node's journal and daily report, empty when no strategy was traded)
    appear together or not at all (`staged_outputs`). A run that fails leaves no output directory it
    created empty."""
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
    _check_tradeable(cfg)
    summary: dict[str, Any] = {
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in settings.__dict__.items()}
    }
    timings: dict[str, float] = {}

    # ---- 1. venue
    t = time.perf_counter()
    reporter.stage(1, "local venue")
    from hybridtrader.cli.live_cmd import VENUE_BUDGET_PER_MINUTE
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
    # the node moves the replay clock (speed "max") and asks for each bar time's bars: a budget for that
    venue_cfg = cfg.venue.model_copy(
        update={"speed": "max", "replay_start": None, "rate_limit_per_minute": VENUE_BUDGET_PER_MINUTE}
    )
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
            f"{k}={v}" for k, v in summary["settings"].items() if k != "out"
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
        trade = trade_stage(cfg, venue, history, results, last, out, staging, reporter)
        summary["trading"] = trade["summary"]
        reporter.done(4, trade)
        timings["trade"] = time.perf_counter() - t

    timings["total"] = time.perf_counter() - started
    summary["seconds"] = {k: round(v, 2) for k, v in timings.items()}
    summary["files"] = {
        "bar_store": str(out / "bars"),
        "mlflow": str(out / "mlflow"),
        **{name: str(out / path) for name, path in trade["files"].items()},
        "training_report": str(out / "report" / "index.html"),
        "summary": str(out / "summary.json"),
    }
    from hybridtrader.data.atomic import write_state

    write_state(staging / "summary.json", SUMMARY_VERSION, summary)
    reporter.done(5, summary)
    return summary


def _check_tradeable(cfg: Config) -> None:
    """Every strategy the job trains is one the engine can trade (before an hour of training, not after)."""
    from hybridtrader.strategy.loader import BUILTIN

    for name in _trained(cfg):
        if name not in BUILTIN:
            known = ", ".join(BUILTIN)
            raise ConfigError(f"strategies.{name}: run trains only strategies it can trade ({known})")


def _trained(cfg: Config) -> list[str]:
    return [n for n, s in cfg.strategies.items() if s.enabled and s.ml_model.enabled]


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
    results = []
    for name in _trained(cfg):

        def progress(stage: str, done: int, total: int, name: str = name) -> None:
            reporter.progress(f"{name}: {stage}", done, total)

        results.append(pipeline.train_strategy_model(name, history, progress=progress))
    return results


def trade_stage(
    cfg: Config,
    venue: Venue,
    history: pl.DataFrame,
    results: list[TrainingResult],
    session: date,
    out: Path,
    staging: Path,
    reporter: Reporter,
) -> dict[str, Any]:
    """Trade `session` on `venue` with the live node; `history` (the bars before the session) calibrates
    the slippage model and warms the strategies' features up. Caches go under `out`; the order and fill
    files, the slippage state and the node's journal and daily report into `staging`."""
    from hybridtrader.data.alpaca_client import AlpacaClient
    from hybridtrader.data.atomic import write_parquet_atomic
    from hybridtrader.data.earnings_cache import EarningsBlackout
    from hybridtrader.engine.trader import FILL_SCHEMA, ORDER_SCHEMA
    from hybridtrader.execution.slippage_model import SlippageModel
    from hybridtrader.market.bars import aggregate_quotes
    from hybridtrader.market.synth import daily_bars_from_minutes

    # the node's slippage model starts from ADV and daily volatility of the history's daily bars and the
    # spreads of the session before the traded one, and learns from the session's fills
    slippage = SlippageModel(cfg)
    learned = slippage.learn_from_daily_bars(daily_bars_from_minutes(history))
    quote_session = calendar.previous_session(session)
    q_open, q_close = calendar.session_bounds(quote_session)
    quotes = (
        AlpacaClient(cfg, data_url=venue.url)
        .get_quotes(venue.market.names, q_open, q_close)
        .filter((pl.col("ts") < q_close) & (pl.col("bid") > 0) & (pl.col("ask") >= pl.col("bid")))
    )
    quote_bars = aggregate_quotes(quotes, every="1m") if quotes.height else quotes
    spreads = slippage.learn_from_quote_bars(quote_bars) if quote_bars.height else {"learned": 0}
    state = staging / "slippage_state.json"
    slippage.save(state)
    # earnings blackouts from the venue's Finnhub-compatible calendar (cached under the run directory)
    earnings = EarningsBlackout(
        cfg,
        finnhub_url=venue.urls["finnhub"],
        window=(session - timedelta(days=30), session + timedelta(days=30)),
        path=out / "cache" / "earnings.json",
    )
    earnings.prefetch(venue.market.names)
    promoted = {r.strategy: r for r in results if r.promoted and r.best is not None}
    summary: dict[str, Any] = {
        "session": str(session),
        "models": {name: r.model_id for name, r in promoted.items()},
        "no_model_reason": None if promoted else "no strategy model passed its gates: no model-driven orders",
        "earnings_blackout": [s for s in venue.market.names if earnings.is_blacked_out(s, session)],
        "slippage_symbols_calibrated": learned.height,
        "spreads": {
            "session": str(quote_session),
            "quotes": quotes.height,
            "quote_bars": quote_bars.height,
            "learned": spreads["learned"],
        },
    }
    if promoted:
        traded = _trade_on_node(cfg, venue, history, promoted, session, earnings, state, staging, reporter)
        orders, fills = traded.pop("orders"), traded.pop("fills")
        summary.update(traded)
    else:  # nothing is traded: the account keeps its cash
        orders, fills = pl.DataFrame(schema=ORDER_SCHEMA), pl.DataFrame(schema=FILL_SCHEMA)
        (staging / "live").mkdir()  # published empty: an earlier run's journal does not stay beside these
        cash = venue.config.cash
        summary.update(
            start_equity=cash, end_equity=cash, positions_after_close={}, skipped={}, events=[], api_calls=0
        )
    write_parquet_atomic(orders, staging / "orders.parquet")
    write_parquet_atomic(fills, staging / "fills.parquet")
    filled = orders.filter(pl.col("filled_qty") > 0)
    leg = pl.col("leg").str.split(".").list.first()  # an entry's slices ("entry.0", ...) are its entry
    summary.update(
        orders=orders.height,
        orders_by_leg=dict(orders.group_by(leg, maintain_order=True).len().iter_rows()),
        filled_orders=filled.height,
        filled_shares=float(filled["filled_qty"].sum()),
        fills=fills.height,
        fees=float(fills["fee"].sum()),
        forecast_bps_mean=_mean(filled, "forecast_bps"),
        realized_bps_mean=_mean(filled, "realized_bps"),
        pnl=summary["end_equity"] - summary["start_equity"],
    )
    # what this stage wrote into `staging`, by name
    files = {"orders": "orders.parquet", "fills": "fills.parquet", "slippage_state": "slippage_state.json"}
    if promoted:
        files |= {"journal": "live/journal.sqlite", "daily_report": f"live/reports/{session}.json"}
    return {"summary": summary, "orders": orders, "orders_path": str(out / "orders.parquet"), "files": files}


def _trade_on_node(
    cfg: Config,
    venue: Venue,
    history: pl.DataFrame,
    promoted: dict[str, TrainingResult],
    session: date,
    earnings: EarningsBlackout,
    state: Path,
    staging: Path,
    reporter: Reporter,
) -> dict[str, Any]:
    """`session` traded by a `LiveNode` on `venue` with the promoted strategies, their champions the
    promoted versions (else ModelError), starting from the slippage state at `state` (saved back there
    after the session, learned from its fills); the journal and daily report under `staging/live`."""
    from hybridtrader.cli.live_cmd import VENUE_BUDGET_PER_MINUTE, venue_endpoints
    from hybridtrader.config import with_overrides
    from hybridtrader.execution.rate_limiter import RateLimiter
    from hybridtrader.live.journal import Journal
    from hybridtrader.live.node import LiveNode

    node_cfg = with_overrides(
        cfg,
        {
            "live": {"strategies": list(promoted), "use_models": True},
            "execution": {"slippage": {"state_path": str(state)}},
        },
    )
    minutes = 0

    def tick(node: LiveNode) -> None:
        nonlocal minutes
        minutes += 1
        reporter.progress("trading minutes", minutes, len(node.feed.bar_times(session)))

    journal = Journal(staging / "live" / "journal.sqlite")
    try:
        node = LiveNode(
            node_cfg,
            venue_endpoints(cfg, venue.url),
            sessions=[session],
            symbols=venue.market.names,
            journal=journal,
            on_bar_time=tick,
            limiter=RateLimiter(cfg, rates=[(VENUE_BUDGET_PER_MINUTE, 60.0)]),
        )
    except BaseException:
        journal.close()
        raise
    try:
        start_equity = node.broker.account()["equity"]
        node.start()
        trader = node.trader
        assert trader is not None
        for s in trader.strategies:
            champion = getattr(s, "champion", None)
            want = promoted[s.name].version
            if champion is None or str(champion.version) != str(want):
                got = "none" if champion is None else f"version {champion.version}"
                raise ModelError(f"{s.name}: the registry's champion is {got}, not the promoted v{want}")
        trader.earnings = earnings
        trader.warm_up(history.sort("ts", "symbol"))
        ran = node.run()
        end_equity = node.broker.account()["equity"]
        trader.slippage.save(state)
        calls = node.limiter.stats().get("calls", 0)
    finally:
        node.close()
    return {
        "orders": node.result.orders,
        "fills": node.result.fills,
        "start_equity": start_equity,
        "end_equity": end_equity,
        "ledger_equity": ran["equity"],
        "positions_after_close": ran["broker_positions"],
        "skipped": ran["skipped"],
        "events": ran["events"],
        "api_calls": calls,
    }


def _mean(frame: pl.DataFrame, col: str) -> float | None:
    v = frame[col].drop_nulls().drop_nans().mean() if frame.height else None
    return float(v) if v is not None else None  # type: ignore[arg-type]
