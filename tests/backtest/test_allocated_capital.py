"""The allocator in the engine (`portfolio.allocation.in_engine`): a two-strategy backtest (mean reversion in
the intraday book, the EMA crossover in the swing book) where each strategy trades within the capital it is
given. Exposure is rebuilt from the fills alone (positions replayed fill by fill, each symbol valued at its
latest fill price), never from the engine's intentions or its own exposure figures."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from hybridtrader.backtest.feed import FrameFeed
from hybridtrader.backtest.run import Backtest, run_backtest, write_outputs
from hybridtrader.config import Config, with_overrides
from hybridtrader.market.calendar import NEW_YORK
from hybridtrader.market.synth import generate_market
from hybridtrader.strategy.examples.ema_cross import EmaCross
from hybridtrader.strategy.mean_reversion import IntradayMeanReversion

# A fill can land one bar after the decision that was checked, at a moved price plus slippage; positions
# are valued at fill prices. 2% covers that drift on 1-minute bars of the synthetic market.
PRICE_DRIFT = 0.02


def _run(tmp_path: Path, in_engine: bool) -> tuple[Config, Backtest]:
    cfg = with_overrides(
        Config(data_dir=str(tmp_path), strategies={"ema_cross": {}}),
        [
            "execution.enable_time_slicing=false",
            "backtest.use_models=false",
            "backtest.cash=100000",
            f"portfolio.allocation.in_engine={str(in_engine).lower()}",
            "portfolio.allocation.method=equal_weight",
        ],
    )
    bars = generate_market(8, 3, seed=5, ticks=False, mean_reversion=0.3).bars_1m
    strategies = [IntradayMeanReversion(cfg), EmaCross(cfg)]
    return cfg, run_backtest(cfg, feed=FrameFeed(bars), strategies=strategies)


def _max_gross_from_fills(fills: pl.DataFrame) -> dict[tuple[object, str], float]:
    """(session, strategy) -> the largest gross exposure the strategy held after the fills of one time
    (fills of one time arrive together: an exit and an entry filled in the same bar count as one step)."""
    held: dict[str, dict[str, float]] = {}
    last_price: dict[str, float] = {}
    out: dict[tuple[object, str], float] = {}
    for (ts,), group in fills.group_by("ts", maintain_order=True):
        session = ts.astimezone(NEW_YORK).date()
        for row in group.iter_rows(named=True):
            sign = 1.0 if row["side"] == "buy" else -1.0
            book = held.setdefault(row["strategy"], {})
            book[row["symbol"]] = book.get(row["symbol"], 0.0) + sign * row["qty"]
            last_price[row["symbol"]] = row["price"]
        for name in set(group["strategy"]):
            gross = sum(abs(q) * last_price[s] for s, q in held[name].items())
            out[(session, name)] = max(out.get((session, name), 0.0), gross)
    return out


def _book_cap(cfg: Config, strategy: str) -> float:
    book = {"intraday_mean_reversion": "intraday", "ema_cross": "swing"}[strategy]
    return cfg.risk.gross_cap_pct(book) / 100.0


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[bool, tuple[Config, Backtest]]:
    return {on: _run(tmp_path_factory.mktemp(f"alloc{on}"), on) for on in (True, False)}


def test_each_strategy_trades_within_its_capital(runs: dict[bool, tuple[Config, Backtest]]) -> None:
    cfg, bt = runs[True]
    alloc = bt.result.allocations
    assert alloc.height == 2 * bt.result.sessions
    assert alloc["weight"].to_list() == pytest.approx([0.5] * alloc.height)  # equal weight of two
    capital = {(r["session"], r["strategy"]): r["capital"] for r in alloc.iter_rows(named=True)}
    gross = _max_gross_from_fills(bt.result.fills)
    assert {s for _, s in gross} == {"intraday_mean_reversion", "ema_cross"}  # both traded
    for key, g in gross.items():
        limit = capital[key] * _book_cap(cfg, key[1])
        assert g <= limit * (1 + PRICE_DRIFT), (key, g, limit)


def test_without_the_allocator_a_strategy_uses_more_than_half(
    runs: dict[bool, tuple[Config, Backtest]],
) -> None:
    """The same run on the whole account passes half the account's cap: the bound above is not vacuous."""
    cfg, bt = runs[False]
    assert bt.result.allocations.height == 0
    half = 0.5 * cfg.backtest.cash
    gross = _max_gross_from_fills(bt.result.fills)
    assert any(g > half * _book_cap(cfg, s) * (1 + PRICE_DRIFT) for (_, s), g in gross.items())


def test_returns_reach_the_allocator_and_outputs(
    runs: dict[bool, tuple[Config, Backtest]], tmp_path: Path
) -> None:
    """Each session's return is that strategy's P&L change over its capital; the sum of the strategies'
    P&L equals the account's (one ledger); the tables and tear sheet carry the allocations."""
    _, bt = runs[True]
    alloc = bt.result.allocations
    assert alloc["ret"].to_list() == pytest.approx((alloc["pnl"] / alloc["capital"]).to_list(), rel=1e-12)
    per_strategy = bt.tables["strategies"]
    for name in ("intraday_mean_reversion", "ema_cross"):
        net = per_strategy.filter(pl.col("strategy") == name)["net_pnl"][0]
        assert alloc.filter(pl.col("strategy") == name)["pnl"].sum() == pytest.approx(net, rel=1e-9)
    write_outputs(bt, tmp_path / "out")
    assert pl.read_parquet(tmp_path / "out" / "allocations.parquet").equals(alloc)
    page = (tmp_path / "out" / "tearsheet.html").read_text()
    assert "Allocations: weight of equity per session" in page and "Strategy contributions" in page
