"""Pictures and an HTML page of a training: out-of-sample equity, feature importance, gate table.

The charts are SVG written directly: a line chart and a bar chart need no plotting library (matplotlib
took about 0.8 s to import and 70 ms per figure, more than the rest of a training's registry logging).
MLflow's artifact viewer and any browser show SVG, and it stays sharp at every size.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from hybridtrader.ml.gates import GateResult
from hybridtrader.ml.result import TrainingResult

_FONT = "font-family='sans-serif' font-size='11'"


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """About `count` round axis values (steps of 1, 2, 2.5 or 5 times a power of ten) covering [lo, hi]."""
    span = hi - lo if hi > lo else abs(hi) or 1.0
    raw = span / count
    mag = 10.0 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1.0, 2.0, 2.5, 5.0, 10.0) if m * mag >= raw)
    first = math.floor(lo / step) * step
    n = math.ceil((max(hi, lo + step) - first) / step - 1e-9)
    return [round(first + i * step, 12) for i in range(n + 1)]


class _Chart:
    """An SVG canvas with a plot area mapped to data ranges [x0, x1] x [y0, y1]."""

    def __init__(self, width: int, height: int, margins: tuple[int, int, int, int], title: str) -> None:
        self.w, self.h = width, height
        self.left, self.right, self.top, self.bottom = margins
        self.parts = [
            f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
            f"viewBox='0 0 {width} {height}'><rect width='100%' height='100%' fill='white'/>",
            f"<text x='{width / 2:.1f}' y='{self.top - 10}' text-anchor='middle' font-family='sans-serif' "
            f"font-size='13'>{html.escape(title)}</text>",
        ]

    def scale(self, x0: float, x1: float, y0: float, y1: float) -> None:
        self.x0, self.y0 = x0, y0
        self.sx = (self.w - self.left - self.right) / ((x1 - x0) or 1.0)
        self.sy = (self.h - self.top - self.bottom) / ((y1 - y0) or 1.0)

    def px(self, x: Any) -> Any:  # float or array
        return self.left + (x - self.x0) * self.sx

    def py(self, y: Any) -> Any:
        return self.h - self.bottom - (y - self.y0) * self.sy

    def add(self, part: str) -> None:
        self.parts.append(part)

    def text(self, x: float, y: float, s: str, anchor: str = "middle", extra: str = "") -> None:
        anchor_attr = f"text-anchor='{anchor}' {_FONT}{extra}"
        self.add(f"<text x='{x:.1f}' y='{y:.1f}' {anchor_attr}>{html.escape(s)}</text>")

    def frame(self) -> None:
        x, y = self.left, self.top
        self.add(
            f"<rect x='{x}' y='{y}' width='{self.w - x - self.right}' height='{self.h - y - self.bottom}' "
            "fill='none' stroke='#444'/>"
        )

    def svg(self) -> bytes:
        return ("".join(self.parts) + "</svg>").encode()


def equity_svg(equity: pl.DataFrame, title: str) -> bytes:
    """Line chart of the equity (start 1.0) per period of the out-of-sample trades, against time; an empty
    chart when nothing was evaluated (a strategy rejected without training has no equity columns)."""
    if equity.is_empty():
        return line_svg(pl.Series("period", [], pl.Date), np.empty(0), title, "equity", reference=1.0)
    return line_svg(equity["period"], equity["equity"].to_numpy(), title, "equity", reference=1.0)


def line_svg(
    x_values: pl.Series,
    y_values: np.ndarray,
    title: str,
    ylabel: str,
    reference: float | None = None,
    fmt: str = "{:g}",
) -> bytes:
    """Line chart of `y_values` against the times (or dates) `x_values`, with a dashed line at `reference`
    (kept inside the y range) when given; NaN values leave no point."""
    c = _Chart(800, 350, (70, 40, 35, 60), title)
    values = np.asarray(y_values, dtype=float)
    period = x_values.filter(pl.Series(np.isfinite(values)))  # a line has no point for NaN
    values = values[np.isfinite(values)]
    x = period.to_physical().to_numpy().astype(float)
    lo_hi = [] if reference is None else [reference]
    if len(x):
        ys = nice_ticks(min([*lo_hi, float(values.min())]), max([*lo_hi, float(values.max())]))
        c.scale(x[0], x[-1], ys[0], ys[-1])
    else:
        ys = nice_ticks(0.9, 1.1)
        c.scale(0.0, 1.0, ys[0], ys[-1])
    for v in ys:  # horizontal grid with the y labels
        y = c.py(v)
        c.add(f"<line x1='{c.left}' x2='{c.w - c.right}' y1='{y:.1f}' y2='{y:.1f}' stroke='#ddd'/>")
        c.text(c.left - 6, y + 4, fmt.format(v), anchor="end")
    if len(x):
        pick = np.unique(np.searchsorted(x, np.linspace(x[0], x[-1], 6)).clip(0, len(x) - 1))  # even in time
        ticks = period.gather(pick)
        within_days = ticks.dtype == pl.Datetime and ticks.dt.date().n_unique() < len(ticks)
        labels = ticks.dt.strftime("%m-%d %H:%M" if within_days else "%Y-%m-%d")
        for i, label in zip(pick, labels, strict=True):
            c.text(c.px(x[i]), c.h - c.bottom + 16, label)
        if reference is not None:
            one = c.py(reference)
            c.add(
                f"<line x1='{c.left}' x2='{c.w - c.right}' y1='{one:.1f}' y2='{one:.1f}' stroke='grey' "
                "stroke-dasharray='5,4'/>"
            )
        points = " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(c.px(x), c.py(values), strict=True))
        c.add(f"<polyline points='{points}' fill='none' stroke='#1f77b4' stroke-width='1.4'/>")
    c.frame()
    mid = c.top + (c.h - c.top - c.bottom) / 2
    c.text(18, mid, ylabel, extra=f" transform='rotate(-90 18 {mid:.1f})'")
    return c.svg()


def importance_svg(names: Sequence[str], gain: Sequence[float], title: str) -> bytes:
    """Horizontal bar chart of each feature's total gain, largest at the top."""
    order = sorted(range(len(names)), key=lambda i: gain[i], reverse=True)
    longest = max((len(n) for n in names), default=1)
    row = 24
    c = _Chart(600, 80 + row * len(names), (min(300, 16 + 7 * longest), 30, 35, 45), title)
    xs = nice_ticks(0.0, max([0.0, *gain]) or 1.0)
    c.scale(0.0, xs[-1], 0.0, 1.0)
    for v in xs:
        x = c.px(v)
        c.add(f"<line x1='{x:.1f}' x2='{x:.1f}' y1='{c.top}' y2='{c.h - c.bottom}' stroke='#ddd'/>")
        c.text(x, c.h - c.bottom + 16, f"{v:g}")
    for k, i in enumerate(order):
        y = c.top + k * row + 4
        width = max(0.0, c.px(max(gain[i], 0.0)) - c.left)
        c.add(f"<rect x='{c.left}' y='{y}' width='{width:.1f}' height='{row - 8}' fill='#1f77b4'/>")
        c.text(c.left - 6, y + row / 2, names[i], anchor="end")
    c.frame()
    c.text(c.left + (c.w - c.left - c.right) / 2, c.h - 10, "total gain")
    return c.svg()


def _gate_rows(gates: Sequence[GateResult]) -> str:
    rows = []
    for g in gates:
        status = "pass" if g.passed else "FAIL"
        rows.append(
            f"<tr class='{status.lower()}'><td>{html.escape(g.name)}</td><td>{g.value:.4g}</td>"
            f"<td>{html.escape(g.op)} {g.threshold:.4g}</td><td>{status}</td></tr>"
        )
    return "".join(rows)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _no_trades(who: str, m: dict[str, float]) -> str:
    if m.get("n_trades", 0.0) > 0:
        return ""
    return (
        f"<p class='warn'>{html.escape(who)} made no out-of-sample trades: its Sharpe, drawdown and win rate "
        "describe nothing, and no gate counts as passed.</p>"
    )


def _comparison(r: TrainingResult) -> str:
    """Model-filtered strategy beside the unfiltered rule on the same out-of-sample periods."""
    m = r.metrics
    rule = r.rule.metrics if r.rule is not None else {}

    def row(name: str, x: dict[str, float]) -> list[str]:
        return [
            name,
            f"{x.get('sharpe', 0.0):.2f}",
            f"{x.get('n_trades', 0.0):.0f}",
            f"{x.get('win_rate', 0.0):.1%}",
            f"{x.get('max_drawdown', 0.0):.2%}",
            f"{x.get('total_return', 0.0):.2%}",
            f"{x.get('deflated_sharpe', 0.0):.3f} of {x.get('n_trials', 0.0):.0f} trials",
        ]

    header = ["strategy", "Sharpe (ann.)", "trades", "win rate", "max drawdown", "return", "deflated Sharpe"]
    threshold = f" (threshold {r.best.threshold:g})" if r.best is not None else ""
    table = _table(header, [row(f"model-filtered{threshold}", m), row("rule alone (every event)", rule)])
    gain = (
        f"<p>Sharpe gain of the model over the rule: {m.get('sharpe_gain', 0.0):.2f} (90% bootstrap "
        f"interval {m.get('sharpe_gain_low', 0.0):.2f} to {m.get('sharpe_gain_high', 0.0):.2f}); the "
        f"model's Sharpe is the higher one in {m.get('rule_gain_confidence', 0.0):.1%} of paired "
        f"stationary-bootstrap resamples (mean block {m.get('bootstrap_block_periods', 0.0):.0f} "
        "periods).</p>"
        f"<p>Out-of-sample AUC {m.get('auc', 0.5):.3f}, {m.get('auc_confidence', 0.95):.0%} DeLong interval "
        f"{m.get('auc_low', 0.0):.3f} to {m.get('auc_high', 1.0):.3f} (labels' base rate "
        f"{m.get('positive_rate', 0.0):.3f}; {m.get('n_thresholds_tried', 0.0):.0f} thresholds above it "
        "tried).</p>"
    )
    return table + gain + _no_trades("The model-filtered strategy", m) + _no_trades("The rule alone", rule)


def _permutation(m: dict[str, float]) -> str:
    runs = m.get("permutation_runs", 0.0)
    if not runs:
        return "<p>Permutation control: not run (train with --permutations N).</p>"
    return (
        f"<p>Permutation control: {runs:.0f} retrainings on labels shuffled within each validation block, "
        f"each selected and scored like the real one. Sharpe gain over the rule: real "
        f"{m['sharpe_gain']:.2f}, shuffled mean {m['permutation_null_gain_mean']:.2f}, max "
        f"{m['permutation_null_gain_max']:.2f}; p-value {m['permutation_p']:.3f}; shuffled models' mean AUC "
        f"{m['permutation_null_auc_mean']:.3f}; {m['permutation_seconds_per_run']:.1f} s per run.</p>"
    )


def _provenance(r: TrainingResult, source: str) -> str:
    rows = [
        ["data", source],
        ["range", f"{r.data_start} .. {r.data_end} ({r.n_symbols} symbols)"],
        ["validation", r.validation_method],
        ["costs", f"{r.costs} (round trip: entry and exit legs, priced at entry)"],
        ["market-neutral P&L", "yes (against the equal-weighted basket)" if r.market_neutral else "no"],
    ]
    rows += [[f"fold {i + 1}", f"train {f['train']}; test {f['test']}"] for i, f in enumerate(r.fold_dates)]
    return _table(["", ""], rows)


def write_report(results: Sequence[TrainingResult], directory: str | Path, source: str = "") -> Path:
    """Write `index.html` and its SVG charts for results of `MLPipeline.train_strategy_model`. `source`
    says where the bars came from (a file, or a synthetic market's knobs and seed)."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    sections = []
    for r in results:
        name = r.strategy
        (out / f"{name}_equity.svg").write_bytes(
            equity_svg(r.equity, f"{name}: model-filtered, out-of-sample")
        )
        charts = f"<img src='{name}_equity.svg' alt='model equity curve'>"
        if r.rule is not None:
            (out / f"{name}_rule_equity.svg").write_bytes(
                equity_svg(r.rule.equity, f"{name}: rule alone, out-of-sample")
            )
            charts += f"<img src='{name}_rule_equity.svg' alt='rule equity curve'>"
        imp = r.feature_importance
        (out / f"{name}_importance.svg").write_bytes(
            importance_svg(list(imp), list(imp.values()), f"{name}: feature importance")
        )
        charts += f"<img src='{name}_importance.svg' alt='feature importance'>"
        m = r.metrics
        rule_part = ""
        if r.rule is not None:
            where = (
                f"registered as {r.rule.model_id} ({r.rule.alias})" if r.rule.model_id else "not registered"
            )
            offered = f"offered as its own candidate, {where}" if r.rule.offered else "not offered"
            rule_part = (
                f"<h3>Rule alone: {offered}</h3><table><tr><th>gate</th><th>value</th><th>threshold</th>"
                f"<th>result</th></tr>{_gate_rows(r.rule.gates)}</table>"
            )
        verdict = "PROMOTED (champion)" if r.promoted else "rejected (challenger)"
        sections.append(
            f"<h2>{html.escape(name)} — {verdict}</h2><p class='verdict'>{html.escape(r.verdict)}</p>"
            f"<p>model {html.escape(str(r.model_id))}, trials {m.get('n_trials', 0.0):.0f}, "
            f"{m.get('n_samples', 0.0):.0f} samples ({m.get('n_oos_samples', 0.0):.0f} out of sample)</p>"
            + _provenance(r, source or "not stated")
            + "<h3>Model against the rule, same out-of-sample periods</h3>"
            + (_comparison(r) if r.reason is None else "")
            + _permutation(m)
            + "<h3>Model gates</h3><table><tr><th>gate</th><th>value</th><th>threshold</th><th>result</th>"
            f"</tr>{_gate_rows(r.gates)}</table>" + rule_part + charts
        )
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>hybridtrader training report</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #ccc;padding:4px 10px}tr.fail td{background:#fde2e2}"
        "tr.pass td{background:#e3f6e3}img{max-width:48%;margin-right:1%}.warn{color:#a00;font-weight:bold}"
        ".verdict{font-size:1.1em}</style></head><body>"
        "<h1>hybridtrader training report</h1>" + "".join(sections) + "</body></html>"
    )
    path = out / "index.html"
    path.write_text(page)
    return path
