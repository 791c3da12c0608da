"""Resumable bulk fetch of bars into the store (`hybridtrader data fetch`).

The range is cut into the client's time chunks; each chunk is fetched, upserted into the store, and then
recorded in a state file (written atomically) named after the request. An interrupted fetch, run again
with the same arguments, skips the recorded chunks; since upserts never duplicate a bar, a resumed fetch
leaves the store exactly as an uninterrupted one. A chunk that fails for good still stores the bars it
got before raising. The state file is removed when the fetch completes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import orjson

from hybridtrader.data.alpaca_client import AlpacaClient, FetchError, chunk_ranges
from hybridtrader.data.atomic import read_state, write_state
from hybridtrader.data.bar_store import BarStore
from hybridtrader.errors import DataError
from hybridtrader.market.schema import normalize_symbols
from hybridtrader.market.timeconv import rfc3339, to_utc, to_utc_end
from hybridtrader.market.timeframe import Timeframe

STATE_VERSION = 1


@dataclass
class FetchResult:
    chunks: int
    skipped: int  # chunks already done by an earlier, interrupted run
    bars: int  # bars received in this run
    added: int  # of which new to the store


def state_path(store: BarStore, request: dict[str, object]) -> Path:
    digest = hashlib.sha256(orjson.dumps(request, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]
    return store.root / ".fetch-state" / f"fetch-{digest}.json"


def fetch_to_store(
    client: AlpacaClient,
    store: BarStore,
    symbols: str | list[str],
    timeframe: str,
    start: datetime | date | str,
    end: datetime | date | str,
    *,
    progress: Callable[[int, int, int], None] | None = None,
    source: str | None = None,
) -> FetchResult:
    """Fetch bars of `symbols` in [start, end] into `store`, resuming an interrupted run; an `end` given
    as a day includes that whole day.

    `progress(done_chunks, total_chunks, bars_so_far)` is called at the start and after every chunk.
    `source` names where the bars come from in the resume key (default the client's URL; a local venue
    started per run has a new port each time, so the CLI passes a stable name)."""
    syms = normalize_symbols(symbols)
    tf = Timeframe.parse(timeframe)
    lo, hi = to_utc("start", start), to_utc_end("end", end)
    chunks = chunk_ranges(lo, hi, tf, len(syms), client.data.chunk_bars)
    request = {"source": source or client.url, "symbols": syms, "timeframe": tf.value, "start": rfc3339(lo),
               "end": rfc3339(hi), "chunk_bars": client.data.chunk_bars}
    path = state_path(store, request)
    state = read_state(path, STATE_VERSION)
    if state is not None and state.get("request") != request:
        raise DataError(f"fetch state {path} belongs to another request: {state.get('request')}")
    done = set(state["done"]) if state is not None else set()
    result = FetchResult(chunks=len(chunks), skipped=len(done & set(range(len(chunks)))), bars=0, added=0)
    if progress is not None:
        progress(len(done), len(chunks), 0)
    for i, (a, b) in enumerate(chunks):
        if i in done:
            continue
        try:
            bars = client.fetch_chunk(syms, tf, a, b)
        except FetchError as e:
            store.upsert(e.partial, tf)  # keep what arrived; the chunk is redone on the next run
            raise
        result.bars += bars.height
        result.added += store.upsert(bars, tf)
        done.add(i)
        write_state(path, STATE_VERSION, {"request": request, "done": sorted(done)})
        if progress is not None:
            progress(len(done), len(chunks), result.bars)
    path.unlink(missing_ok=True)
    return result
