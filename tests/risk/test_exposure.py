"""ExposureManager: every cap on hand-computed cases, risk-reducing orders, shortability, state machine,
end-of-day flattening on the NYSE calendar, circuit breaker, batch == single, config."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import hybridtrader
import numpy as np
import polars as pl
import pytest
from hybridtrader.config import ConfigError, config_from_dict
from hybridtrader.risk.exposure_manager import REASON_CODES, ExposureManager
from hypothesis import assume, given, settings
from hypothesis import strategies as st

# Caps used by most tests: intraday gross 50, net 25, symbol 10, sector 20 (% of equity), order 20k, 3 open.
SMALL = {
    "risk": {
        "max_gross_exposure_pct_intraday": 50,
        "exposure": {
            "books": {
                "intraday": {
                    "max_net_exposure_pct": 25,
                    "max_symbol_exposure_pct": 10,
                    "max_sector_exposure_pct": 20,
                    "max_order_notional": 20_000,
                    "max_open_positions": 3,
                }
            }
        },
        "circuit_breaker": {"max_daily_loss_pct": 3, "max_drawdown_pct": 10, "reduce_daily_loss_pct": 2},
    }
}


def reason_code(reason: str) -> str:
    """The batch reason code a `check_order` reason string corresponds to."""
    prefixes = [
        ("ok", "ok"),
        ("halted:", "halted"),
        ("reducing:", "reducing"),
        ("equity ", "equity"),
        ("order notional ", "order_notional"),
        ("open positions ", "open_positions"),
        ("symbol ", "symbol"),
        ("sector ", "sector"),
        ("gross exposure ", "gross"),
        ("net exposure ", "net"),
    ]
    for prefix, code in prefixes:
        if reason.startswith(prefix):
            return code
    assert " is not shortable " in reason, reason
    return "not_shortable"


@pytest.fixture
def m() -> ExposureManager:
    mgr = ExposureManager(SMALL)
    mgr.set_equity(100_000.0)
    return mgr


def test_exported_from_package_and_seed_snippet() -> None:
    assert hybridtrader.ExposureManager is ExposureManager
    mgr = hybridtrader.ExposureManager(None)
    allowed, reason = mgr.check_exposure_limits(100_000, {"AAPL": 5_000.0}, 4_000.0, "intraday")
    assert (allowed, reason) == (True, "ok")
    assert mgr.books == ["intraday", "swing"]


def test_symbol_cap(m: ExposureManager) -> None:
    assert m.check_order("A", "buy", 100, 100.0) == (True, "ok")  # 10,000 = 10.00% exactly
    assert m.check_order("A", "buy", 101, 100.0) == (
        False,
        "symbol A exposure 10.10% > cap 10.00% (book intraday)",
    )
    m.update_position("intraday", "A", 60, 100.0)
    # 60 held + 41 bought, all valued at the order price 100 -> 10,100
    assert m.check_order("A", "buy", 41, 100.0)[0] is False
    assert m.check_order("A", "buy", 40, 100.0)[0] is True


def test_sector_cap(m: ExposureManager) -> None:
    m.set_sectors({"A": "Tech", "B": "Tech", "C": "Tech", "Z": "Energy"})
    m.update_position("intraday", "A", 100, 100.0)
    m.update_position("intraday", "B", 90, 100.0)
    assert m.sector_exposure("intraday", "Tech") == 19_000.0
    assert m.check_order("C", "buy", 20, 100.0) == (
        False,
        "sector Tech exposure 21.00% > cap 20.00% (book intraday)",
    )
    assert m.check_order("C", "buy", 10, 100.0) == (True, "ok")
    assert m.check_order("Z", "buy", 20, 100.0) == (True, "ok")  # another sector
    assert m.check_order("NOSECTOR", "buy", 20, 100.0) == (True, "ok")
    # shorts count in the sector's gross
    assert m.check_order("C", "sell", 20, 100.0)[1].startswith("sector Tech exposure 21.00%")


def test_net_cap(m: ExposureManager) -> None:
    m.update_position("intraday", "A", 100, 100.0)
    m.update_position("intraday", "B", 90, 100.0)
    assert m.check_order("E", "buy", 70, 100.0) == (
        False,
        "net exposure 26.00% > cap 25.00% (book intraday)",
    )
    assert m.check_order("E", "buy", 60, 100.0) == (True, "ok")
    assert m.check_order("E", "sell", 70, 100.0) == (True, "ok")  # a short lowers net


def test_gross_cap() -> None:
    cfg = {"risk": {"exposure": {"books": {"intraday": {
        "max_net_exposure_pct": 100, "max_symbol_exposure_pct": 100, "max_sector_exposure_pct": 100,
        "max_open_positions": 100,
    }}}}}
    m = ExposureManager(cfg)
    m.set_equity(200_000.0)
    for i, q in enumerate([100, -100, 100, -100]):
        m.update_position("intraday", f"S{i}", q, 200.0)  # gross 80,000 = 40%, net 0
    assert m.metrics("intraday")["gross_pct"] == pytest.approx(40.0)
    assert m.check_order("X", "sell", 100, 200.0) == (True, "ok")  # 100,000 = 50% exactly
    assert m.check_order("X", "sell", 100, 201.0) == (
        False,
        "gross exposure 50.05% > cap 50.00% (book intraday)",
    )
    # the swing book has its own cap (seed default 100%) and no positions
    assert m.check_order("X", "sell", 100, 201.0, "swing")[0] is True


def test_order_notional_and_open_positions(m: ExposureManager) -> None:
    assert m.check_order("A", "buy", 201, 100.0) == (
        False,
        "order notional 20100.00 > cap 20000.00 (book intraday)",
    )
    for s in "ABC":
        m.update_position("intraday", s, 10, 100.0)
    assert m.check_order("D", "buy", 1, 100.0) == (False, "open positions 4 > cap 3 (book intraday)")
    assert m.check_order("A", "buy", 1, 100.0) == (True, "ok")  # adding to an open position
    m.update_position("intraday", "C", 0, 100.0)
    assert m.check_order("D", "buy", 1, 100.0) == (True, "ok")
    assert m.metrics("intraday")["open_positions"] == 2


def test_shortability(m: ExposureManager) -> None:
    m.set_shortable("HTB", False)
    assert not m.is_shortable("HTB") and m.is_shortable("OTHER")
    assert m.check_order("HTB", "sell", 10, 50.0) == (False, "HTB is not shortable (book intraday)")
    m.update_position("intraday", "HTB", 30, 50.0)
    assert m.check_order("HTB", "sell", 30, 50.0) == (True, "ok")  # closes the long
    assert m.check_order("HTB", "sell", 31, 50.0)[0] is False  # would flip short
    m.update_position("intraday", "HTB", -30, 50.0)  # an existing short: can be covered only
    assert m.check_order("HTB", "buy", 10, 50.0) == (True, "ok")
    assert m.check_order("HTB", "sell", 1, 50.0)[0] is False
    # default_shortable = false refuses shorts on symbols never marked
    cfg = {"risk": {"exposure": {"default_shortable": False}}}
    strict = ExposureManager(cfg)
    strict.set_equity(100_000.0)
    assert strict.check_order("X", "sell", 1, 10.0)[1] == "X is not shortable (book intraday)"
    strict.set_shortable("X", True)
    assert strict.check_order("X", "sell", 1, 10.0)[0] is True


def test_risk_reducing_always_allowed_over_caps(m: ExposureManager) -> None:
    m.set_sector("A", "Tech")
    m.update_position("intraday", "A", 1_000, 100.0)  # 100k: every cap breached
    m.update_position("intraday", "B", -500, 100.0)
    assert m.check_order("A", "buy", 1, 100.0)[0] is False
    assert m.check_order("A", "sell", 999, 100.0) == (True, "ok")  # notional 99,900 > 20k cap: still ok
    assert m.check_order("A", "sell", 1_000, 100.0) == (True, "ok")
    assert m.check_order("B", "buy", 500, 100.0) == (True, "ok")
    assert m.check_order("A", "sell", 1_001, 100.0)[0] is False  # flips: not risk-reducing
    m.set_equity(-5.0)
    assert m.check_order("A", "sell", 10, 100.0) == (True, "ok")
    assert m.check_order("C", "buy", 1, 1.0) == (False, "equity -5.00 is not positive (book intraday)")


def test_breached_metric_may_not_worsen_but_may_improve(m: ExposureManager) -> None:
    m.update_position("intraday", "A", 100, 100.0)
    m.update_position("intraday", "B", 100, 100.0)
    m.set_equity(50_000.0)  # net 40% > 25%, gross 40% <= 50%
    assert m.check_order("C", "sell", 20, 100.0) == (True, "ok")  # hedge lowers net
    assert m.check_order("C", "buy", 1, 100.0)[1].startswith("net exposure 40.20% > cap 25.00%")


def test_state_machine(m: ExposureManager) -> None:
    m.update_position("intraday", "A", 50, 100.0)
    assert m.state == "ACTIVE"
    before = m.state_since_ns
    m.set_state("REDUCING", "operator")
    assert (m.state, m.state_reason) == ("REDUCING", "operator") and m.state_since_ns >= before
    assert m.check_order("B", "buy", 1, 100.0) == (
        False,
        "reducing: only risk-reducing orders allowed (operator)",
    )
    assert m.check_order("A", "sell", 10, 100.0) == (True, "ok")
    assert m.check_order("A", "sell", 60, 100.0)[0] is False
    m.set_state("HALTED", "manual halt")
    assert m.check_order("A", "sell", 10, 100.0) == (
        False,
        "halted: only flattening orders allowed (manual halt)",
    )
    assert m.check_order("A", "sell", 50, 100.0) == (True, "ok")
    assert m.check_order("B", "sell", 1, 100.0)[0] is False
    m.reset()
    assert m.state == "ACTIVE" and m.state_reason == "reset"
    with pytest.raises(ValueError, match="state must be ACTIVE, REDUCING or HALTED"):
        m.set_state("PAUSED", "x")


def test_positions_marks_and_fills(m: ExposureManager) -> None:
    m.set_sector("A", "Tech")
    m.apply_fill("intraday", "A", "buy", 30, 100.0)
    m.apply_fill("intraday", "A", "sell", 10, 110.0)
    assert m.position("intraday", "A") == (20.0, 110.0)
    m.apply_fill("intraday", "B", "sell", 5, 40.0)
    m.mark_price("A", 90.0)
    assert m.metrics("intraday") == {
        "gross": 2_000.0, "net": 1_600.0, "gross_pct": 2.0, "net_pct": 1.6, "open_positions": 2
    }
    assert sorted(m.positions("intraday")) == [("A", 20.0, 90.0), ("B", -5.0, 40.0)]
    assert m.sector_exposure("intraday", "Tech") == 1_800.0
    m.set_sector("A", None)
    assert m.sector_exposure("intraday", "Tech") == 0.0 and m.sector_of("A") is None
    m.clear_positions()
    assert m.metrics("intraday")["gross"] == 0.0 and m.positions("intraday") == []


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda m: m.check_order("A", "long", 1, 1.0), "side must be 'buy' or 'sell'"),
        (lambda m: m.check_order("A", "buy", 0, 1.0), "qty must be finite and > 0"),
        (lambda m: m.check_order("A", "buy", float("nan"), 1.0), "qty must be finite"),
        (lambda m: m.check_order("A", "buy", 1, -1.0), "price must be finite and > 0"),
        (lambda m: m.check_order("A", "buy", 1, float("inf")), "price must be finite and > 0"),
        (lambda m: m.check_order("A", "buy", 1, 1.0, "nope"), "unknown book \"nope\""),
        (lambda m: m.check_order("", "buy", 1, 1.0), "symbol must be a non-empty string"),
        (lambda m: m.update_position("intraday", "", 1, 1.0), "symbol must be a non-empty string"),
        (lambda m: m.set_sector("", "Tech"), "symbol must be a non-empty string"),
        (lambda m: m.check_orders(["A", ""], ["buy"] * 2, [1.0] * 2, [1.0] * 2), "symbols must be non-empty"),
        (lambda m: m.update_position("intraday", "A", 1, 0.0), "price must be finite and > 0"),
        (lambda m: m.set_equity(float("nan")), "equity must be finite"),
        (lambda m: m.check_exposure_limits(1e5, [1.0], 0.0), "order_value must be finite, non-zero"),
        (lambda m: m.check_exposure_limits(1e5, [float("nan")], 5.0), r"positions\[0\]"),
    ],
)
def test_invalid_inputs(m: ExposureManager, call, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call(m)


def test_check_exposure_limits_seed_semantics(m: ExposureManager) -> None:
    # new position: gross 25k + 20k long - 20k short... gross = 45k; +9k = 54% > 50%
    assert m.check_exposure_limits(100_000, [25_000, -20_000], 9_000) == (
        False,
        "gross exposure 54.00% > cap 50.00% (book intraday)",
    )
    assert m.check_exposure_limits(100_000, [25_000, -20_000], 5_000) == (True, "ok")
    # the same order as a sell: net 5k - 5k = 0, gross 50% exactly
    assert m.check_exposure_limits(100_000, [25_000, -20_000], -5_000) == (True, "ok")
    # adding to an existing position: the combined value faces the symbol cap; reducing always passes
    pos = {"AAPL": 8_000.0, "MSFT": -3_000.0}
    assert m.check_exposure_limits(100_000, pos, 3_000, symbol="AAPL") == (
        False,
        "symbol AAPL exposure 11.00% > cap 10.00% (book intraday)",
    )
    assert m.check_exposure_limits(100_000, pos, 3_000, symbol="NEW") == (True, "ok")
    assert m.check_exposure_limits(20_000, pos, -7_000, symbol="AAPL") == (True, "ok")
    assert m.check_exposure_limits(100_000, [], 25_000)[1] == (
        "order notional 25000.00 > cap 20000.00 (book intraday)"
    )
    assert m.check_exposure_limits(100_000, None, 1_000, "swing") == (True, "ok")
    # the manager's own positions do not enter the stateless check
    m.update_position("intraday", "AAPL", 1_000, 100.0)
    assert m.check_exposure_limits(100_000, {}, 5_000) == (True, "ok")


# ------------------------------------------------------------------------------------ flatten at close
def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        # normal day in summer time (EDT, close 16:00 = 20:00 UTC), 5 minutes before close
        (utc(2024, 6, 12, 19, 54, 59), False),
        (utc(2024, 6, 12, 19, 55), True),
        (utc(2024, 6, 12, 19, 59, 59), True),
        (utc(2024, 6, 12, 20, 0), False),  # at/after the close: outside hours
        (utc(2024, 6, 12, 14, 0), False),
        # early close: the day after Thanksgiving closes 13:00 EST = 18:00 UTC
        (utc(2024, 11, 29, 17, 54, 59), False),
        (utc(2024, 11, 29, 17, 55), True),
        (utc(2024, 11, 29, 18, 0), False),
        (utc(2024, 11, 29, 20, 56), False),  # 15:56 ET would be the window on a normal day
        # holiday and weekend
        (utc(2024, 11, 28, 20, 57), False),
        (utc(2024, 12, 25, 20, 57), False),
        (utc(2024, 6, 15, 19, 57), False),
        # across DST: Fri 2024-03-08 is EST (close 21:00 UTC), Mon 2024-03-11 is EDT (close 20:00 UTC)
        (utc(2024, 3, 8, 20, 57), True),
        (utc(2024, 3, 8, 19, 57), False),
        (utc(2024, 3, 11, 19, 57), True),
        (utc(2024, 3, 11, 20, 57), False),
        # and back: Fri 2024-11-01 EDT (20:00 UTC), Mon 2024-11-04 EST (21:00 UTC)
        (utc(2024, 11, 1, 19, 57), True),
        (utc(2024, 11, 4, 19, 57), False),
        (utc(2024, 11, 4, 20, 57), True),
    ],
)
def test_should_flatten_intraday(now: datetime, expected: bool) -> None:
    assert ExposureManager().should_flatten_intraday(now) is expected


def test_should_flatten_intraday_configurable_and_aware_only() -> None:
    m = ExposureManager({"risk": {"exposure": {"flatten_minutes_before_close": 15}}})
    assert m.should_flatten_intraday(utc(2024, 6, 12, 19, 45))
    assert not m.should_flatten_intraday(utc(2024, 6, 12, 19, 44, 59))
    from zoneinfo import ZoneInfo

    assert m.should_flatten_intraday(datetime(2024, 11, 29, 12, 50, tzinfo=ZoneInfo("America/New_York")))
    with pytest.raises(ValueError, match="timezone-aware"):
        m.should_flatten_intraday(datetime(2024, 6, 12, 19, 50))
    ns = int(utc(2024, 11, 29, 17, 50).timestamp()) * 1_000_000_000
    assert m.should_flatten_intraday(ns) and m.should_flatten_intraday(np.int64(ns))
    assert not m.should_flatten_intraday(ns + 10 * 60 * 1_000_000_000)


# ----------------------------------------------------------------------------------- circuit breaker
def test_circuit_breaker_daily_loss_halts_until_next_session() -> None:
    m = ExposureManager(SMALL)
    t0 = utc(2024, 11, 27, 15, 0)  # Wednesday before Thanksgiving
    assert m.should_emergency_flatten(100_000.0, t0) is False
    assert (m.session, m.session_start_equity, m.state) == (date(2024, 11, 27), 100_000.0, "ACTIVE")
    assert m.should_emergency_flatten(98_100.0, t0 + timedelta(hours=1)) is False
    t2 = t0 + timedelta(hours=2)
    assert m.should_emergency_flatten(98_000.0, t2) is False  # 2% -> REDUCING
    assert (m.state, m.state_reason) == ("REDUCING", "daily loss 2.00% >= reduce level 2.00%")
    t3 = t0 + timedelta(hours=3)
    assert m.should_emergency_flatten(97_000.0, t3) is True  # 3% -> HALTED
    assert (m.state, m.state_reason, m.state_since) == ("HALTED", "daily loss 3.00% >= limit 3.00%", t3)
    assert m.should_emergency_flatten(100_500.0, t3 + timedelta(minutes=30)) is True  # sticky
    # Thanksgiving is no session: still halted
    assert m.should_emergency_flatten(100_500.0, utc(2024, 11, 28, 16, 0)) is True
    # next session (early-close Friday): a new session resets, new daily reference
    assert m.should_emergency_flatten(100_500.0, utc(2024, 11, 29, 14, 31)) is False
    assert (m.state, m.session, m.session_start_equity) == ("ACTIVE", date(2024, 11, 29), 100_500.0)
    assert m.peak_equity == 100_500.0


def test_circuit_breaker_drawdown_and_explicit_reset() -> None:
    m = ExposureManager({"risk": {"circuit_breaker": {"max_daily_loss_pct": 50, "reduce_daily_loss_pct": None,
                                                     "max_drawdown_pct": 10}}})
    days = [utc(2024, 6, d, 15) for d in (10, 11, 12, 13)]
    assert not m.should_emergency_flatten(100_000.0, days[0])
    assert not m.should_emergency_flatten(95_000.0, days[1])
    assert not m.should_emergency_flatten(90_001.0, days[2])
    assert m.should_emergency_flatten(90_000.0, days[2] + timedelta(hours=1))  # 10% below the 100k peak
    assert m.state_reason == "drawdown 10.00% >= limit 10.00%"
    m.reset(days[2] + timedelta(hours=2))
    assert m.state == "ACTIVE" and m.peak_equity == 90_000.0
    assert not m.should_emergency_flatten(89_000.0, days[2] + timedelta(hours=3))
    # a new session does not forget the peak: drawdown trips again the next day
    assert m.should_emergency_flatten(80_000.0, days[3])


def test_halted_refuses_new_risk_even_after_session_positions(m: ExposureManager) -> None:
    m.update_position("intraday", "A", 10, 100.0)
    m.should_emergency_flatten(100_000.0, utc(2024, 6, 12, 15))
    assert m.should_emergency_flatten(90_000.0, utc(2024, 6, 12, 16))
    reason = m.check_order("B", "buy", 1, 100.0)[1]
    assert reason.startswith("halted: only flattening orders allowed (daily loss")
    assert m.check_order("A", "sell", 10, 100.0) == (True, "ok")


# ------------------------------------------------------------------------------------------- batch
def random_orders(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    syms = np.array(["A", "B", "C", "E", "HTB", "NEW1", "NEW2"])[rng.integers(0, 7, n)]
    sides = np.array(["buy", "sell"])[rng.integers(0, 2, n)]
    qtys = rng.choice([1.0, 5.0, 10.0, 20.0, 60.0, 95.0, 150.0], n)
    prices = rng.choice([50.0, 99.5, 100.0, 140.25], n)
    return syms, sides, qtys, prices


LOADED = {
    "risk": {
        "max_gross_exposure_pct_intraday": 50,
        "exposure": {"books": {"intraday": {
            "max_net_exposure_pct": 10, "max_symbol_exposure_pct": 20, "max_sector_exposure_pct": 40,
            "max_order_notional": 20_000, "max_open_positions": 4,
        }}},
    }
}


def loaded(state: str = "ACTIVE") -> ExposureManager:
    """A book near several caps at once (equity 50k: gross 49%, net 13% > 10%, Tech 37% of 40%, 4 of 4
    positions), so random orders hit every kind of refusal."""
    m = ExposureManager(LOADED)
    m.set_equity(50_000.0)
    m.set_sectors({"A": "Tech", "B": "Tech", "E": "Tech", "C": "Energy"})
    m.set_shortable("HTB", False)
    m.update_position("intraday", "A", 95, 100.0)
    m.update_position("intraday", "B", -90, 100.0)
    m.update_position("intraday", "C", 59, 100.0)
    m.update_position("intraday", "E", 1, 100.0)
    if state != "ACTIVE":
        m.set_state(state, "test")
    return m


@pytest.mark.parametrize("state", ["ACTIVE", "REDUCING", "HALTED"])
def test_check_orders_equals_check_order(state: str) -> None:
    m = loaded(state)
    rng = np.random.default_rng(7)
    syms, sides, qtys, prices = random_orders(rng, 3_000)
    out = m.check_orders(syms, sides, qtys, prices)
    assert out.schema == pl.Schema({"allowed": pl.Boolean, "reason": pl.Enum(REASON_CODES)})
    single = [m.check_order(s, d, q, p) for s, d, q, p in zip(syms, sides, qtys, prices, strict=True)]
    assert out["allowed"].to_list() == [a for a, _ in single]
    assert out["reason"].to_list() == [reason_code(r) for _, r in single]
    seen = set(out["reason"].to_list())
    if state == "ACTIVE":
        assert seen == set(REASON_CODES) - {"equity", "halted", "reducing"}
    elif state == "REDUCING":  # risk-reducing orders priced off the mark may still hit a cap that held
        assert {"ok", "reducing"} <= seen <= {"ok", "reducing", "symbol", "sector", "gross", "net"}
    else:
        assert seen == {"ok", "halted"}
    # other input forms give the same answer; the batch changed nothing
    signs = np.where(sides == "buy", 1, -1)
    alt = m.check_orders(pl.Series(syms), signs, pl.Series(qtys), prices.tolist())
    assert alt.equals(out)
    assert m.check_orders(syms.astype(object), list(sides), qtys, prices).equals(out)
    assert m.metrics("intraday")["open_positions"] == 4 and m.position("intraday", "NEW1") == (0.0, 0.0)


def test_check_orders_sequential_applies_allowed_orders() -> None:
    rng = np.random.default_rng(11)
    syms, sides, qtys, prices = random_orders(rng, 400)
    batch, loop = loaded(), loaded()
    out = batch.check_orders(syms, sides, qtys, prices, sequential=True)
    expected = []
    for s, d, q, p in zip(syms, sides, qtys, prices, strict=True):
        ok, _ = loop.check_order(s, d, q, p)
        if ok:
            loop.apply_fill("intraday", s, d, q, p)
        expected.append(ok)
    assert out["allowed"].to_list() == expected
    assert sorted(batch.positions("intraday")) == sorted(loop.positions("intraday"))
    assert batch.metrics("intraday") == loop.metrics("intraday")


def test_check_orders_invalid_inputs() -> None:
    m = loaded()
    with pytest.raises(ValueError, match=r"order 1: qty must be finite and > 0"):
        m.check_orders(["A", "B"], ["buy", "buy"], [1.0, -1.0], [1.0, 1.0])
    with pytest.raises(ValueError, match=r"sides must be 'buy' or 'sell', got 'hold'"):
        m.check_orders(["A", "B"], ["buy", "hold"], [1.0, 1.0], [1.0, 1.0])
    with pytest.raises(ValueError, match=r"sides\[1\] must be \+1 \(buy\) or -1 \(sell\), got 2"):
        m.check_orders(["A", "B"], np.array([1, 2]), [1.0, 1.0], [1.0, 1.0])
    with pytest.raises(ValueError, match="arrays must have the same length"):
        m.check_orders(["A", "B"], ["buy", "buy"], [1.0], [1.0, 1.0])
    with pytest.raises(ValueError, match="element 1 must be a str"):
        m.check_orders(["A", 3], ["buy", "buy"], [1.0, 1.0], [1.0, 1.0])
    with pytest.raises(ValueError, match="unknown book"):
        m.check_orders(["A"], ["buy"], [1.0], [1.0], book="x")
    empty = m.check_orders(np.array([], dtype="<U1"), np.array([], dtype="<U4"), [], [])
    assert empty.height == 0


# -------------------------------------------------------------------------------------------- config
def test_config_books_and_errors() -> None:
    cfg = config_from_dict({"risk": {"max_gross_exposure_pct_swing": 80,
                                     "exposure": {"books": {"overnight": {"max_gross_exposure_pct": 20}}}}})
    m = ExposureManager(cfg)
    assert m.books == ["intraday", "swing", "overnight"]
    m.set_equity(100_000.0)
    # overnight inherits the generic defaults (symbol 10%) with its own 20% gross cap
    m.update_position("overnight", "A", 100, 100.0)
    m.update_position("overnight", "B", 95, 100.0)
    assert m.check_order("C", "buy", 6, 100.0, "overnight")[1] == (
        "gross exposure 20.10% > cap 20.00% (book overnight)"
    )
    with pytest.raises(ConfigError, match="max_gross_exposure_pct_intraday instead"):
        config_from_dict({"risk": {"exposure": {"books": {"intraday": {"max_gross_exposure_pct": 20}}}}})
    with pytest.raises(ConfigError, match=r"exposure.books.x.max_gross_exposure_pct is required"):
        config_from_dict({"risk": {"exposure": {"books": {"x": {}}}}})
    with pytest.raises(ConfigError, match="max_open_positions"):
        config_from_dict({"risk": {"exposure": {"books": {"swing": {"max_open_positions": 0}}}}})
    with pytest.raises(ConfigError, match="max_daily_loss_pct"):
        config_from_dict({"risk": {"circuit_breaker": {"max_daily_loss_pct": -1}}})


def test_first_breaker_call_on_a_closed_day_starts_a_session() -> None:
    m = ExposureManager(SMALL)
    assert not m.should_emergency_flatten(50_000.0, utc(2024, 6, 15, 15))  # Saturday
    assert m.session == date(2024, 6, 15) and m.session_start_equity == 50_000.0
    assert m.should_emergency_flatten(48_000.0, utc(2024, 6, 16, 15))  # Sunday: same session, -4%
    assert not m.should_emergency_flatten(48_000.0, utc(2024, 6, 17, 13, 30))  # Monday: new session
    assert (m.session, m.state) == (date(2024, 6, 17), "ACTIVE")


def test_mark_price_error_changes_nothing(m: ExposureManager) -> None:
    m.update_position("intraday", "A", 10, 100.0)
    m.update_position("swing", "A", 1e9, 100.0)
    with pytest.raises(ValueError, match="exceeds the supported maximum"):
        m.mark_price("A", 2_000.0)  # 1e9 x 2000 = 2e12 > 1e12 in the swing book
    assert m.position("intraday", "A") == (10.0, 100.0)
    assert m.metrics("intraday")["gross"] == 1_000.0


def test_mark_prices_is_mark_price_per_pair_and_an_error_changes_nothing() -> None:
    one, batch = ExposureManager(SMALL), ExposureManager(SMALL)
    for x in (one, batch):
        x.set_equity(100_000.0)
        x.update_position("intraday", "A", 10, 100.0)
        x.update_position("swing", "A", -4, 100.0)
        x.update_position("intraday", "B", 5, 20.0)
    pairs = [("A", 101.0), ("unknown", 3.0), ("B", 21.5), ("A", 102.0)]
    for sym, price in pairs:
        one.mark_price(sym, price)
    batch.mark_prices([s for s, _ in pairs], np.array([p for _, p in pairs]))
    for book in ("intraday", "swing"):
        assert batch.metrics(book) == one.metrics(book)
    assert batch.position("swing", "A") == (-4.0, 102.0)
    with pytest.raises(ValueError, match="symbol B: price must be finite"):
        batch.mark_prices(["A", "B"], np.array([50.0, float("nan")]))
    assert batch.position("intraday", "A") == (10.0, 102.0)  # A not re-marked either
    with pytest.raises(ValueError, match="2 symbols but 1 prices"):
        batch.mark_prices(["A", "B"], np.array([50.0]))


def test_batch_runs_without_the_gil_while_other_threads_check() -> None:
    import threading

    m = loaded()
    syms, sides, qtys, prices = random_orders(np.random.default_rng(5), 200_000)
    expected = m.check_orders(syms, sides, qtys, prices)
    results: list[pl.DataFrame] = []
    worker = threading.Thread(target=lambda: results.append(m.check_orders(syms, sides, qtys, prices)))
    worker.start()
    singles = [m.check_order("A", "sell", 10, 100.0) for _ in range(2_000)]
    worker.join(timeout=60)
    assert not worker.is_alive()
    assert results[0].equals(expected)
    assert set(singles) == {(True, "ok")}


def test_check_exposure_limits_position_layouts(m: ExposureManager) -> None:
    rows = [{"symbol": "AAPL", "qty": 50, "price": 160.0}, {"symbol": "MSFT", "market_value": -3_000.0}]
    frame = pl.DataFrame({"symbol": ["AAPL", "MSFT"], "qty": [50, -10], "price": [160.0, 300.0]})
    nested = {"AAPL": {"qty": 50, "price": 160.0}, "MSFT": {"market_value": -3_000.0}}
    for positions in (rows, frame, nested):
        # AAPL 8,000 + 3,000 -> 11% > 10%
        assert m.check_exposure_limits(100_000, positions, 3_000, symbol="AAPL") == (
            False,
            "symbol AAPL exposure 11.00% > cap 10.00% (book intraday)",
        )
        # MSFT -3,000 - 8,000 -> 11% short; buying 3,000 closes it
        assert m.check_exposure_limits(100_000, positions, -8_000, symbol="MSFT") == (
            False,
            "symbol MSFT exposure 11.00% > cap 10.00% (book intraday)",
        )
        assert m.check_exposure_limits(100_000, positions, 3_000, symbol="MSFT") == (True, "ok")
    with pytest.raises(ValueError, match=r"positions\[0\] needs 'market_value' or 'qty' and 'price'"):
        m.check_exposure_limits(100_000, [{"qty": 5}], 1_000)
    with pytest.raises(ValueError, match=r"positions\['A'\] must be a market value, got 'x'"):
        m.check_exposure_limits(100_000, {"A": "x"}, 1_000)


def test_risk_reducing_order_may_not_take_a_held_cap_past_it(m: ExposureManager) -> None:
    # long 10k + 10k + 5k, short 5k: net 20k of a 25k cap (gross 30k of 50k)
    for sym, q in [("A", 100), ("B", 100), ("C", 50), ("D", -50)]:
        m.update_position("intraday", sym, q, 100.0)
    assert m.check_order("D", "buy", 50, 100.0) == (True, "ok")  # net 25% exactly
    m.update_position("intraday", "C", 60, 100.0)  # net 21k
    # covering 50 short would take net from 21% to 26%: refused even though it reduces the position
    assert m.check_order("D", "buy", 50, 100.0) == (False, "net exposure 26.00% > cap 25.00% (book intraday)")
    assert m.check_order("D", "buy", 40, 100.0) == (True, "ok")
    # an order far above the last mark revalues the whole position: 100 @ 100 -> 99 @ 102 > 10%
    assert m.check_order("A", "sell", 1, 102.0) == (
        False,
        "symbol A exposure 10.10% > cap 10.00% (book intraday)",
    )
    m.mark_price("A", 102.0)  # once marked, the position is past its cap and reducing it passes
    assert m.check_order("A", "sell", 1, 102.0) == (True, "ok")


def test_config_forms(tmp_path) -> None:
    from hybridtrader.config import Config

    path = tmp_path / "config.yaml"
    path.write_text("risk:\n  max_gross_exposure_pct_intraday: 20\n")
    full = {"risk": {"max_gross_exposure_pct_intraday": 20}, "trading": {"anything": 1}}  # seed-style dict
    section = {"max_gross_exposure_pct_intraday": 20}
    forms = (full, section, config_from_dict({"risk": section}), config_from_dict({"risk": section}).risk,
             path, str(path))
    for cfg in forms:
        m = ExposureManager(cfg)
        m.set_equity(100_000.0)
        m.update_position("intraday", "A", 100, 100.0)
        m.update_position("intraday", "B", 100, 100.0)  # gross 20,000 = 20% exactly
        assert m.check_order("C", "buy", 1, 100.0) == (
            False,
            "gross exposure 20.10% > cap 20.00% (book intraday)",
        )
    assert ExposureManager(Config()).config == ExposureManager({}).config == ExposureManager().config
    with pytest.raises(ConfigError, match=r"risk\.exposure\.flatten_minutes_before_close"):
        ExposureManager({"risk": {"exposure": {"flatten_minutes_before_close": -1}}})
    with pytest.raises(TypeError, match="config must be"):
        ExposureManager(42)  # type: ignore[arg-type]


def test_load_symbols_from_a_reference_frame(m: ExposureManager) -> None:
    ref = pl.DataFrame(
        {
            "symbol": ["AAA", "BBB", "CCC"],
            "sector": ["Tech", None, "Tech"],
            "shortable": [True, False, True],
            "easy_to_borrow": [True, False, False],
        }
    )
    m.load_symbols(ref)
    assert [m.sector_of(s) for s in ("AAA", "BBB", "CCC")] == ["Tech", None, "Tech"]
    assert [m.is_shortable(s) for s in ("AAA", "BBB", "CCC")] == [True, False, True]
    assert m.check_order("BBB", "sell", 1, 10.0) == (False, "BBB is not shortable (book intraday)")
    with pytest.raises(ValueError, match="needs a 'symbol' column"):
        m.load_symbols(pl.DataFrame({"ticker": ["A"]}))
    with pytest.raises(ValueError, match="shortable is null for X"):
        m.load_symbols(pl.DataFrame({"symbol": ["X"], "shortable": [None]}, schema_overrides={
            "shortable": pl.Boolean}))


def test_breaker_state_round_trip_keeps_a_halt_across_restarts() -> None:
    import orjson

    m = ExposureManager(SMALL)
    fresh = m.breaker_state()
    assert fresh["session"] is None and fresh["session_start_equity"] is None and fresh["state"] == "ACTIVE"
    m.should_emergency_flatten(100_000.0, utc(2024, 6, 12, 14))
    m.should_emergency_flatten(101_000.0, utc(2024, 6, 12, 15))
    assert m.should_emergency_flatten(97_000.0, utc(2024, 6, 12, 16))  # daily loss 3%
    saved = orjson.loads(orjson.dumps(m.breaker_state()))
    assert saved == {
        "format": 1,
        "session": "2024-06-12",
        "session_start_equity": 100_000.0,
        "peak_equity": 101_000.0,
        "state": "HALTED",
        "state_reason": m.state_reason,
        "state_since_ns": m.state_since_ns,
    }
    restarted = ExposureManager(SMALL)
    restarted.restore_breaker_state(saved)
    assert (restarted.state, restarted.session) == ("HALTED", date(2024, 6, 12))
    assert restarted.peak_equity == 101_000.0
    assert restarted.should_emergency_flatten(99_000.0, utc(2024, 6, 12, 17))  # still halted today
    assert not restarted.should_emergency_flatten(97_000.0, utc(2024, 6, 13, 14))  # next session
    for bad, match in [
        ({**saved, "format": 2}, "breaker state format 2 is not supported"),
        ({k: v for k, v in saved.items() if k != "peak_equity"}, "breaker state is missing peak_equity"),
        ({**saved, "session": "12/06/2024"}, "session must be an ISO date or null"),
        ({**saved, "state": "PAUSED"}, "state must be ACTIVE, REDUCING or HALTED"),
        ({**saved, "peak_equity": "a lot"}, "peak_equity must be a number or null"),
        ({**saved, "peak_equity": None}, "peak_equity must be finite for a started session"),
    ]:
        with pytest.raises(ValueError, match=match):
            ExposureManager(SMALL).restore_breaker_state(bad)


def test_set_positions_replaces_a_book(m: ExposureManager) -> None:
    m.update_position("intraday", "OLD", 10, 50.0)
    m.update_position("swing", "KEEP", 5, 20.0)
    frame = pl.DataFrame({"symbol": ["A", "B"], "qty": [100, -20], "price": [10.0, 50.0]})
    m.set_positions("intraday", frame)
    assert sorted(m.positions("intraday")) == [("A", 100.0, 10.0), ("B", -20.0, 50.0)]
    assert m.metrics("intraday")["gross"] == 2_000.0 and m.metrics("intraday")["net"] == 0.0
    assert m.positions("swing") == [("KEEP", 5.0, 20.0)]
    with pytest.raises(ValueError, match="needs columns"):
        m.set_positions("intraday", pl.DataFrame({"symbol": ["A"], "qty": [1]}))
    with pytest.raises(ValueError, match="duplicate symbols"):
        m.set_positions("intraday", pl.DataFrame({"symbol": ["A", "A"], "qty": [1, 2], "price": [1.0, 1.0]}))
    with pytest.raises(ValueError, match="row 0 has nulls"):
        m.set_positions("intraday", pl.DataFrame({"symbol": ["A"], "qty": [None], "price": [1.0]}))


# ---- max_allowed_qty against a linear scan of check_order
def _manager(held: list[tuple[str, float, float]]) -> ExposureManager:
    m = ExposureManager(SMALL)
    m.set_equity(100_000.0)
    for sym, qty, price in held:
        m.update_position("intraday", sym, qty, price)
    return m


_PRICES = st.floats(5.0, 300.0).map(lambda p: round(p, 2))
_HELD = st.lists(  # positions of the intraday book before the order: (symbol, signed qty, price)
    st.tuples(st.sampled_from(["A", "B", "C", "D"]), st.integers(-300, 300).map(float), _PRICES), max_size=4
)
_ORDER = {  # the order's symbol (E is held by no one), side and price
    "symbol": st.sampled_from(["A", "B", "E"]),
    "side": st.sampled_from(["buy", "sell"]),
    "price": _PRICES,
}


@settings(max_examples=60, deadline=None)
@given(held=_HELD, qty=st.integers(-5, 400), **_ORDER)
def test_max_allowed_qty_is_the_largest_quantity_check_order_allows(
    held: list[tuple[str, float, float]], symbol: str, side: str, qty: int, price: float
) -> None:
    m = _manager(held)
    # an order that opens or adds to a position (its allowed quantities form a prefix 0..q, what the
    # search relies on); one that reduces may be refused below a threshold (the order revalues the position)
    assume(m.position("intraday", symbol)[0] * (1 if side == "buy" else -1) >= 0)
    allowed = [q for q in range(1, qty + 1) if m.check_order(symbol, side, float(q), price, "intraday")[0]]
    assert m.max_allowed_qty(symbol, side, qty, price, "intraday") == max(allowed, default=0)


def test_max_allowed_qty_rejects_a_bad_price() -> None:
    with pytest.raises(ValueError, match="price"):
        _manager([]).max_allowed_qty("A", "buy", 10, float("nan"), "intraday")


@settings(max_examples=80, deadline=None)
@given(
    held=_HELD,
    qty=st.integers(1, 500).map(float),
    state=st.sampled_from(["ACTIVE", "REDUCING", "HALTED"]),
    **_ORDER,
)
def test_refusal_is_check_orders_reason_counted_by_its_first_two_words(
    held: list[tuple[str, float, float]], symbol: str, side: str, qty: float, price: float, state: str
) -> None:
    m = _manager(held)
    m.set_sector("A", "Consumer Staples")  # a sector name of two words
    m.set_shortable("E", False)
    m.set_state(state, "test")
    ok, why = m.check_order(symbol, side, qty, price, "intraday")
    first, _, rest = why.partition(" ")  # the count key, restated here as the reference
    expected = None if ok else f"exposure: {first} {rest.partition(' ')[0]}" if rest else f"exposure: {first}"
    assert m.refusal(symbol, side, qty, price, "intraday") == expected
    counts = {"exposure: gross exposure": 2, "other": 1}  # a count key may already be there
    reference = dict(counts)
    if expected is not None:
        reference[expected] = reference.get(expected, 0) + 1
    assert m.refusal(symbol, side, qty, price, "intraday", counts) == expected
    assert counts == reference


def test_mark_row_marks_the_held_symbols_at_their_columns_as_mark_price_does() -> None:
    held = [("A", 10.0, 100.0), ("B", -5.0, 20.0)]
    one, rows = _manager(held), _manager(held)
    row = np.array([7.0, 21.5, 101.0, 3.0])  # columns: C (not held), B, A, unknown
    for sym, price in [("B", 21.5), ("A", 101.0)]:
        one.mark_price(sym, price)
    rows.hold(["B", "A", "unknown"], [1, 2, 3])
    rows.mark_row(row)
    assert rows.positions("intraday") == one.positions("intraday")
    assert rows.metrics("intraday") == one.metrics("intraday")
    rows.mark_row(row[::-1].copy()[::-1])  # a strided view reads the same columns
    assert rows.positions("intraday") == one.positions("intraday")
    with pytest.raises(ValueError, match="symbol A: price must be finite"):
        rows.mark_row(np.array([7.0, 22.0, float("nan"), 3.0]))
    assert rows.position("intraday", "B") == (-5.0, 21.5)  # B not re-marked either
    with pytest.raises(ValueError, match="no column 3 in the row"):
        rows.mark_row(np.array([7.0, 22.0, 102.0]))
    with pytest.raises(ValueError, match="2 symbols but 1 columns"):
        rows.hold(["A", "B"], [0])
    rows.hold([], [])  # nothing held: nothing marked
    rows.mark_row(np.array([float("nan")]))
    assert rows.positions("intraday") == one.positions("intraday")
