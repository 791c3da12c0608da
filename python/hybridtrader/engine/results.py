"""A run's per-row results (orders, fills, equity) as the Trader folds them, once per batch: kept as frames
in memory, or spilled as parquet part files into a directory so that a long backtest's memory stays flat
in the number of sessions (read back lazily, or whole when asked for). Rows read back come in the order
they were added: the spilled parts first, then the frames kept in memory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl


class ResultRows:
    """One table's rows, added a frame at a time; `schema` gives its columns and dtypes."""

    def __init__(self, name: str, schema: dict[str, Any], spill: Path | None = None) -> None:
        self.name, self.schema = name, schema
        self.height = 0  # rows added so far
        self._paths: list[Path] = []  # part files (spilled)
        self._frames: list[pl.DataFrame] = []  # frames in memory, after the parts
        self._dir = None if spill is None else spill / name
        if self._dir is not None:
            self._dir.mkdir(parents=True, exist_ok=True)

    def add(self, frame: pl.DataFrame) -> None:
        if not frame.height:
            return
        self.height += frame.height
        if self._dir is None:
            self._frames.append(frame)
            return
        path = self._dir / f"{len(self._paths):06d}.parquet"
        frame.write_parquet(path, compression="uncompressed")  # scratch, read back once or twice
        self._paths.append(path)

    def plus(self, frame: pl.DataFrame) -> ResultRows:
        """These rows then `frame`'s, kept in memory (this object and its parts unchanged)."""
        out = ResultRows(self.name, self.schema)
        out._paths, out._frames = [*self._paths], [*self._frames]  # copies: later parts are not its rows
        out.height = self.height
        out.add(frame)
        return out

    def scan(self) -> pl.LazyFrame:
        """Every row, lazily (spilled parts are read as the query needs them)."""
        parts = [pl.scan_parquet(self._paths, schema=self.schema)] if self._paths else []
        parts += [f.lazy() for f in self._frames]
        return pl.concat(parts) if parts else pl.LazyFrame(schema=self.schema)

    def frame(self) -> pl.DataFrame:
        """Every row as one frame in one chunk (rows only in memory stay so, for the next call)."""
        if self._paths:
            return pl.concat([pl.read_parquet(self._paths, schema=self.schema), *self._frames], rechunk=True)
        if len(self._frames) != 1:
            whole = (
                pl.concat(self._frames, rechunk=True) if self._frames else pl.DataFrame(schema=self.schema)
            )
            self._frames = [whole]
        return self._frames[0]
