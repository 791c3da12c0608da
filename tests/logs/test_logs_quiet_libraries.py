"""`hybridtrader -v` logs our debug messages only: third-party loggers (websockets' frame log, urllib3's
request lines, MLflow's INFO chatter, which MLflow sets up itself when it is imported) stay at WARNING."""

from __future__ import annotations

import os
import subprocess
import sys

PROBE = """
import logging
from hybridtrader import logs
logs.configure(verbose=True)
import mlflow  # imported after the setup, as the commands do
for name in ("hybridtrader.x", "websockets.client", "urllib3.connectionpool", "aiohttp.access", "mlflow"):
    print(name, logging.getLogger(name).getEffectiveLevel())
"""


def test_only_our_loggers_are_verbose() -> None:
    env = dict(os.environ)  # the installed package
    env.pop("MLFLOW_LOGGING_LEVEL", None)
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120)
    levels = dict(line.split() for line in out.stdout.splitlines())
    assert levels == {"hybridtrader.x": "10", "websockets.client": "30", "urllib3.connectionpool": "30",
                      "aiohttp.access": "30", "mlflow": "30"}, out.stderr
