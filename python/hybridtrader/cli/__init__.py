"""The `hybridtrader` command. Each subcommand lives in its own module with a `register(subparsers)`."""

from __future__ import annotations

import argparse
import logging
import sys

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
    train_cmd,
    venue_cmd,
    version_cmd,
)

# Order here is the order in `hybridtrader --help`.
COMMANDS = [
    run_cmd, live_cmd, backtest_cmd, data_cmd, bars_cmd, stream_cmd, venue_cmd, health_cmd, train_cmd,
    portfolio_cmd, config_cmd, version_cmd,
]  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hybridtrader",
        description="Algorithmic trading for US equities: data, research, execution and risk.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMANDS:
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, OSError, RuntimeError) as e:
        # Expected failures (bad input, missing files, unreachable services) are one line, not a traceback.
        if args.verbose:
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
