"""Module-level task functions for the task-runner tests: pool workers (spawn) and Ray workers import them
by name, as they would a user's research code."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import numpy as np
from hybridtrader.tasks import TaskContext


def noisy_dot(item: dict[str, Any], ctx: TaskContext) -> dict[str, Any]:
    """A seeded random draw dotted with the shared vector: depends on the key's seed and the shared data."""
    rng = np.random.default_rng(ctx.seed)
    draw = rng.standard_normal((item["n"], len(ctx.shared)))
    return {"key": ctx.key, "seed": ctx.seed, "value": draw @ ctx.shared * item["scale"]}


def dies_once(item: dict[str, Any], ctx: TaskContext) -> dict[str, Any]:
    """With a `marker` path: SIGKILLs its own worker process on its first attempt (the marker file records
    that attempt)."""
    marker = Path(item.get("marker", os.devnull))
    if not marker.exists():
        marker.write_text(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)
    return noisy_dot(item, ctx)


def dies_always(item: dict[str, Any], ctx: TaskContext) -> dict[str, Any]:
    if item.get("die"):
        os.kill(os.getpid(), signal.SIGKILL)
    return noisy_dot(item, ctx)


def raises_on_bad(item: dict[str, Any], ctx: TaskContext) -> dict[str, Any]:
    """Raises for a bad item and counts its attempts in a file (one line per attempt)."""
    if item.get("bad"):
        with open(item["attempts"], "a") as f:
            f.write(f"{ctx.key}\n")
        raise ValueError(f"bad input {item['n']} for {ctx.key}")
    return noisy_dot(item, ctx)


def logged(item: dict[str, Any], ctx: TaskContext) -> dict[str, Any]:
    """Records each computed key in a log file; SIGKILLs the whole process at `item['stop']` while the
    stop file exists (an interrupted sweep)."""
    if item.get("stop") and Path(item["stop"]).exists():
        os.kill(os.getpid(), signal.SIGKILL)
    with open(item["log"], "a") as f:
        f.write(f"{ctx.key}\n")
    return noisy_dot(item, ctx)


def polars_threads(item: Any, ctx: TaskContext) -> int:
    """The size of the worker's Polars thread pool (fixed when Polars was imported there)."""
    import polars as pl

    return pl.thread_pool_size()


def prints_and_leaves_atexit(item: dict[str, Any], ctx: TaskContext) -> str:
    """Prints a line (buffered: stdout is a pipe) and registers an exit handler that writes a file."""
    import atexit

    print(f"task {ctx.key} printed", end="\n")
    atexit.register(Path(item["exit_file"]).write_text, ctx.key)
    return ctx.key
