"""Properties of the fill simulator: fills equal an independent Python statement of the rules on random
markets; filled quantity never exceeds the order, the displayed size or the participation cap; reruns are
identical; events come in time order with a consistent life per order."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

import polars as pl
from hybridtrader.execution.fills import FillSettings, FillSimulator
from hybridtrader.market.schema import BAR_SCHEMA, QUOTE_SCHEMA
from hybridtrader.market.timeconv import utc_ns
from hypothesis import given, settings
from hypothesis import strategies as st

OPEN = utc_ns(datetime(2024, 3, 5, 14, 30, tzinfo=UTC))
MS = 1_000_000
STEP = 100 * MS  # quotes/bars every 100 ms .. so a session holds them all
TERMINAL = {"fill", "canceled", "expired", "rejected", "replaced"}


@dataclass(frozen=True)
class Req:
    side: str
    type: str
    qty: float
    limit: float | None
    stop: float | None


prices = st.integers(900, 1100).map(lambda c: c / 100)


@st.composite
def requests(draw: st.DrawFn) -> Req:
    side = draw(st.sampled_from(["buy", "sell"]))
    otype = draw(st.sampled_from(["market", "limit", "stop", "stop_limit"]))
    limit = draw(prices) if otype in ("limit", "stop_limit") else None
    stop = draw(prices) if otype in ("stop", "stop_limit") else None
    return Req(side, otype, float(draw(st.integers(1, 400))), limit, stop)


@st.composite
def quote_rows(draw: st.DrawFn) -> list[tuple[int, float, float, float, float]]:
    n = draw(st.integers(1, 25))
    gaps = draw(st.lists(st.integers(0, 3), min_size=n, max_size=n))
    rows, t = [], OPEN
    for g in gaps:
        t += g * STEP
        bid = draw(prices)
        spread = draw(st.integers(1, 5)) / 100
        rows.append((t, bid, round(bid + spread, 2), float(draw(st.integers(0, 150))),
                     float(draw(st.integers(0, 150)))))
    return rows


@st.composite
def bar_rows(draw: st.DrawFn) -> list[tuple[int, float, float, float, float, float]]:
    n = draw(st.integers(1, 15))
    rows = []
    for i in range(n):
        o, c = draw(prices), draw(prices)
        hi = max(o, c) + draw(st.integers(0, 30)) / 100
        lo = min(o, c) - draw(st.integers(0, 30)) / 100
        rows.append((OPEN + i * STEP, o, hi, lo, c, float(draw(st.integers(0, 2000)))))
    return rows


# ---------------------------------------------------------------------------------- the reference
def better_or_equal(side: str, a: float, b: float) -> bool:
    return a <= b if side == "buy" else a >= b


def reference_on_quotes(r: Req, submit: int, entry: int, rows: list) -> list[tuple[int, float, float]]:
    """Fills of one day order: the quote standing when it arrives (the last one seen by then; stamped at
    arrival) unless a quote comes at that very time, then every quote that comes later. Quotes up to the
    submit time were seen before the submit."""
    arrival = submit + entry
    seen = [q for q in rows if q[0] < arrival or q[0] <= submit]
    later = [(q[0], q) for q in rows[len(seen):]]
    on_arrival = later and later[0][0] == arrival
    standing = [] if on_arrival else [(arrival, q) for q in seen[-1:]]
    left, live, out = r.qty, r.stop is None, []
    for t, (_, bid, ask, bid_size, ask_size) in standing + later:
        touch, size = (ask, ask_size) if r.side == "buy" else (bid, bid_size)
        if not live:
            live = better_or_equal(r.side, r.stop, touch)  # the touch reached the stop
            if not live:
                continue
        if r.limit is not None and not better_or_equal(r.side, touch, r.limit):
            continue
        take = min(size, left)
        if take > 0:
            out.append((t, take, touch))
            left -= take
        if left == 0:
            break
    return out


def reference_on_bars(r: Req, arrival: int, rows: list, participation: float) -> list[tuple[int, float,
                                                                                            float]]:
    left, live, out = r.qty, r.stop is None, []
    for t, o, hi, lo, _c, vol in rows:
        if t < arrival:
            continue
        from_open = True
        start = o
        if not live:
            if better_or_equal(r.side, r.stop, o):
                live = True
            elif (hi >= r.stop) if r.side == "buy" else (lo <= r.stop):
                live, from_open, start = True, False, r.stop
            else:
                continue
        if r.limit is None or better_or_equal(r.side, start, r.limit):
            price = start
        elif from_open and better_or_equal(r.side, lo if r.side == "buy" else hi, r.limit):
            price = r.limit
        else:
            continue
        take = min(math.floor(participation * vol), left)
        if take > 0:
            out.append((t, take, price))
            left -= take
        if left == 0:
            break
    return out


# ---------------------------------------------------------------------------------- helpers
def quotes_frame(rows: list) -> pl.DataFrame:
    return pl.DataFrame([("AAA", *q) for q in rows], schema=QUOTE_SCHEMA, orient="row")


def bars_frame(rows: list) -> pl.DataFrame:
    return pl.DataFrame([("AAA", *b, b[1], 1) for b in rows], schema=BAR_SCHEMA, orient="row")


def fills_of(ev: pl.DataFrame) -> list[tuple[int, float, float]]:
    f = ev.filter(pl.col("event").is_in(["fill", "partial_fill"]))
    return list(zip(f["ts"].cast(pl.Int64).to_list(), f["qty"].to_list(), f["price"].to_list(), strict=True))


def free(entry_ms: float, participation: float = 0.1) -> FillSettings:
    return FillSettings(sec_fee_rate=0.0, taf_per_share=0.0, entry_latency_ms=entry_ms, ack_latency_ms=0.0,
                        bar_participation=participation)


def run_quotes(r: Req, rows: list, submit: int, entry_ms: float) -> pl.DataFrame:
    sim = FillSimulator(free(entry_ms))
    before = [q for q in rows if q[0] <= submit]
    if before:
        sim.on_quotes(quotes_frame(before))
    sim.submit("o", "AAA", r.side, r.qty, submit, type=r.type, limit_price=r.limit, stop_price=r.stop)
    after = [q for q in rows if q[0] > submit]
    if after:
        sim.on_quotes(quotes_frame(after))
    sim.advance(max(rows[-1][0], submit + round(entry_ms * MS)))  # all quotes are fed
    return sim.drain()


# ---------------------------------------------------------------------------------- properties
@settings(max_examples=150, deadline=None)
@given(r=requests(), rows=quote_rows(), submit_step=st.integers(0, 30),
       entry_ms=st.sampled_from([0, 50, 250]))
def test_quote_fills_equal_the_reference(r: Req, rows: list, submit_step: int, entry_ms: int) -> None:
    submit = OPEN + submit_step * STEP // 2
    ev = run_quotes(r, rows, submit, entry_ms)
    got = fills_of(ev)
    assert got == reference_on_quotes(r, submit, entry_ms * MS, rows)
    assert all(t >= submit + entry_ms * MS for t, _, _ in got)  # never before submit + latency
    displayed: dict[int, float] = {}
    for q in rows:
        displayed[q[0]] = max(displayed.get(q[0], 0.0), q[4] if r.side == "buy" else q[3])
    standing = max((v for t, v in displayed.items() if t <= submit + entry_ms * MS), default=0.0)
    assert all(q <= displayed.get(t, standing) for t, q, _ in got)
    assert sum(q for _, q, _ in got) <= r.qty


@settings(max_examples=150, deadline=None)
@given(r=requests(), rows=bar_rows(), submit_step=st.integers(0, 10),
       participation=st.sampled_from([0.05, 0.1, 1.0]))
def test_bar_fills_equal_the_reference(r: Req, rows: list, submit_step: int, participation: float) -> None:
    sim = FillSimulator(free(10.0, participation))
    submit = OPEN + submit_step * STEP
    sim.submit("o", "AAA", r.side, r.qty, submit, type=r.type, limit_price=r.limit, stop_price=r.stop)
    sim.on_bars(bars_frame(rows), STEP)
    got = fills_of(sim.drain())
    assert got == reference_on_bars(r, submit + 10 * MS, rows, participation)
    caps = {b[0]: math.floor(participation * b[5]) for b in rows}
    assert all(q <= caps[t] for t, q, _ in got) and sum(q for _, q, _ in got) <= r.qty


@st.composite
def sessions(draw: st.DrawFn) -> tuple[list, list]:
    """Random orders (and cancels/replaces) interleaved with quotes of two symbols."""
    rows = draw(quote_rows())
    actions = []
    for i in range(draw(st.integers(1, 12))):
        at = OPEN + draw(st.integers(0, 40)) * STEP // 2
        kind = draw(st.sampled_from(["submit", "submit", "submit", "cancel", "replace"]))
        tif = draw(st.sampled_from(["day", "gtc", "ioc", "fok", "opg", "cls"]))
        actions.append((at, kind, i, draw(requests()), tif, draw(st.sampled_from(["AAA", "BBB"]))))
    return rows, sorted(actions, key=lambda a: a[0])


def play(rows: list, actions: list) -> pl.DataFrame:
    return played(rows, actions).drain()


def played(rows: list, actions: list) -> FillSimulator:
    """A simulator after `actions` among the quotes `rows` and past the close (events not drained)."""
    sim = FillSimulator(FillSettings(entry_latency_ms=30, ack_latency_ms=60))
    frame = pl.concat([quotes_frame(rows), quotes_frame(rows).with_columns(symbol=pl.lit("BBB"))]).sort(
        "ts", maintain_order=True)
    fed = 0
    for at, kind, i, r, tif, sym in actions:
        upto = int(frame["ts"].cast(pl.Int64).search_sorted(at, side="right"))
        if upto > fed:
            sim.on_quotes(frame.slice(fed, upto - fed))
            fed = upto
        if kind == "submit":
            sim.submit(f"o{i}", sym, r.side, r.qty, at, type=r.type, time_in_force=tif, limit_price=r.limit,
                       stop_price=r.stop)
        elif kind == "cancel":
            sim.cancel(f"o{i - 1}", at)
        else:
            sim.replace(f"o{i - 1}", f"o{i}", at, qty=r.qty)
    sim.on_quotes(frame.slice(fed))
    sim.advance(OPEN + 24 * 3600 * 1_000_000_000)  # past the close: everything but gtc has ended
    return sim


@settings(max_examples=100, deadline=None)
@given(session=sessions())
def test_event_order_consistency_and_determinism(session: tuple[list, list]) -> None:
    rows, actions = session
    ev = play(rows, actions)
    assert ev.equals(play(rows, actions))  # deterministic
    assert ev["ts"].is_sorted()
    for (cid,), e in ev.group_by("client_order_id", maintain_order=True):
        kinds = e["event"].to_list()
        assert kinds[0] in ("accepted", "rejected"), (cid, kinds)
        assert kinds.count("accepted") <= 1 and not any(k in TERMINAL for k in kinds[:-1]), (cid, kinds)
        fills = e.filter(pl.col("event").is_in(["fill", "partial_fill"]))
        cum = fills["qty"].cum_sum().to_list()
        assert cum == fills["filled_qty"].to_list()
        if kinds[0] == "accepted":
            total = e["filled_qty"][0] + e["leaves_qty"][0]  # the order's quantity
            assert fills.is_empty() or (fills["filled_qty"] + fills["leaves_qty"] - total).abs().max() < 1e-9
            assert (cum[-1] if cum else 0) <= total + 1e-9
        assert (fills["price"] > 0).all() and (fills["qty"] > 0).all()


@settings(max_examples=100, deadline=None)
@given(session=sessions())
def test_filled_shares_are_the_fill_events_signed_and_summed_per_symbol(session: tuple[list, list]) -> None:
    sim = played(*session)
    fills = sim.drain().filter(pl.col("event").is_in(["fill", "partial_fill"]))
    expected: dict[str, float] = {}
    for symbol, side, qty in fills.select("symbol", "side", "qty").iter_rows():
        expected[symbol] = expected.get(symbol, 0.0) + (qty if side == "buy" else -qty)
    assert sim.filled_shares() == {s: q for s, q in expected.items() if q}
