"""Install the engine benchmark's peers (requirements.txt) into their own virtual environment and print its
interpreter's path. Run by .ci/run before the benchmarks and by benches/bench_engine.py; a no-op when the
environment already holds exactly these requirements.

The environment is `.benchmarks/peers` under the repository (`HYBRIDTRADER_PEERS_VENV` overrides). The peers
stay out of hybridtrader's own environment: NautilusTrader pins pandas below 3, vectorbt brings numba.
On failure: exit status 1 and one line on stderr saying why.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REQUIREMENTS = HERE / "requirements.txt"
VENV = Path(os.environ.get("HYBRIDTRADER_PEERS_VENV", HERE.parents[1] / ".benchmarks" / "peers"))


def _run(*args: str | Path) -> None:
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True)
    if done.returncode:
        lines = (done.stderr or done.stdout).strip().splitlines() or ["no output"]
        raise RuntimeError(f"{Path(str(args[0])).name} {' '.join(map(str, args[1:4]))} ...: {lines[-1]}")


def ensure() -> Path:
    python = VENV / "bin" / "python"
    stamp = VENV / "installed-requirements.txt"
    wanted = REQUIREMENTS.read_text()
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    stamp.unlink(missing_ok=True)
    _run(sys.executable, "-m", "venv", "--clear", VENV)
    _run(python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r", REQUIREMENTS)
    # numba compiles vectorbt's kernels on first use and caches them in the environment: do it here, not in
    # the benchmark's (untimed but time-limited) set-up
    _run(python, HERE / "engine_peers.py", "--warm")
    stamp.write_text(wanted)
    return python


if __name__ == "__main__":
    try:
        print(ensure())
    except (RuntimeError, OSError) as e:
        sys.exit(f"engine peers not installed in {VENV}: {e}")
