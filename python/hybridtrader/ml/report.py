"""Pictures and an HTML page of a training: out-of-sample equity, feature importance, gate table.

matplotlib runs with the Agg backend (no display); images are PNG bytes, written next to the HTML.
"""

from __future__ import annotations

import html
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import polars as pl


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def equity_png(equity: pl.DataFrame, title: str) -> bytes:
    """Equity (start 1.0) per period of the out-of-sample trades."""
    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.plot(equity["period"].to_list(), equity["equity"].to_list(), lw=1.4)
    ax.axhline(1.0, color="grey", lw=0.8, ls="--")
    ax.set_title(title)
    ax.set_ylabel("equity")
    ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    return _png(fig)


def importance_png(names: Sequence[str], gain: Sequence[float], title: str) -> bytes:
    order = sorted(range(len(names)), key=lambda i: gain[i])
    fig, ax = plt.subplots(figsize=(6, 0.4 * len(names) + 1.2))
    ax.barh([names[i] for i in order], [gain[i] for i in order])
    ax.set_title(title)
    ax.set_xlabel("total gain")
    return _png(fig)


def _gate_rows(gates: Sequence[dict[str, Any]]) -> str:
    rows = []
    for g in gates:
        status = "pass" if g["passed"] else "FAIL"
        rows.append(
            f"<tr class='{status.lower()}'><td>{html.escape(g['name'])}</td><td>{g['value']:.4g}</td>"
            f"<td>{g['op']} {g['threshold']:.4g}</td><td>{status}</td></tr>"
        )
    return "".join(rows)


def write_report(results: Sequence[dict[str, Any]], directory: str | Path) -> Path:
    """Write `index.html` and its PNGs for results of `MLPipeline.train_strategy_model`."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    sections = []
    for r in results:
        name = r["strategy"]
        (out / f"{name}_equity.png").write_bytes(equity_png(r["equity"], f"{name}: out-of-sample equity"))
        imp = r["feature_importance"]
        (out / f"{name}_importance.png").write_bytes(
            importance_png(list(imp), list(imp.values()), f"{name}: feature importance")
        )
        m = r["metrics"]
        sections.append(
            f"<h2>{html.escape(name)} — {'PROMOTED (champion)' if r['promoted'] else 'rejected (challenger)'}"
            f"</h2><p>model {html.escape(str(r['model_id']))}, trials {m['n_trials']:.0f}, "
            f"validation {html.escape(str(r['validation_method']))}, {m['n_samples']:.0f} samples</p>"
            f"<table><tr><th>gate</th><th>value</th><th>threshold</th><th>result</th></tr>"
            f"{_gate_rows(r['gates'])}</table>"
            f"<img src='{name}_equity.png' alt='equity curve'><img src='{name}_importance.png' "
            f"alt='feature importance'>"
        )
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>hybridtrader training report</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #ccc;padding:4px 10px}tr.fail td{background:#fde2e2}"
        "tr.pass td{background:#e3f6e3}img{max-width:48%;margin-right:1%}</style></head><body>"
        "<h1>hybridtrader training report</h1>" + "".join(sections) + "</body></html>"
    )
    path = out / "index.html"
    path.write_text(page)
    return path
