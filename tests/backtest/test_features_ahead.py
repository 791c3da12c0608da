"""Features computed ahead for several sessions (`rules.session_features_ahead`, what `Trader.run` offers
the strategies) are bit for bit those of one session at a time with its history in front; and a feed's
symbol encoding (`BarBatch.symbol_index`) is the strings' own."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hybridtrader.backtest.feed import FrameFeed
from hybridtrader.config import Config
from hybridtrader.engine.events import BarBatch
from hybridtrader.errors import DataError
from hybridtrader.market.schema import symbol_codes
from hybridtrader.market.synth import generate_market
from hybridtrader.ml.labels import reversion_mean
from hybridtrader.strategy.mean_reversion import IntradayMeanReversion
from hybridtrader.strategy.rules import session_features, session_features_ahead
from polars.testing import assert_frame_equal


def _tail(bars: pl.DataFrame, n: int) -> pl.DataFrame:
    """The last n rows of each symbol (the reference: a plain per-symbol window over the rows)."""
    return bars.filter(pl.int_range(pl.len()).reverse().over("symbol") < n)


def _bitwise_equal(got: pl.DataFrame, want: pl.DataFrame) -> None:
    assert_frame_equal(got, want, check_exact=True)
    for name, dtype in want.schema.items():  # exact compare treats NaN == NaN; check the bits too
        if dtype == pl.Float64:
            a, b = got[name].to_numpy(), want[name].to_numpy()
            assert np.array_equal(a.view(np.int64), b.view(np.int64)), name


def test_features_ahead_equal_those_of_one_session_at_a_time() -> None:
    # symbols that start late and stop early: windows clipped at a symbol's first row, sessions without it
    bars = generate_market(6, 5, seed=4, ticks=False).bars_1m
    day = pl.col("ts").dt.convert_time_zone("America/New_York").dt.date()
    days = bars.select(day.unique().sort()).to_series()
    bars = bars.filter(~((pl.col("symbol") == "SAAB") & (day < days[2])))
    bars = bars.filter(~((pl.col("symbol") == "SAAC") & (day == days[3])))
    batches = list(FrameFeed(bars).batches())
    names, extra, history_bars = ["zscore_20", "atr"], {"mean": reversion_mean(20)}, 150

    want, before = [], None
    for b in batches:
        with_history = b.bars if before is None else pl.concat([_tail(before, history_bars), b.bars])
        want.append(session_features(with_history, names, b.bars.height, **extra))
        before = b.bars if before is None else pl.concat([before, b.bars])

    all_at_once = session_features_ahead(None, batches, names, history_bars, **extra)
    history = _tail(pl.concat([b.bars for b in batches[:2]]), history_bars)
    in_two = [  # the first two sessions as a history given in front
        *session_features_ahead(None, batches[:2], names, history_bars, **extra),
        *session_features_ahead(history, batches[2:], names, history_bars, **extra),
    ]
    for got in (all_at_once, in_two):
        assert len(got) == len(want)
        for g, w in zip(got, want, strict=True):
            _bitwise_equal(g, w)


def test_duplicate_bars_are_refused_as_by_one_session_at_a_time() -> None:
    bars = generate_market(3, 1, seed=4, ticks=False).bars_1m
    doubled = pl.concat([bars, bars.slice(7, 1)])
    batch = BarBatch(bars["ts"][0].date(), doubled.sort("ts", "symbol"), 60_000_000_000)
    names, extra = ["zscore_20", "atr"], {"mean": reversion_mean(20)}
    with pytest.raises(DataError, match="duplicate"):
        session_features(batch.bars, names, batch.bars.height, **extra)
    with pytest.raises(DataError, match="duplicate"):
        session_features_ahead(None, [batch], names, 150, **extra)


def test_mean_reversion_takes_the_features_computed_ahead(tmp_path) -> None:
    bars = generate_market(4, 3, seed=2, ticks=False).bars_1m
    batches = list(FrameFeed(bars).batches())
    ahead, plain = (
        IntradayMeanReversion(Config(data_dir=tmp_path)),
        IntradayMeanReversion(Config(data_dir=tmp_path)),
    )
    ahead.prepare_ahead(None, batches)
    before = None
    for b in batches:
        with_history = b.bars if before is None else pl.concat([_tail(before, plain.history_bars), b.bars])
        _bitwise_equal(ahead.prepare(with_history, b.bars.height), plain.prepare(with_history, b.bars.height))
        before = with_history
    assert not ahead._ahead  # every batch took its frame


def test_a_feeds_symbol_encoding_is_the_strings_own() -> None:
    bars = generate_market(5, 2, seed=1, ticks=False).bars_1m.filter(
        ~((pl.col("symbol") == "SAAA") & (pl.col("ts").dt.day() == 2))  # a symbol missing from a session
    )
    for batch in FrameFeed(bars).batches():
        names, codes = batch.symbol_index()
        assert batch.names is not None  # given by the feed
        plain = BarBatch(batch.session, batch.bars, batch.every_ns)  # no encoding: computed from the strings
        want = symbol_codes(batch.bars["symbol"])
        assert isinstance(want.dtype, pl.Enum)
        assert names == plain.symbol_index()[0] == want.dtype.categories.to_list()
        assert np.array_equal(codes, want.to_physical().to_numpy())
        assert np.array_equal(plain.symbol_index()[1], codes)
        assert [names[c] for c in codes] == batch.bars["symbol"].to_list()
