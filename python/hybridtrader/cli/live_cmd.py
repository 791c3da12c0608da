"""`hybridtrader live`: the long-running trader; `hybridtrader live status`: what a node is doing.

With no Alpaca keys it trades the local venue: one it starts in a child process on the synthetic market
(`live.symbols`, `live.sessions` traded after `live.history_sessions` of history, `live.seed`), or a running
one (`--venue URL`), in lockstep with its replay clock, paced on trading time (`--speed`; by default the
bar times share what is left of `--duration` after the start). A strategy without a champion in the
registry gets one trained first (with progress), on that history; what was trained, promoted or refused
is printed before trading. The node keeps its journal under `<data_dir>/live/` (or `live.journal`) and the
local venue's data caches beside it (`journal.cache/`); a restarted node resumes the journal's run when its
venue is still up, and otherwise starts a new run (the old journal and caches are kept beside, renamed).

With Alpaca keys (and `alpaca.trading_url`, `data_url`, `stream_url`: the keys go only there) it trades that
account in real time: `live.watchlist`'s bars from the market data stream, orders through the trading API,
`live.sessions` sessions from today (or until `--duration` wall seconds have passed, or SIGTERM). Its
journal is `<data_dir>/live/alpaca.sqlite`; a restart resumes the journal's run while its sessions last.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import gc
import importlib
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests
import yaml
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from hybridtrader.config import Config, load_config
from hybridtrader.credentials import alpaca_keys
from hybridtrader.errors import ConfigError, StateError
from hybridtrader.execution.rate_limiter import RateLimiter
from hybridtrader.market.calendar import NEW_YORK, session_bounds, sessions
from hybridtrader.market.timeconv import from_utc_ns, utc_ns

if TYPE_CHECKING:  # the node's modules load when a node runs (seconds of imports every command would pay)
    from hybridtrader.live.journal import Journal
    from hybridtrader.live.node import Endpoints, LiveNode

MINUTES_PER_SESSION = 390
VENUE_BUDGET_PER_MINUTE = 1_000_000  # requests per key: a replay runs hundreds of market minutes a minute
# how often the venue's trading stream brings its simulator up to the clock (each costs it a few ms of
# CPU, fills or none): in lockstep the clock moves only by the node's requests, which bring the simulator
# up to it themselves, so the stream only forwards their updates; at the venue's default of 1 ms it would
# keep a core busy
VENUE_STREAM_TICK_MS = 20.0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("live", help="trade live: the local venue by default, Alpaca with keys configured")
    p.add_argument(
        "action",
        nargs="?",
        choices=("run", "status"),
        default="run",
        help="run the node (default) or show a running node's status",
    )
    p.add_argument("--config", help="YAML config (default: $HYBRIDTRADER_CONFIG or built-in)")
    p.add_argument("--sessions", type=int, help="sessions to trade (default live.sessions)")
    p.add_argument("--symbols", type=int, help="synthetic market: number of symbols (default live.symbols)")
    p.add_argument(
        "--speed",
        type=float,
        help="market seconds of trading time per wall second, nights skipped (default: finish in --duration)",
    )
    p.add_argument(
        "--duration",
        type=float,
        help="wall seconds the run should take (the local venue, default live.duration_s); with Alpaca "
        "keys: stop after this many",
    )
    p.add_argument("--venue", help="URL of a running local venue to trade (default: start one)")
    p.add_argument("--journal", help="journal path (default live.journal or <data_dir>/live/journal.sqlite)")
    p.set_defaults(run=run)


def _journal_path(cfg: Config, arg: str | None) -> Path:
    if arg:
        return Path(arg)
    name = "alpaca.sqlite" if cfg.alpaca.has_keys else "journal.sqlite"
    return cfg.live.journal if cfg.live.journal is not None else cfg.data_dir / "live" / name


def _set_aside(path: Path, console: Console) -> None:
    """Keep a finished run's journal (and its local venue's caches) beside, renamed, for a new run."""
    from hybridtrader.live.node import run_cache_dir

    aside = path.with_name(f"{path.stem}-{int(time.time())}{path.suffix}")
    for ext in ("", "-wal", "-shm"):
        side = Path(str(path) + ext)
        if side.exists():
            side.rename(Path(str(aside) + ext))
    if run_cache_dir(path).exists():
        run_cache_dir(path).rename(run_cache_dir(aside))
    console.print(f"new run: the previous journal is kept as {aside}")


def _alive(url: str) -> dict[str, Any] | None:
    try:
        r = requests.get(f"{url.rstrip('/')}/venue/info", timeout=2)
        return r.json() if r.status_code == 200 else None
    except (requests.RequestException, ValueError):
        return None


def start_venue(
    cfg: Config, symbols: int, n_sessions: int, workdir: Path
) -> tuple[subprocess.Popen[str], str]:
    """`hybridtrader venue` in a child process (its own process group: it outlives a killed node) on the
    synthetic market: `live.history_sessions` sessions of history, then `n_sessions` to trade (the replay
    clock starts at the first one's open and is moved by the node; history up to the clock); its URL."""
    proc = launch_venue(cfg, symbols, n_sessions, workdir)
    return proc, venue_url(proc)


def launch_venue(cfg: Config, symbols: int, n_sessions: int, workdir: Path) -> subprocess.Popen[str]:
    """`start_venue`'s child process, started (`venue_url` waits until it listens)."""
    venue = cfg.venue.model_dump(mode="json")
    history = cfg.live.history_sessions
    start = date.fromisoformat(venue["market"]["start"])
    days = sessions(start, start + timedelta(days=2 * (history + n_sessions) + 14))
    venue.update(
        speed="max",
        history_until_clock=True,
        rate_limit_per_minute=VENUE_BUDGET_PER_MINUTE,
        stream_tick_ms=VENUE_STREAM_TICK_MS,
        port=0,
        replay_start=session_bounds(days[history])[0].isoformat(),
        market={
            **venue["market"],
            "symbols": symbols,
            "sessions": history + n_sessions,
            "seed": cfg.live.seed,
        },
    )
    workdir.mkdir(parents=True, exist_ok=True)
    conf = workdir / "venue.yaml"
    conf.write_text(yaml.safe_dump({"venue": venue, "execution": cfg.execution.model_dump(mode="json")}))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from hybridtrader.cli import main; sys.exit(main())",
            "venue",
            "--config",
            str(conf),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    return proc


def venue_url(proc: subprocess.Popen[str]) -> str:
    """The trading URL of a venue `launch_venue` started, once it listens."""
    assert proc.stdout is not None
    for line in proc.stdout:
        name, _, url = line.strip().partition(" ")
        if name == "alpaca_trading":
            threading.Thread(target=proc.stdout.read, daemon=True).start()  # keep the pipe drained
            return url.strip()
    raise StateError(f"the local venue exited ({proc.wait()}) before it listened")


def venue_endpoints(cfg: Config, url: str) -> Endpoints:
    """Where a node trades the local venue at `url`: its REST, trade_updates stream and replay clock."""
    from hybridtrader.live.node import Endpoints

    base = url.rstrip("/")
    return Endpoints(
        trading_url=base,
        trading_stream_url=_websocket(base) + "/stream",
        data_url=base,
        venue_url=base,
        keys=alpaca_keys(cfg, base),
    )


def _sessions_from(now_ns: int, n: int) -> list:
    first = from_utc_ns(now_ns).astimezone(NEW_YORK).date()
    return sessions(first, first + timedelta(days=7 * n + 7))[:n]


def run(args: argparse.Namespace) -> int:
    started = time.monotonic()  # the local venue's run is paced to end `--duration` seconds from here
    # the interpreter's collections at exit walk every object the run made (seconds, with MLflow,
    # SQLAlchemy and Polars loaded): nothing left then needs collecting
    atexit.unregister(gc.freeze)
    atexit.register(gc.freeze)
    cfg = load_config(args.config)
    path = _journal_path(cfg, args.journal)
    if args.action == "status":
        return status(path)
    console = Console(stderr=True)
    if cfg.alpaca.has_keys:
        return _run_alpaca(cfg, args, path, console)
    n_sessions = args.sessions or cfg.live.sessions
    n_symbols = args.symbols or cfg.live.symbols
    url, venue_pid = args.venue, None
    if url is None and path.exists():
        known = _journaled(path, "venue") or {}
        if known.get("url") and _alive(known["url"]):
            url, venue_pid = known["url"], known.get("pid")  # resume this journal's run on its venue
            console.print(f"resuming the run in {path} on {url}")
    if url is None:
        if path.exists():
            _set_aside(path, console)
        console.print(
            f"starting the local venue: synthetic market, {n_symbols} symbols, {n_sessions} sessions"
        )
        proc = launch_venue(cfg, n_symbols, n_sessions, path.parent)
        venue_pid = proc.pid
        importlib.import_module("hybridtrader.live.node")  # its seconds of imports while the venue starts
        url = venue_url(proc)
    try:
        summary = _trade(cfg, args, path, url, venue_pid, n_sessions, n_symbols, console, started)
    finally:
        _end_venue(venue_pid, args.venue)
    _print_summary(summary, console)
    return 0


def _journaled(path: Path, key: str) -> Any:
    """What the journal at `path` holds under `key` (None when nothing)."""
    from hybridtrader.live.journal import Journal

    j = Journal(path)
    try:
        return j.get(key)
    finally:
        j.close()


def _end_venue(pid: int | None, given: str | None) -> None:
    """Stop the venue this node (or the crashed node it resumed) started; never one given by --venue."""
    if pid is None or given is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)


def _trade(
    cfg: Config,
    args: argparse.Namespace,
    path: Path,
    url: str,
    venue_pid: int | None,
    n_sessions: int,
    n_symbols: int,
    console: Console,
    started: float,
) -> dict[str, Any]:
    from hybridtrader.live.journal import Journal

    info = _alive(url)
    if info is None:
        raise StateError(f"live: no venue answers at {url}")
    journal = Journal(path)
    journal.put("venue", {"url": url, "pid": venue_pid})
    days = _sessions_from(int(info["now"]), n_sessions)
    speed = args.speed or cfg.live.speed
    # no speed given: the bar times left after the start (training included) share what is left of the
    # duration
    finish_by = None if speed else started + (args.duration or cfg.live.duration_s)
    endpoints = venue_endpoints(cfg, url)
    # the local venue's request budget (the one this command starts allows a lockstep replay's pace)
    budget = VENUE_BUDGET_PER_MINUTE if venue_pid is not None else cfg.venue.rate_limit_per_minute
    return _run_node(
        cfg,
        endpoints,
        journal,
        days,
        list(info["symbols"])[:n_symbols],
        console,
        threading.Event(),
        speed=speed,
        finish_by=finish_by,
        limiter=RateLimiter(cfg, rates=[(budget, 60.0)]),
    )


def _run_alpaca(cfg: Config, args: argparse.Namespace, path: Path, console: Console) -> int:
    """Alpaca keys configured: trade the configured account in real time."""
    from alpaca.trading.client import TradingClient

    from hybridtrader.live.feed import WallClock
    from hybridtrader.live.journal import Journal
    from hybridtrader.live.node import Endpoints

    a, live = cfg.alpaca, cfg.live
    missing = [f"alpaca.{k}" for k in ("trading_url", "data_url", "stream_url") if getattr(a, k) is None]
    if missing:
        raise ConfigError(
            f"live: Alpaca keys are configured but {', '.join(missing)} not: the keys go only to the URLs "
            "configured beside them"
        )
    if not live.watchlist:
        raise ConfigError("live.watchlist: trading Alpaca needs the symbols to trade, e.g. [AAPL, MSFT]")
    assert a.trading_url is not None and a.data_url is not None and a.stream_url is not None
    trading = a.trading_url.rstrip("/")
    endpoints = Endpoints(
        trading_url=trading,
        trading_stream_url=_websocket(trading) + "/stream",
        data_url=a.data_url,
        venue_url=None,
        keys=alpaca_keys(cfg, trading),
        data_stream_url=a.stream_url,
    )
    if live.clock_speed == 1.0:
        clock = WallClock()
    else:  # a local venue serving its market faster than real time: follow its clock
        market = TradingClient(*endpoints.keys, paper=a.paper, url_override=trading).get_clock()
        clock = WallClock(utc_ns(market.timestamp), live.clock_speed)
    days = _sessions_from(clock.now_ns(), args.sessions or live.sessions)
    if path.exists():
        run = _journaled(path, "run") or {}
        if not run.get("sessions") or run["sessions"][-1] < days[0].isoformat():
            _set_aside(path, console)  # that run's sessions are over
        else:
            console.print(f"resuming the run in {path}")
    stop = threading.Event()
    if args.duration:
        timer = threading.Timer(args.duration, stop.set)
        timer.daemon = True
        timer.start()
    summary = _run_node(
        cfg, endpoints, Journal(path), days, list(live.watchlist), console, stop, clock=clock
    )
    _print_summary(summary, console)
    return 0


def _websocket(url: str) -> str:
    """The WebSocket URL of an HTTP one (https -> wss, http -> ws)."""
    return "ws" + url[len("http") :] if url.startswith("http") else url


def _run_node(
    cfg: Config,
    endpoints: Endpoints,
    journal: Journal,
    days: list,
    symbols: list[str],
    console: Console,
    stop: threading.Event,
    **node_options: Any,
) -> dict[str, Any]:
    """Run a node until its sessions end or a SIGTERM/Ctrl-C (`stop`), with progress; its summary."""
    from hybridtrader.live.node import LiveNode

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    progress = Progress(
        TextColumn("[bold]live"),
        BarColumn(),
        TextColumn("{task.description}"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )
    task = progress.add_task("reconciling", total=len(days) * MINUTES_PER_SESSION)

    def tick(node: LiveNode) -> None:
        t = node.trader
        assert t is not None
        progress.update(
            task,
            completed=t.n_bars / max(len(node.symbols), 1),
            description=f"{t.session} equity {t.ledger.equity():,.0f} fills {t.flow.n_fills}",
        )

    train_progress = Progress(
        TextColumn("[bold]training[/] {task.description}"), BarColumn(), console=console, transient=True
    )
    trainings: dict[str, Any] = {}

    def training(strategy: str, stage: str, done: int, total: int) -> None:
        if not trainings:
            console.print("no champion in the registry: training one before trading (small: live.training_*)")
            train_progress.start()
        if strategy not in trainings:
            trainings[strategy] = train_progress.add_task(strategy, total=None)
        train_progress.update(
            trainings[strategy], description=f"{strategy}: {stage}", completed=done, total=max(total, 1)
        )

    node = LiveNode(
        cfg, endpoints, sessions=days, symbols=symbols, journal=journal, stop=stop, on_bar_time=tick,
        on_training=training, **node_options,
    )  # fmt: skip
    try:
        rec = node.start()
        train_progress.stop()
        for line in node.models.lines:
            console.print(line)
        said = len(node.models.lines)
        assert node.ops is not None and node.trader is not None
        console.print(
            f"trading on {endpoints.trading_url} (stream {endpoints.trading_stream_url}), market data "
            f"{endpoints.data_url} (stream {endpoints.data_stream_url or 'none: the replay clock'}); "
            f"metrics on {node.ops.url}/metrics"
        )
        for s in node.trader.strategies:
            console.print(f"{s.name}: model {s.describe().get('model', 'none (rules only)')}")
        console.print(
            f"reconciled: {len(rec.history)} broker updates, {len(rec.resolved_sent)} unacknowledged "
            f"intents found at the broker, {len(rec.never_sent)} never sent, "
            f"{rec.fills_since_journal} fills since the journal's last entry"
        )
        if node.abandoned:
            console.print(f"{len(node.abandoned)} journaled orders never reached the broker: abandoned")
        with progress:
            summary = node.run()
        return {**summary, "model_notes": summary["model_notes"][said:]}  # the start's were printed
    finally:
        node.close()


def _print_summary(summary: dict[str, Any], console: Console) -> None:
    table = Table(title="live run" + (" (stopped)" if summary["stopped"] else ""))
    table.add_column("item")
    table.add_column("value", justify="right")
    for key in ("bars", "orders", "fills"):
        table.add_row(key, f"{summary[key]:,}")
    table.add_row("equity", f"{summary['equity']:,.2f}")
    table.add_row("realized P&L", f"{summary['realized_pnl']:,.2f}")
    table.add_row(
        "broker positions", ", ".join(f"{s} {q:g}" for s, q in summary["broker_positions"].items()) or "flat"
    )
    for reason, n in summary["skipped"].items():
        table.add_row(f"skipped: {reason}", str(n))
    for strategy, version, _ in summary["models"]:
        table.add_row(f"model: {strategy}", f"v{version}" if version else "rules only")
    for line in summary["model_notes"]:
        console.print(line)
    Console().print(table)


def status(path: Path) -> int:
    """A running node's /status (its ops URL from the journal), else what the journal says."""
    from hybridtrader.live.journal import Journal

    if not path.exists():
        raise StateError(f"live status: no journal at {path}")
    j = Journal(path)
    try:
        url = (j.get("ops") or {}).get("url")
        body = None
        if url:
            try:
                body = requests.get(f"{url}/status", timeout=2).json()
            except (requests.RequestException, ValueError):
                body = None
        if body is None:
            intents = j.intents()
            body = {
                "running": False,
                "cursor_ns": j.get("cursor", 0),
                "intents": len(intents),
                "fills": sum(1 for _ in j.fills()),
                "events": [e[2] for e in j.events()[-5:]],
            }
        else:
            body = {"running": True, "ops": url, **body}
    finally:
        j.close()
    for k, v in body.items():
        print(f"{k:12s} {v}")
    return 0
