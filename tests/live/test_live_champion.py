"""The live node's models and pre-open work against real local parts: a local MLflow store, the venue over
loopback, a spawned training process.

- a champion older than live.model_max_age_days is refused (one alert; the strategy trades rules only);
- before the open the shortability and earnings caches are refreshed (a stale file is replaced by the
  venue's answer) and a symbol in an earnings blackout is never entered;
- with no champion the node trains one before trading; after a close the retraining runs in another
  process while the node keeps going, and the next session trades the new version (journaled swap).
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import date
from pathlib import Path

import numpy as np
import orjson
import polars as pl
import pytest
import requests
from hybridtrader.cli.live_cmd import _sessions_from
from hybridtrader.config import Config
from hybridtrader.credentials import alpaca_keys
from hybridtrader.data.atomic import write_state
from hybridtrader.execution.rate_limiter import RateLimiter
from hybridtrader.live.journal import Journal
from hybridtrader.live.node import Endpoints, LiveNode
from hybridtrader.market.calendar import session_bounds
from hybridtrader.market.synth import generate_market
from hybridtrader.market.timeconv import utc_ns
from hybridtrader.monitoring.alerts import EnhancedAlertManager, JsonLinesSink
from hybridtrader.venue import ReplayMarket, Venue
from live_venue import live_venue_config

MR = "intraday_mean_reversion"


def make_node(
    cfg: Config,
    venue: Venue,
    tmp: Path,
    *,
    sessions: int = 1,
    on_bar_time: Callable[[LiveNode], None] | None = None,
    stop: threading.Event | None = None,
) -> LiveNode:
    """A node trading `venue` whose alerts go to `tmp/alerts.jsonl` (read back by `alerts`)."""
    base = venue.url
    ep = Endpoints(base, base.replace("http://", "ws://") + "/stream", base, base, alpaca_keys(cfg, base))
    return LiveNode(
        cfg,
        ep,
        sessions=_sessions_from(venue.clock.now_ns(), sessions),
        symbols=venue.market.names,
        journal=Journal(tmp / "live" / "journal.sqlite"),
        stop=stop,
        on_bar_time=on_bar_time,
        alerts=EnhancedAlertManager(cfg, sinks=[JsonLinesSink(tmp / "alerts.jsonl")]),
        limiter=RateLimiter(cfg, rates=[(1_000_000, 60.0)]),
    )


def alerts(tmp: Path, kind: str) -> list[str]:
    """The messages of the `kind` alerts the node sent to its JSON-lines sink."""
    path = tmp / "alerts.jsonl"
    lines = path.read_bytes().splitlines() if path.exists() else []
    return [a["message"] for a in map(orjson.loads, lines) if a["kind"] == kind]


def register_model(cfg: Config, strategy: str, age_days: float) -> str:
    """A real LightGBM booster registered as `strategy`'s champion, its registration `age_days` old."""
    import lightgbm as lgb
    from hybridtrader.ml.registry import ModelRegistry, RunRecord, tracking_uri

    features = list(cfg.strategies[strategy].ml_model.features)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, len(features)))
    y = (x[:, 0] + rng.normal(size=400) > 0).astype(float)
    booster = lgb.train({"objective": "binary", "verbose": -1}, lgb.Dataset(x, y), num_boost_round=5)
    record = RunRecord(
        strategy=strategy,
        params={"threshold": "0.55"},
        tags={"strategy": strategy},
        metrics={},
        fold_metrics=[],
        artifacts={},
        model=booster,
        model_type="lightgbm",
        feature_names=features,
    )
    version = ModelRegistry(cfg).log(record, promoted=True).version
    db = tracking_uri(cfg).removeprefix("sqlite:///")
    with sqlite3.connect(db) as con:  # the registry's own store: the version was registered long ago
        created = int((time.time() - age_days * 86_400) * 1000)
        con.execute(
            "UPDATE model_versions SET creation_time = ? WHERE name = ? AND version = ?",
            (created, strategy, int(version)),
        )
    return version


def config(tmp: Path) -> Config:
    cfg = Config(data_dir=tmp)
    cfg.live.retrain = False
    return cfg


def test_an_expired_champion_is_refused_with_one_alert_and_the_strategy_trades_rules_only(
    live_venue: Venue, tmp_path: Path
) -> None:
    cfg = config(tmp_path)
    cfg.live.model_max_age_days = 30
    version = register_model(cfg, MR, age_days=40)
    node = make_node(cfg, live_venue, tmp_path)
    try:
        node.start()
        assert node.trader is not None
        (strategy,) = node.trader.strategies
        assert strategy.champion is None  # type: ignore[attr-defined]
        metrics = requests.get(f"{node.ops.url}/metrics", timeout=5).text  # type: ignore[union-attr]
    finally:
        node.close()
    expired = alerts(tmp_path, "model_expired")
    assert len(expired) == 1
    assert f"v{version} is 40.0 days old (> live.model_max_age_days 30)" in expired[0]
    assert f'hybridtrader_model_version{{strategy="{MR}"}} 0.0' in metrics
    assert f'hybridtrader_model_info{{strategy="{MR}",version="rules"}} 1.0' in metrics
    j = Journal(tmp_path / "live" / "journal.sqlite")
    assert j.get("models") == [[MR, None, node.run_info["since_ns"]]]
    assert [kind for _, kind, _ in j.events()] == ["model_expired"]
    j.close()

    # the same champion registered 10 days ago is within the limit: loaded, no alert
    young = tmp_path / "young"
    cfg = config(young)
    version = register_model(cfg, MR, age_days=10)
    node = make_node(cfg, live_venue, young)
    try:
        node.start()
        assert node.trader is not None
        champion = node.trader.strategies[0].champion  # type: ignore[attr-defined]
        assert champion is not None and champion.version == version and champion.threshold == 0.55
    finally:
        node.close()
    assert not alerts(young, "model_expired")


def test_caches_are_refreshed_before_the_open_and_a_blackout_symbol_is_not_entered(tmp_path: Path) -> None:
    names = ["S00", "S01", "S02"]
    synth = generate_market(symbols=names, sessions=1, start="2024-01-02", seed=3, mean_reversion=0.3)
    report = pl.DataFrame(
        {"symbol": ["S01"], "date": [date(2024, 1, 2)], "hour": ["bmo"], "eps_estimate": [1.0],
         "eps_actual": [1.2]},
        schema=synth.earnings.schema,
    )  # fmt: skip
    market = ReplayMarket.from_synthetic(replace(synth, earnings=report))
    cfg = config(tmp_path)
    cfg.live.use_models = False
    stale_at = time.time() - 10 * cfg.data.shortability_ttl_s
    cache = tmp_path / "live" / "journal.cache" / "shortability.json"  # a local venue's: the run's own
    cache.parent.mkdir(parents=True)
    entries = {
        s: {"fetched_at": stale_at, "value": {"shortable": False, "easy_to_borrow": False}} for s in names
    }
    write_state(cache, 1, {"name": "shortability", "ttl_s": 3600.0, "entries": entries})
    stop = threading.Event()

    def on_bar_time(node: LiveNode) -> None:
        assert node.trader is not None
        if node.trader.n_bars // 3 >= 200:
            stop.set()

    with Venue(live_venue_config(), market=market) as venue:
        truth = {a["symbol"]: a["shortable"] for a in requests.get(
            f"{venue.url}/v2/assets", headers=_headers(cfg, venue.url), timeout=5).json()}  # fmt: skip
        started = time.time()
        node = make_node(cfg, venue, tmp_path, on_bar_time=on_bar_time, stop=stop)
        try:
            node.start()
            summary = node.run()
            result = node.result
        finally:
            node.close()
    refreshed = orjson.loads(cache.read_bytes())["entries"]
    for s in names:  # the stale entries were fetched again before the open, with the venue's answer
        assert refreshed[s]["fetched_at"] >= started
        assert refreshed[s]["value"]["shortable"] == truth[s]
    earnings = orjson.loads((tmp_path / "live" / "journal.cache" / "earnings.json").read_bytes())["entries"]
    assert earnings["S01"]["value"] == [{"date": "2024-01-02", "hour": "bmo"}]
    assert earnings["S00"]["value"] == [] and earnings["S00"]["fetched_at"] >= started
    # S01 reports before the open: blacked out today, never entered; the others trade
    traded = set(result.orders["symbol"].to_list())
    assert "S01" not in traded and traded, traded
    assert summary["skipped"].get("toxic time: earnings blackout", 0) > 0


def _headers(cfg: Config, url: str) -> dict[str, str]:
    key, secret = alpaca_keys(cfg, url)
    return {"APCA-API-KEY-ID": key, "APCA-API-SECRET-KEY": secret}


def test_with_no_champion_one_is_trained_then_retrained_after_the_close_and_swapped_in(
    tmp_path: Path,
) -> None:
    history = 5
    synth = generate_market(symbols=8, sessions=history + 2, start="2024-01-02", seed=5, mean_reversion=0.3)
    market = ReplayMarket.from_synthetic(synth)
    first = sorted(set(synth.bars_1m["ts"].dt.convert_time_zone("America/New_York").dt.date().to_list()))
    traded = first[history:]
    cfg = Config(data_dir=tmp_path)
    cfg.live.history_sessions = history
    cfg.live.training_rounds = 20
    cfg.live.retrain_wait_s = 600  # a replay's night: the next open waits for the retraining
    cfg.ml_training.training_schedule = "weekly"
    g = cfg.ml_training.gates  # permissive gates: this test is about the lifecycle, not the model's edge
    g.min_sharpe, g.max_drawdown, g.min_trades, g.min_win_rate = -100.0, 1.0, 1, 0.0
    g.min_deflated_sharpe = g.min_rule_gain_confidence = g.auc_confidence = 1e-6
    versions: list[tuple[date, str]] = []
    stages: list[tuple[str, str]] = []

    def on_bar_time(node: LiveNode) -> None:
        t = node.trader
        assert t is not None and t.session is not None
        champion = t.strategies[0].champion  # type: ignore[attr-defined]
        versions.append((t.session, champion.version if champion else "rules"))
        if len(versions) == 10:  # v1 turns 8 days old: past the weekly schedule, within the 30-day limit
            from hybridtrader.ml.registry import tracking_uri

            with sqlite3.connect(tracking_uri(cfg).removeprefix("sqlite:///")) as con:
                con.execute(
                    "UPDATE model_versions SET creation_time = ?", (int((time.time() - 8 * 86_400) * 1000),)
                )

    open_ns = utc_ns(session_bounds(traded[0])[0])
    with Venue(live_venue_config(replay_start=str(session_bounds(traded[0])[0])), market=market) as venue:
        assert venue.clock.now_ns() == open_ns
        node = make_node(cfg, venue, tmp_path, sessions=2, on_bar_time=on_bar_time)
        node.on_training = lambda strategy, stage, done, total: stages.append((strategy, stage))
        try:
            node.start()
            summary = node.run()
            metrics = requests.get(f"{node.ops.url}/metrics", timeout=5).text  # type: ignore[union-attr]
        finally:
            node.close()
    # trained before trading (with progress), promoted, traded all of the first session
    assert (MR, "final model") in stages and (MR, "registry") in stages
    assert summary["model_notes"][0] == f"{MR}: trained before trading: promoted v1 (champion)"
    assert {v for d, v in versions if d == traded[0]} == {"1"}
    # retrained after the first close in another process; the second session traded v2 from its first bar
    retrain = [
        m for _, kind, m in Journal(tmp_path / "live" / "journal.sqlite").events() if kind == "retrain"
    ]
    assert retrain and f"retraining {MR} on " in retrain[0]
    pid = int(retrain[0].rsplit(" ", 1)[1])
    assert pid != os.getpid()
    assert {v for d, v in versions if d == traded[1]} == {"2"}
    second_open = utc_ns(session_bounds(traded[1])[0])
    assert summary["models"] == [
        [MR, "1", node.run_info["since_ns"]],
        [MR, "2", second_open + 60_000_000_000],  # the close of the session's first bar time
    ]
    assert f'hybridtrader_model_version{{strategy="{MR}"}} 2.0' in metrics
    assert f'hybridtrader_model_info{{strategy="{MR}",version="1"}} 0.0' in metrics
    assert not alerts(tmp_path, "model_expired") and not alerts(tmp_path, "retrain_failed")


def test_metrics_show_the_allocators_capital_and_weights_and_the_universe(tmp_path: Path) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    synth = generate_market(symbols=4, sessions=3, start="2024-01-02", seed=7, mean_reversion=0.3)
    market = ReplayMarket.from_synthetic(synth)
    days = sorted(set(synth.bars_1m["ts"].dt.convert_time_zone("America/New_York").dt.date().to_list()))
    cfg = config(tmp_path)
    cfg.live.use_models = False
    cfg.live.strategies = [MR, "swing_trend_following"]
    cfg.portfolio.allocation.in_engine = True
    u = cfg.portfolio.universe
    u.in_engine, u.lookback_sessions, u.max_symbols = True, 2, 2
    u.min_dollar_volume, u.min_price, u.max_missing_share = 0.0, 0.0, 1.0
    stop = threading.Event()
    seen: dict[str, object] = {}

    def on_bar_time(node: LiveNode) -> None:
        t = node.trader
        assert t is not None and t.allocator is not None
        if t.n_bars // 4 == 60:
            seen["metrics"] = requests.get(f"{node.ops.url}/metrics", timeout=5).text  # type: ignore[union-attr]
            seen["allocation"] = t.allocator.last
            seen["tradable"] = set(t.tradable or ())
        if t.n_bars // 4 >= 120:
            stop.set()

    with Venue(live_venue_config(replay_start=str(session_bounds(days[2])[0])), market=market) as venue:
        node = make_node(cfg, venue, tmp_path, on_bar_time=on_bar_time, stop=stop)
        try:
            node.start()
            node.run()
            orders = node.result.orders
        finally:
            node.close()
    samples = {
        (s.name, s.labels.get("strategy", "")): s.value
        for family in text_string_to_metric_families(str(seen["metrics"]))
        for s in family.samples
    }
    allocation = seen["allocation"]
    assert allocation is not None
    for name in (MR, "swing_trend_following"):
        capital = samples[("hybridtrader_strategy_capital_dollars", name)]
        assert capital == pytest.approx(allocation.capital[name], rel=1e-12)  # type: ignore[attr-defined]
        weight = samples[("hybridtrader_strategy_weight_ratio", name)]
        assert weight == pytest.approx(allocation.weights[name], rel=1e-12)  # type: ignore[attr-defined]
    # no return history yet: both on probation, an equal share each (the allocator's stated rule)
    assert allocation.weights == pytest.approx({MR: 0.5, "swing_trend_following": 0.5})  # type: ignore[attr-defined]
    assert sum(allocation.capital.values()) == pytest.approx(cfg.venue.cash)  # type: ignore[attr-defined]
    # the universe: the 2 symbols of highest average dollar volume over the 2 sessions before the run
    daily = synth.bars_1d.filter(pl.col("ts").dt.convert_time_zone("America/New_York").dt.date() < days[2])
    liquid = daily.group_by("symbol").agg((pl.col("close") * pl.col("volume")).sum().alias("dv"))
    top = set(liquid.sort("dv", descending=True)["symbol"].head(2).to_list())
    assert seen["tradable"] == top
    assert samples[("hybridtrader_universe_symbols", "")] == 2
    assert orders.height and set(orders["symbol"].to_list()) <= top
    assert (tmp_path / "portfolio" / "allocator.json").exists()
    assert (tmp_path / "portfolio" / "universe.json").exists()


def test_a_restart_replays_the_journaled_model_swaps_at_their_bar_times(tmp_path: Path) -> None:
    from hybridtrader.live.champion import LiveModels
    from hybridtrader.live.ops import NodeMetrics
    from hybridtrader.strategy.loader import build_strategy

    cfg = config(tmp_path)
    v1, v2 = register_model(cfg, MR, age_days=1), register_model(cfg, MR, age_days=0)
    t0, t1 = 1_704_205_860_000_000_000, 1_704_292_260_000_000_000
    journal = Journal(tmp_path / "j.sqlite")
    journal.put("models", [[MR, v1, t0], [MR, v2, t1]])  # what the run before the crash journaled
    metrics = NodeMetrics()
    models = LiveModels(cfg, journal, metrics, lambda *a: None, EnhancedAlertManager(cfg, sinks=[]))
    strategy = build_strategy(MR, cfg, use_models=False)

    def no_training() -> pl.DataFrame:
        raise AssertionError("a restart never trains: the journal says what traded")

    models.begin([strategy], t0, no_training)
    assert strategy.champion.version == v1  # type: ignore[attr-defined]
    models.apply_due(t1 - 60_000_000_000, replaying=True)
    assert strategy.champion.version == v1  # type: ignore[attr-defined]
    models.apply_due(t1, replaying=True)
    assert strategy.champion.version == v2  # type: ignore[attr-defined]
    assert f'hybridtrader_model_version{{strategy="{MR}"}} {float(v2)}' in metrics.text().decode()
    assert journal.get("models") == [[MR, v1, t0], [MR, v2, t1]]  # replaying journals nothing new
    journal.close()
