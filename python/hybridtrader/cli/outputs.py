"""Where commands write: never over an input, never over an existing output unless asked (`--force`)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from hybridtrader.errors import ConfigError


def check_output(output: Path, force: bool, *, inputs: Iterable[Path] = ()) -> None:
    """Refuse an output that is one of the inputs (even with --force: the input would be lost) or that
    exists already without `force`."""
    for source in inputs:
        if output.exists() and source.exists() and output.samefile(source):
            raise ConfigError(f"--output {output} is the input file; choose another output")
    if output.exists() and not force:
        raise ConfigError(f"--output {output} exists; pass --force to replace it")
