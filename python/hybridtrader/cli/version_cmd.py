"""`hybridtrader version`."""

from __future__ import annotations

import argparse
import platform

import polars as pl

from hybridtrader import __version__


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("version", help="print the version of hybridtrader and its core libraries")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    print(f"hybridtrader {__version__} (python {platform.python_version()}, polars {pl.__version__})")
    return 0
