"""The `hybridtrader` command. Each subcommand lives in its own module with a `register(subparsers)`.

Errors: anything in the `hybridtrader.errors` tree (and a missing or unreadable file, `OSError`) is printed
as one line `error: ...` with exit status 2; Ctrl-C exits 130. Anything else is a bug and keeps its
traceback. With `-v` our own loggers log at DEBUG; credentials are redacted from every line either way.
"""

from __future__ import annotations

import argparse
import sys

from hybridtrader import __version__, logs
from hybridtrader.cli import (
    backtest_cmd,
    bars_cmd,
    config_cmd,
    data_cmd,
    health_cmd,
    live_cmd,
    portfolio_cmd,
    run_cmd,
    stream_cmd,
    sweep_cmd,
    train_cmd,
    venue_cmd,
    version_cmd,
)
from hybridtrader.credentials import redact
from hybridtrader.errors import HybridTraderError

# Order here is the order in `hybridtrader --help`.
COMMANDS = [
    run_cmd, live_cmd, backtest_cmd, sweep_cmd, data_cmd, bars_cmd, stream_cmd, venue_cmd, health_cmd,
    train_cmd, portfolio_cmd, config_cmd, version_cmd,
]  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hybridtrader",
        description="Algorithmic trading for US equities: data, research, execution and risk.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    parser.add_argument("--version", action="version", version=f"hybridtrader {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMANDS:
        module.register(sub)
    return parser


def _parse(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """Parse; an unknown option is reported with the usage of the (sub)command it was given to."""
    args, extra = parser.parse_known_args(argv)
    if extra:
        _innermost(parser, args).error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def _innermost(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The deepest (sub)command parser chosen by `args` (`data fetch` -> the fetch parser)."""
    while True:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        chosen = getattr(args, subs[0].dest, None) if subs else None
        if chosen not in (subs[0].choices if subs else {}):
            return parser
        parser = subs[0].choices[chosen]


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = _parse(parser, argv)
    logs.configure(args.verbose)
    try:
        return int(args.run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (HybridTraderError, OSError) as e:
        # Expected failures (bad input, missing files, refused requests) are one line, not a traceback.
        print(f"error: {redact(_one_line(e))}", file=sys.stderr)
        return 2


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    if isinstance(e, OSError) and e.filename is not None and str(e.filename) not in text:
        text = f"{text}: {e.filename}"
    return text


if __name__ == "__main__":
    sys.exit(main())
