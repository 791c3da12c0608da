"""Atomic files: write to a temporary file beside the target, fsync, rename over the target, fsync the
directory. Permissions: one policy for every file we write, the mode `open()` would give (0666 less the
umask, 0644 usually); none of our outputs holds a secret (credentials live in the environment only).
State files are JSON `{"format_version": N, ...}`; a wrong version or unreadable content is a
`StateFileError` naming the file, never a silent reset."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import orjson
import polars as pl

from hybridtrader.errors import StateError


class StateFileError(StateError):
    """A state file exists but cannot be used (corrupt, or written by another format version)."""


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# Read once at import: os.umask can only be read by setting it, which is not thread-safe later on.
FILE_MODE = 0o666 & ~_umask()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: str | os.PathLike[str], write: Callable[[BinaryIO], None]) -> None:
    """Create or replace `path` with what `write(file)` writes, all or nothing."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, FILE_MODE)  # mkstemp creates 0600
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def write_parquet_atomic(frame: pl.DataFrame, path: str | os.PathLike[str]) -> None:
    write_atomic(path, lambda f: frame.write_parquet(f))


def write_state(path: str | os.PathLike[str], version: int, payload: dict[str, Any]) -> None:
    body = orjson.dumps({"format_version": version, **payload}, option=orjson.OPT_INDENT_2)
    write_atomic(path, lambda f: f.write(body))


def read_state(path: str | os.PathLike[str], version: int) -> dict[str, Any] | None:
    """The payload of a state file, None if it does not exist; StateFileError if it cannot be used."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise StateFileError(f"state file {path} is corrupt ({e}); move it away to start over") from None
    if not isinstance(data, dict) or data.get("format_version") != version:
        found = data.get("format_version") if isinstance(data, dict) else None
        raise StateFileError(f"state file {path} has format_version {found!r}, expected {version}")
    data.pop("format_version")
    return data


@contextlib.contextmanager
def staged_outputs(target: str | os.PathLike[str], marker: str) -> Iterator[Path]:
    """A staging directory for a set of outputs that must appear in `target` together or not at all.

    Write every output into the yielded directory. On success each entry is moved into `target` (replacing
    an older one), the `marker` file last, after the old marker was removed first: a reader that finds the
    marker finds a complete set from one run. On an error or interrupt the staging directory is removed and
    `target` keeps the previous run's outputs untouched."""
    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=target))
    try:
        yield staging
        (target / marker).unlink(missing_ok=True)
        entries = sorted(staging.iterdir(), key=lambda p: p.name == marker)  # the marker goes last
        for entry in entries:
            dest = target / entry.name
            if dest.is_dir() and not dest.is_symlink():
                old = staging / f".old-{entry.name}"
                os.replace(dest, old)
            os.replace(entry, dest)
        _fsync_dir(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
