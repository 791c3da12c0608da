"""Feature drift between a reference sample (training data) and a current sample (live data).

- KS: the two-sided two-sample Kolmogorov-Smirnov statistic, `scipy.stats.ks_2samp`.
- PSI = sum_i (p_i - q_i) ln(p_i / q_i), p the current and q the reference share of bin i. Bins are the
  reference's quantiles (deciles by default; repeated quantiles of a discrete feature merge into one
  edge) with open outer bins, so values outside the reference range still count. A bin with no
  observations gets the share `epsilon` (1e-4 by default) instead of 0 (shares are not renormalised), so
  ln(p/q) stays finite and an emptied bin still adds a large term.
Missing values (null/NaN) are dropped before both tests.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import polars as pl
from scipy import stats

from hybridtrader.config import DriftConfig
from hybridtrader.errors import ConfigError


def _clean(values: np.ndarray | Sequence[float], name: str) -> np.ndarray:
    a = np.asarray(values, dtype=float).ravel()
    a = a[np.isfinite(a)]
    if len(a) == 0:
        raise ConfigError(f"{name}: no finite values")
    return a


def psi(
    reference: np.ndarray | Sequence[float],
    current: np.ndarray | Sequence[float],
    bins: int = 10,
    epsilon: float = 1e-4,
) -> float:
    if bins < 2:
        raise ConfigError(f"bins must be >= 2, got {bins}")
    if not 0.0 < epsilon < 1.0:
        raise ConfigError(f"epsilon must be in (0, 1), got {epsilon}")
    ref, cur = _clean(reference, "reference"), _clean(current, "current")
    edges = np.unique(np.quantile(ref, np.linspace(0.0, 1.0, bins + 1))[1:-1])
    k = len(edges) + 1
    q = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=k) / len(ref)
    p = np.bincount(np.searchsorted(edges, cur, side="right"), minlength=k) / len(cur)
    q = np.where(q == 0.0, epsilon, q)
    p = np.where(p == 0.0, epsilon, p)
    return float(np.sum((p - q) * np.log(p / q)))


def ks(reference: np.ndarray | Sequence[float], current: np.ndarray | Sequence[float]) -> tuple[float, float]:
    """(statistic, p-value) of the two-sided two-sample KS test: scipy's exact p-value for small samples,
    the asymptotic one for large samples or where the exact computation does not converge (scipy then
    switches itself, with a RuntimeWarning that says only that)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "ks_2samp: Exact calculation unsuccessful", RuntimeWarning)
        res = stats.ks_2samp(_clean(reference, "reference"), _clean(current, "current"))
    return float(res.statistic), float(res.pvalue)


@dataclass(frozen=True)
class FeatureDrift:
    feature: str
    ks: float
    ks_pvalue: float
    psi: float
    drifted: bool  # KS above its threshold or PSI above its threshold

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def feature_drift(
    reference: pl.DataFrame, current: pl.DataFrame, cfg: DriftConfig, features: Sequence[str] | None = None
) -> list[FeatureDrift]:
    """KS and PSI per numeric feature column present in both frames (or the given `features`)."""
    if features is None:
        features = [c for c, t in reference.schema.items() if t.is_numeric() and c in current.columns]
    missing = [f for f in features if f not in reference.columns or f not in current.columns]
    if missing:
        raise ConfigError(f"features {missing} are not in both the reference and the current frame")
    if not features:
        raise ConfigError("feature_drift: no numeric feature columns in common")
    out = []
    for f in features:
        r, c = reference[f].cast(pl.Float64).to_numpy(), current[f].cast(pl.Float64).to_numpy()
        k, pv = ks(r, c)
        p = psi(r, c, cfg.psi_bins, cfg.psi_epsilon)
        out.append(FeatureDrift(f, k, pv, p, k > cfg.ks_threshold or p > cfg.psi_threshold))
    return out
