"""`hybridtrader config check [FILE]`."""

from __future__ import annotations

import argparse

import yaml

from hybridtrader.config import load_config


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("config", help="inspect the configuration")
    csub = p.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    check = csub.add_parser(
        "check", help="validate a config file and print it resolved, secrets masked"
    )
    check.add_argument("file", nargs="?", help="YAML config (default: $HYBRIDTRADER_CONFIG or built-in)")
    check.set_defaults(run=run_check)


def run_check(args: argparse.Namespace) -> int:
    from hybridtrader.ml.strategy_check import check_strategies

    cfg = load_config(args.file)
    check_strategies(cfg)  # what `train` and `run` would reject, without loading any data
    print(yaml.safe_dump(cfg.masked(), sort_keys=False), end="")
    print("config OK")
    return 0
