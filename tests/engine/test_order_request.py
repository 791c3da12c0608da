"""`OrderRequest` (the Rust core's) against a plain Python statement of its rules: which requests are valid,
the error naming the first field at fault, and a value that behaves as its fields (equality, hash, repr,
pickling)."""

from __future__ import annotations

import pickle
from typing import Any

import pytest
from hybridtrader.engine.orders import OrderRequest
from hybridtrader.errors import ConfigError
from hypothesis import given, settings
from hypothesis import strategies as st

TYPES = ("market", "limit", "stop", "stop_limit")
TIFS = ("day", "gtc", "ioc", "fok", "opg", "cls")


def _fault(side: Any, qty: Any, type_: Any, tif: Any, limit: Any, stop: Any) -> str | None:
    """The reference: the first rule broken, as the error message, or None."""
    if side not in ("buy", "sell"):
        return f"order side must be 'buy' or 'sell', got {side!r}"
    if not qty > 0:
        return f"order qty must be > 0, got {qty!r}"
    if type_ not in TYPES:
        return f"order type must be one of {', '.join(TYPES)}, got {type_!r}"
    if tif not in TIFS:
        return f"time_in_force must be one of {', '.join(TIFS)}, got {tif!r}"
    needs_limit, needs_stop = type_ in ("limit", "stop_limit"), type_ in ("stop", "stop_limit")
    if needs_limit != (limit is not None):
        return f"{type_} order: limit_price {'required' if needs_limit else 'not allowed'}"
    if needs_stop != (stop is not None):
        return f"{type_} order: stop_price {'required' if needs_stop else 'not allowed'}"
    return None


prices = st.one_of(st.none(), st.floats(1.0, 500.0))


@settings(max_examples=300, deadline=None)
@given(
    side=st.sampled_from(["buy", "sell", "hold", "", None, 1]),
    qty=st.one_of(st.floats(-5.0, 5.0), st.integers(-3, 300), st.just(float("nan"))),
    type_=st.sampled_from([*TYPES, "Market", None]),
    tif=st.sampled_from([*TIFS, "DAY", None]),
    limit=prices,
    stop=prices,
)
def test_a_request_is_refused_for_the_first_rule_it_breaks_else_keeps_its_fields(
    side: Any, qty: Any, type_: Any, tif: Any, limit: Any, stop: Any
) -> None:
    fields = ("AAA", side, qty, type_, tif, limit, stop)
    want = _fault(side, qty, type_, tif, limit, stop)
    if want is not None:
        with pytest.raises(ConfigError) as e:
            OrderRequest(*fields)
        assert str(e.value) == want
        return
    r = OrderRequest(*fields)
    got = (r.symbol, r.side, r.qty, r.type, r.time_in_force, r.limit_price, r.stop_price)
    assert all(a is b for a, b in zip(got, fields, strict=True))  # the objects given, unconverted
    assert r.sign == (1 if side == "buy" else -1)
    names = ("symbol", "side", "qty", "type", "time_in_force", "limit_price", "stop_price")
    shown = ", ".join(f"{n}={v!r}" for n, v in zip(names, fields, strict=True))
    assert repr(r) == f"OrderRequest({shown})"
    twin = OrderRequest(*fields)
    assert r == twin and hash(r) == hash(twin) == hash(fields)
    assert pickle.loads(pickle.dumps(r)) == r
    assert r != fields  # a request equals requests only
    other = OrderRequest("AAA", side, qty + 1, type_, tif, limit, stop)
    assert r != other


def test_defaults_are_a_market_order_for_the_day_and_keywords_work() -> None:
    r = OrderRequest(symbol="AAA", side="sell", qty=5.0)
    assert (r.type, r.time_in_force, r.limit_price, r.stop_price) == ("market", "day", None, None)
    assert r == OrderRequest("AAA", "sell", 5.0, "market", "day", None, None)
    with pytest.raises(ConfigError, match="order type must be one of"):
        OrderRequest("AAA", "buy", 1.0, None)  # an explicit None is not the default
    with pytest.raises(AttributeError):
        r.qty = 3.0  # type: ignore[misc]
