"""Loading the portfolio's versioned JSON state files: an absent file is a fresh start; a corrupt, foreign or
malformed one is a StateError naming the file (never a silent reset)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from hybridtrader.data.atomic import StateFileError, read_state
from hybridtrader.errors import StateError


def load_state(path: Path | None, version: int, restore: Callable[[dict[str, Any]], None]) -> None:
    """Call `restore(payload)` with the file's payload; nothing when `path` is None or the file is absent."""
    if path is None:
        return
    try:
        state = read_state(path, version)
    except StateFileError as e:
        raise StateError(str(e)) from None
    if state is None:
        return
    try:
        restore(state)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise StateError(f"state file {path} is malformed ({type(e).__name__}: {e})") from None
