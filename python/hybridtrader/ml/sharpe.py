"""Sharpe-ratio statistics (Bailey & López de Prado 2012, 2014). Every Sharpe here is per period (not
annualised); skewness g3 and *raw* kurtosis g4 (3 for a normal) are the returns' sample moments.

- PSR(SR*) = Phi((SR - SR*) sqrt(T - 1) / sqrt(1 - g3 SR + (g4 - 1) / 4 SR^2))
- DSR = PSR(SR0), SR0 = sqrt(V) ((1 - gamma) Phi^-1(1 - 1/N) + gamma Phi^-1(1 - 1/(N e))): the expected
  maximum Sharpe of N independent zero-skill trials whose Sharpe ratios have variance V. With N = 1 there
  is no selection and SR0 = 0 (DSR = PSR(0)).
- MinTRL = 1 + (1 - g3 SR + (g4 - 1) / 4 SR^2) (z_alpha / (SR - SR*))^2 periods.
The promotion gate evaluates the DSR in its conservative form (see `probabilistic_sharpe_ratio`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from hybridtrader.errors import DataError

EULER_GAMMA = 0.5772156649015329
# The standard normal from the standard library: scipy.stats costs half a second to import in every sweep
# and training worker, for two functions.
_NORMAL = NormalDist()


@dataclass(frozen=True)
class ReturnMoments:
    sharpe: float  # per period
    skew: float
    kurtosis: float  # raw (normal = 3)
    n: int


def return_moments(returns: np.ndarray) -> ReturnMoments:
    """Sharpe (mean / std with ddof 1), skewness and raw kurtosis; a flat series has Sharpe 0 and
    normal moments (there is nothing to estimate)."""
    r = np.asarray(returns, dtype=float)
    if r.ndim != 1:
        raise DataError(f"returns: need a 1-d array, got shape {r.shape}")
    n = len(r)
    sd = float(r.std(ddof=1)) if n > 1 else 0.0
    if n < 2 or sd == 0.0 or not math.isfinite(sd):
        return ReturnMoments(0.0, 0.0, 3.0, n)
    d = r - r.mean()
    m2, m3, m4 = (float(np.mean(d**k)) for k in (2, 3, 4))
    # The bias-corrected sample skewness G1 and raw kurtosis G2 + 3 (Joanes & Gill 1998).
    skew = math.sqrt(n * (n - 1)) / (n - 2) * m3 / m2**1.5 if n > 2 else 0.0
    kurt = (n - 1) / ((n - 2) * (n - 3)) * ((n + 1) * m4 / m2**2 - 3 * (n - 1)) + 3 if n > 3 else 3.0
    return ReturnMoments(float(r.mean() / sd), float(skew), float(kurt), n)


def _sr_std_factor(sr: float, skew: float, kurtosis: float) -> float:
    return math.sqrt(max(1.0 - skew * sr + (kurtosis - 1.0) / 4.0 * sr * sr, 1e-12))


def probabilistic_sharpe_ratio(
    sr: float, sr_benchmark: float, n: int, skew: float, kurtosis: float, conservative: bool = False
) -> float:
    """PSR. `conservative`: never let the non-normal moments shrink the Sharpe ratio's standard error below
    the normal one (1 + SR^2 / 2); short samples with a few gains and many flat periods show a positive
    skew that the formula would otherwise reward (the gates use this)."""
    if n < 2:
        raise DataError(f"n must be >= 2 periods, got {n}")
    factor = _sr_std_factor(sr, skew, kurtosis)
    if conservative:
        factor = max(factor, _sr_std_factor(sr, 0.0, 3.0))
    z = (sr - sr_benchmark) * math.sqrt(n - 1) / factor
    return _NORMAL.cdf(z)


def expected_max_sharpe(n_trials: int, var_sharpe: float) -> float:
    """SR0: the Sharpe the best of `n_trials` zero-skill trials reaches by luck."""
    if n_trials < 1:
        raise DataError(f"n_trials must be >= 1, got {n_trials}")
    if var_sharpe < 0:
        raise DataError(f"var_sharpe must be >= 0, got {var_sharpe}")
    if n_trials == 1:
        return 0.0
    a = _NORMAL.inv_cdf(1.0 - 1.0 / n_trials)
    b = _NORMAL.inv_cdf(1.0 - 1.0 / (n_trials * math.e))
    return float(math.sqrt(var_sharpe) * ((1.0 - EULER_GAMMA) * a + EULER_GAMMA * b))


def deflated_sharpe_ratio(
    sr: float,
    n: int,
    skew: float,
    kurtosis: float,
    n_trials: int,
    var_sharpe: float,
    conservative: bool = False,
) -> float:
    sr0 = expected_max_sharpe(n_trials, var_sharpe)
    return probabilistic_sharpe_ratio(sr, sr0, n, skew, kurtosis, conservative)


def min_track_record_length(
    sr: float, sr_benchmark: float, skew: float, kurtosis: float, alpha: float = 0.05
) -> float:
    """Periods needed for PSR(sr_benchmark) >= 1 - alpha; infinite when sr <= sr_benchmark."""
    if not 0.0 < alpha < 1.0:
        raise DataError(f"alpha must be in (0, 1), got {alpha}")
    if sr <= sr_benchmark:
        return math.inf
    z = _NORMAL.inv_cdf(1.0 - alpha)
    return 1.0 + _sr_std_factor(sr, skew, kurtosis) ** 2 * (z / (sr - sr_benchmark)) ** 2
