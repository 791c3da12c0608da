"""A backtest: strategies on historical bars through the `Trader`, a `SimBroker` on the fill simulator and a
`SimClock`; outputs written together into one directory (temp dir + rename).

Deterministic: the same config (data, strategies, costs, seed) gives byte-identical outputs; nothing
written depends on the wall clock or the machine.

Memory stays flat in the number of sessions when the run is given a `spill` directory: the bars come one
session at a time (`StoreFeed`), the engine writes its finished orders, fills and equity rows there as
part files once per session, and the outputs are streamed from them.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import polars as pl

from hybridtrader._core import __version__
from hybridtrader.backtest import report
from hybridtrader.backtest.broker import SimBroker
from hybridtrader.backtest.clock import SimClock
from hybridtrader.backtest.feed import FrameFeed, StoreFeed
from hybridtrader.backtest.tearsheet import write_tearsheet
from hybridtrader.config import Config
from hybridtrader.data.bar_store import BarStore
from hybridtrader.engine.ports import Feed
from hybridtrader.engine.trader import Progress, Trader, TraderResult
from hybridtrader.errors import ConfigError
from hybridtrader.execution.fills import FillSettings, FillSimulator
from hybridtrader.execution.slippage_model import SlippageModel
from hybridtrader.market.synth import generate_market
from hybridtrader.portfolio.capital_allocator import CapitalAllocator
from hybridtrader.portfolio.session_universe import SessionUniverse
from hybridtrader.risk.exposure_manager import ExposureManager
from hybridtrader.strategy.loader import build_strategy

OUTPUT_FORMAT = 1


# rows per parquet row group at most, the groups of a table equal in size (what polars' write_parquet does
# with a frame in one piece, so a table streamed from part files is written byte for byte the same)
ROW_GROUP = 131_072


@dataclass
class Backtest:
    result: TraderResult
    summary: dict[str, Any]
    # orders, fills and equity (one row per bar time) are LazyFrames over the result's rows (a spilled
    # run's stay on disk); the other tables are small frames
    tables: dict[str, pl.DataFrame | pl.LazyFrame]


def _dates(start: str | date | None, end: str | date | None) -> tuple[date | None, date | None]:
    def one(name: str, v: str | date | None) -> date | None:
        if v is None or isinstance(v, date):
            return v
        try:
            return date.fromisoformat(v)
        except ValueError:
            raise ConfigError(f"--{name}: not an ISO date (YYYY-MM-DD): {v!r}") from None

    return one("start", start), one("end", end)


def make_feed(
    config: Config,
    *,
    start: str | date | None = None,
    end: str | date | None = None,
    symbols: list[str] | None = None,
    seed: int = 0,
) -> tuple[Feed, dict[str, Any], pl.DataFrame | None]:
    """The feed `backtest.data` asks for, its provenance, and symbol reference data when known."""
    bt = config.backtest
    first, last = _dates(start, end)
    if bt.data == "store":
        root = bt.store if bt.store is not None else config.data_dir / "bars"
        store = BarStore(root)
        names = symbols or store.symbols(bt.timeframe)
        if first is None or last is None:
            raise ConfigError("backtest.data=store needs --start and --end")
        feed = StoreFeed(store, bt.timeframe, first, last, names)
        return (
            feed,
            {
                "source": "store",
                "store": str(root),
                "timeframe": bt.timeframe,
                "symbols": names,
                "start": first.isoformat(),
                "end": last.isoformat(),
            },
            None,
        )
    s = bt.synth
    market = generate_market(
        symbols if symbols else s.symbols,
        s.sessions,
        first or s.start,
        seed=seed,
        ticks=False,
        mean_reversion=s.mean_reversion,
        trend=s.trend,
    )
    feed = FrameFeed(market.bars_1m, start=first, end=last)
    return feed, {"source": "synth", **market.params}, market.symbols


def run_backtest(
    config: Config,
    *,
    feed: Feed | None = None,
    data: dict[str, Any] | None = None,
    symbol_info: pl.DataFrame | None = None,
    start: str | date | None = None,
    end: str | date | None = None,
    symbols: list[str] | None = None,
    seed: int = 0,
    progress: Progress | None = None,
    strategies: list[Any] | None = None,
    spill: Path | None = None,
) -> Backtest:
    """Run `config.backtest.strategies` (or the given Strategy objects) on the configured data, or on `feed`
    (described by `data` in the provenance, with `symbol_info` sectors and shortability when known). With
    `spill` (an empty directory the caller removes once done with the Backtest) the result's rows go there
    as the run goes."""
    if feed is None:
        feed, data, symbol_info = make_feed(config, start=start, end=end, symbols=symbols, seed=seed)
    data = data if data is not None else {"source": type(feed).__name__}
    if strategies is None:
        strategies = [
            build_strategy(spec, config, use_models=config.backtest.use_models)
            for spec in config.backtest.strategies
        ]
    slippage = SlippageModel(config)
    settings = FillSettings.from_config(config)
    broker = SimBroker(FillSimulator(settings, slippage=slippage))
    exposure = ExposureManager(config)
    if symbol_info is not None:
        exposure.load_symbols(symbol_info)
    universe = None
    if config.portfolio.universe.in_engine:
        if data.get("source") != "store":
            raise ConfigError(
                "portfolio.universe.in_engine: needs backtest.data=store (the filters read its bars), "
                f"got data source {data.get('source')!r}"
            )
        universe = SessionUniverse(BarStore(data["store"]), config, list(data["symbols"]))
    trader = Trader(
        config,
        strategies,
        feed,
        broker,
        SimClock(),
        cash=config.backtest.cash,
        slippage=slippage,
        exposure=exposure,
        progress=progress,
        # in memory: a backtest never touches the live allocator's state file
        allocator=CapitalAllocator(config, persist=False) if config.portfolio.allocation.in_engine else None,
        universe=universe,
        spill=spill,
    )
    result = trader.run()
    start_cash = config.backtest.cash
    daily = report.daily_equity(result.scan("equity"), start_cash)
    fills = report.fill_costs(result)
    tables: dict[str, pl.DataFrame | pl.LazyFrame] = {
        "orders": result.scan("orders"),
        "fills": result.scan("fills"),
        "positions": result.positions,
        "equity": report.equity_table(result.scan("equity")),
        "daily": daily,
        "monthly": report.monthly_returns(daily),
        "strategies": report.per_strategy(result, fills),
        "symbols": report.per_symbol(result, fills),
    }
    if config.portfolio.allocation.in_engine:
        tables["allocations"] = result.allocations
    if universe is not None:
        tables["universe"] = universe.frame()
    summary = {
        "format": OUTPUT_FORMAT,
        **report.summary(result, start_cash, daily, fills),
        "provenance": {
            "hybridtrader": __version__,
            "data": data,
            "seed": seed,
            "first_session": daily["session"][0].isoformat() if daily.height else None,
            "last_session": daily["session"][-1].isoformat() if daily.height else None,
            "strategies": [s.describe() for s in strategies],
            "costs": config.execution.model_dump(mode="json", include={"fills", "slippage"}),
            "config_sha256": hashlib.sha256(
                orjson.dumps(config.masked(), option=orjson.OPT_SORT_KEYS)
            ).hexdigest(),
        },
    }
    return Backtest(result, summary, tables)


def write_outputs(backtest: Backtest, out: Path) -> None:
    """Every table as `<name>.parquet`, `summary.json` and `tearsheet.html` into `out`, all or nothing:
    written into a temp dir beside it, then renamed over it (an earlier run's directory is replaced whole)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for name, frame in backtest.tables.items():
            if isinstance(frame, pl.LazyFrame):
                rows = frame.select(pl.len()).collect().item()
                groups = max(1, -(-rows // ROW_GROUP))
                frame.sink_parquet(tmp / f"{name}.parquet", row_group_size=max(1, -(-rows // groups)))
            else:
                frame.write_parquet(tmp / f"{name}.parquet")
        opts = orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS | orjson.OPT_SERIALIZE_NUMPY
        (tmp / "summary.json").write_bytes(orjson.dumps(backtest.summary, option=opts) + b"\n")
        write_tearsheet(backtest.tables, backtest.summary, tmp / "tearsheet.html")
        old = None
        if out.exists():
            old = out.with_name(f".{out.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            out.rename(old)
        tmp.rename(out)
        if old is not None:
            shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
