"""Health of the data layer: venue/API reachability, cache freshness and bar-store integrity."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import requests

from hybridtrader.config import Config
from hybridtrader.credentials import alpaca_keys
from hybridtrader.data.atomic import StateFileError, read_state
from hybridtrader.data.bar_store import BarStore
from hybridtrader.data.ttl_cache import FORMAT_VERSION

CACHES = {"shortability": "shortability_ttl_s", "earnings": "earnings_ttl_s"}


@dataclass
class Check:
    name: str
    ok: bool | None  # None: not applicable (skipped)
    detail: str


PROBES = {  # a cheap authenticated GET on each API
    "alpaca_data": ("/v2/stocks/bars", {"symbols": "SPY", "timeframe": "1Day", "limit": "1"}),
    "alpaca_trading": ("/v2/clock", {}),
}


def check_api(name: str, url: str | None, config: Config, timeout: float = 5.0) -> Check:
    """One authenticated GET (configured or local keys): is the API reachable and are we authorised?"""
    if not url:
        return Check(name, None, "no URL configured (local venue: pass --url from `hybridtrader venue`)")
    key, secret = alpaca_keys(config)
    headers = {"APCA-API-KEY-ID": key, "APCA-API-SECRET-KEY": secret}
    t0 = time.perf_counter()
    try:
        path, params = PROBES[name]
        r = requests.get(f"{url.rstrip('/')}{path}", params=params, headers=headers, timeout=timeout)
    except requests.RequestException as e:
        return Check(name, False, f"{url} unreachable: {e.__class__.__name__}")
    ms = (time.perf_counter() - t0) * 1000
    return Check(name, r.status_code == 200, f"{url} answered {r.status_code} in {ms:.1f} ms")


def check_cache(name: str, path: Path, ttl_s: float, now: float) -> Check:
    try:
        state = read_state(path, FORMAT_VERSION)
    except StateFileError as e:
        return Check(f"cache:{name}", False, str(e))
    if state is None:
        return Check(f"cache:{name}", None, f"{path} not created yet")
    ages = [now - float(v["fetched_at"]) for v in state.get("entries", {}).values()]
    expired = sum(a >= ttl_s for a in ages)
    oldest = f", oldest {max(ages):.0f} s" if ages else ""
    return Check(f"cache:{name}", True,
                 f"{len(ages)} entries, {expired} expired (refreshed on next use; ttl {ttl_s:.0f} s){oldest}")


def check_store(root: Path) -> Check:
    if not root.exists():
        return Check("store", None, f"{root} does not exist yet")
    store = BarStore(root)
    problems = store.verify()
    files = len(list(root.glob("timeframe=*/symbol=*/*.parquet")))
    if problems:
        shown = "; ".join(problems[:5]) + (f"; ... {len(problems) - 5} more" if len(problems) > 5 else "")
        return Check("store", False, f"{len(problems)} problem(s) in {files} files: {shown}")
    return Check("store", True, f"{files} files sound")


def health_report(config: Config, *, url: str | None = None, store_root: Path | None = None) -> list[Check]:
    data_dir = Path(config.data_dir)
    now = time.time()
    checks = [check_api("alpaca_data", url or config.alpaca.data_url, config),
              check_api("alpaca_trading", url or config.alpaca.trading_url, config)]
    for name, ttl_field in CACHES.items():
        ttl = getattr(config.data, ttl_field)
        checks.append(check_cache(name, data_dir / "cache" / f"{name}.json", ttl, now))
    checks.append(check_store(store_root or data_dir / "bars"))
    return checks
