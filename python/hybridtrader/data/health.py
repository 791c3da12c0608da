"""Health of the data layer: venue/API reachability, cache freshness and bar-store integrity."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import requests

from hybridtrader.config import Config
from hybridtrader.credentials import alpaca_keys
from hybridtrader.data.atomic import StateFileError
from hybridtrader.data.bar_store import BarStore
from hybridtrader.data.ttl_cache import read_entries

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
    key, secret = alpaca_keys(config, url)
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
    if not path.exists():
        return Check(f"cache:{name}", None, f"{path} not created yet")
    try:
        entries = read_entries(path, name)
    except StateFileError as e:
        return Check(f"cache:{name}", False, str(e))
    ages = [now - stamp for stamp, _ in entries.values()]
    expired = sum(not 0.0 <= a < ttl_s for a in ages)
    future = sum(a < 0 for a in ages)
    oldest = f", oldest {max(ages):.0f} s" if ages else ""
    stamped = f", {future} stamped in the future" if future else ""
    return Check(f"cache:{name}", True,
                 f"{path}: {len(ages)} entries, {expired} expired{stamped} (refreshed on next use; "
                 f"ttl {ttl_s:.0f} s){oldest}")


def check_store(root: Path) -> Check:
    if not root.exists():
        return Check("store", None, f"{root} does not exist yet")
    if not root.is_dir():
        return Check("store", False, f"{root} is not a directory, so not a bar store")
    if any(root.iterdir()) and not any(root.glob("timeframe=*")):
        return Check("store", False, f"{root} is not a bar store (no timeframe=* directories)")
    store = BarStore(root)
    problems = store.verify()
    files = len(list(root.glob("timeframe=*/symbol=*/*.parquet")))
    if problems:
        shown = "; ".join(problems[:5]) + (f"; ... {len(problems) - 5} more" if len(problems) > 5 else "")
        return Check("store", False, f"{len(problems)} problem(s) in {files} files: {shown}")
    return Check("store", True, f"{root}: {files} files sound")


def data_roots(config: Config) -> list[Path]:
    """Where commands keep stores and caches by default: `<data_dir>` (`data fetch`, `train`) and
    `<data_dir>/run` (`hybridtrader run`)."""
    data_dir = Path(config.data_dir)
    return [data_dir, data_dir / "run"]


def health_report(config: Config, *, url: str | None = None, store_root: Path | None = None) -> list[Check]:
    """Checks of the APIs, then the caches and bar store of each default data root that exists (the
    first root is always checked), or of `store_root` alone."""
    now = time.time()
    checks = [check_api("alpaca_data", url or config.alpaca.data_url, config),
              check_api("alpaca_trading", url or config.alpaca.trading_url, config)]
    if store_root is not None:
        return [*checks, check_store(store_root)]
    first, *others = data_roots(config)
    for root in [first, *(r for r in others if r.exists())]:
        for name, ttl_field in CACHES.items():
            ttl = getattr(config.data, ttl_field)
            checks.append(check_cache(name, root / "cache" / f"{name}.json", ttl, now))
        checks.append(check_store(root / "bars"))
    return checks
