"""The README's main command, `hybridtrader live`, as a user runs it: a fresh data directory, no config and
no keys (it starts the local venue, trains a champion with MLflow, trades the replayed sessions paced to
end `live.duration_s` after it started, prints the summary). Target: about a minute of wall time (the
default `live.duration_s`, 60 s). Reported beside the wall time: the CPU seconds of the node (with the
retraining it reaps), of the venue and of the retraining process, sampled from /proc while it runs, so a
loaded machine's wall time can be told from the run's own work; and the same command unpaced
(`--speed 1e12`: as fast as the machine allows) as the peer that shows what the pacing adds.

Quick by default (1 session of 3 symbols in 15 s); HYBRIDTRADER_BENCH=full for the default run.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

FULL = os.environ.get("HYBRIDTRADER_BENCH") == "full"
ARGS = [] if FULL else ["--sessions", "1", "--symbols", "3", "--duration", "15"]
CLI = "import sys; from hybridtrader.cli import main; sys.exit(main())"
TICKS = os.sysconf("SC_CLK_TCK")


def _children_cpu(parent: int, seen: dict[int, tuple[str, float]]) -> None:
    """Note the CPU seconds so far (utime + stime) of each live child of `parent`, by pid."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text(errors="replace")
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # gone meanwhile
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == parent:
            kind = "venue" if " venue " in cmd else "retrain" if "multiprocessing" in cmd else "other"
            # an exited child (a zombie until reaped) has no command line: it keeps the kind it had
            kind = seen.get(int(entry), (kind, 0.0))[0] if not cmd.strip() else kind
            seen[int(entry)] = (kind, (int(fields[11]) + int(fields[12])) / TICKS)


def _run(workdir: Path, extra: list[str]) -> dict[str, float]:
    workdir.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if k != "HYBRIDTRADER_CONFIG"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", CLI, "live", *ARGS, *extra],
        cwd=workdir,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen: dict[int, tuple[str, float]] = {}
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.2):
            _children_cpu(proc.pid, seen)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, err = proc.communicate(timeout=900)
    wall = time.perf_counter() - t0
    done.set()
    sampler.join()
    assert proc.returncode == 0, err[-2000:]
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    node_and_reaped = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    by_kind = {k: sum(cpu for kind, cpu in seen.values() if kind == k) for k in ("venue", "retrain")}
    return {
        "wall_s": wall,
        "node_cpu_s": node_and_reaped - by_kind["retrain"],  # the retraining is reaped by the node
        "venue_cpu_s": by_kind["venue"],
        "retrain_cpu_s": by_kind["retrain"],
    }


def test_default_live_run(benchmark: Any, tmp_path: Path) -> None:
    runs = iter(range(10))
    ours = benchmark.pedantic(lambda: _run(tmp_path / f"paced{next(runs)}", []), rounds=1, iterations=1)
    peer = _run(tmp_path / "unpaced", ["--speed", "1e12"])
    benchmark.extra_info.update(
        {"target_wall_s": 60.0 if FULL else 15.0, **ours, **{f"unpaced_{k}": v for k, v in peer.items()}}
    )
    print(
        f"\nhybridtrader live {' '.join(ARGS)}: {ours['wall_s']:.1f} s wall (target "
        f"{benchmark.extra_info['target_wall_s']:.0f} s); CPU: node {ours['node_cpu_s']:.1f} s, venue "
        f"{ours['venue_cpu_s']:.1f} s, retraining {ours['retrain_cpu_s']:.1f} s. Unpaced (peer): "
        f"{peer['wall_s']:.1f} s wall; CPU node {peer['node_cpu_s']:.1f} s, venue "
        f"{peer['venue_cpu_s']:.1f} s, retraining {peer['retrain_cpu_s']:.1f} s"
    )
