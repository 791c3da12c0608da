"""Find a strategy by name (`intraday_mean_reversion`), by `module:Class` or by `path/to/file.py:Class`,
and build it with its champion model when it has one."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from pathlib import Path

from hybridtrader.config import Config
from hybridtrader.engine.strategy import Strategy
from hybridtrader.errors import ConfigError
from hybridtrader.strategy.model import load_champion

BUILTIN = {
    "intraday_mean_reversion": "hybridtrader.strategy.mean_reversion:IntradayMeanReversion",
    "swing_trend_following": "hybridtrader.strategy.swing_trend:SwingTrendFollowing",
    "ema_cross": "hybridtrader.strategy.examples.ema_cross:EmaCross",
}


def strategy_class(spec: str) -> type[Strategy]:
    """The Strategy subclass `spec` names; ConfigError naming the spec when it cannot be found."""
    target = BUILTIN.get(spec, spec)
    where, sep, attr = target.rpartition(":")
    if not sep or not where or not attr:
        known = ", ".join(BUILTIN)
        raise ConfigError(f"--strategy {spec!r}: expected a name ({known}), module:Class or file.py:Class")
    try:
        if where.endswith(".py"):
            path = Path(where)
            if not path.is_file():
                raise ConfigError(f"--strategy {spec!r}: no file {path}")
            name = f"hybridtrader_user_{path.stem}"
            module_spec = importlib.util.spec_from_file_location(name, path)
            assert module_spec is not None and module_spec.loader is not None
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[name] = module
            module_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(where)
    except ImportError as e:
        raise ConfigError(f"--strategy {spec!r}: cannot import {where}: {e}") from None
    cls = getattr(module, attr, None)
    if not (inspect.isclass(cls) and issubclass(cls, Strategy)):
        raise ConfigError(f"--strategy {spec!r}: {where} has no Strategy subclass named {attr}")
    return cls


def build_strategy(spec: str, config: Config, *, use_models: bool = True) -> Strategy:
    """An instance of `spec`; strategies that take a `champion` get the registry's champion of their name
    (none: rules only) when `use_models`."""
    cls = strategy_class(spec)
    if "champion" in inspect.signature(cls.__init__).parameters:
        name = cls.name or cls.__name__
        champion = load_champion(config, name) if use_models and name in config.strategies else None
        return cls(config, champion=champion)  # type: ignore[call-arg]
    return cls(config)
