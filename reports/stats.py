"""Bootstrap confidence intervals (seeded, so a report rebuilt from the same run is identical)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

N_BOOT = 2000
LEVEL = 0.95
SEED = 0


@dataclass(frozen=True)
class Estimate:
    n: int
    mean: float
    lo: float  # nan when it cannot be estimated (n < 2, or non-finite values such as PSNR=inf)
    hi: float

    @property
    def has_ci(self) -> bool:
        return math.isfinite(self.lo) and math.isfinite(self.hi)


def bootstrap_mean(values, n_boot: int = N_BOOT, level: float = LEVEL, seed: int = SEED) -> Estimate:
    """Mean with a percentile-bootstrap CI. Each call reseeds, so the CI of one group does not
    depend on which groups were computed before it."""
    x = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    n = len(x)
    if n == 0:
        return Estimate(0, math.nan, math.nan, math.nan)
    mean = float(np.mean(x)) if np.all(np.isfinite(x)) else _nonfinite_mean(x)
    if n < 2 or not np.all(np.isfinite(x)):
        return Estimate(n, mean, math.nan, math.nan)
    if np.all(x == x[0]):
        return Estimate(n, mean, mean, mean)
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, n, size=(n_boot, n))].mean(axis=1)
    alpha = (1 - level) / 2
    lo, hi = np.quantile(means, [alpha, 1 - alpha])
    return Estimate(n, mean, float(lo), float(hi))


def _nonfinite_mean(x: np.ndarray) -> float:
    # +inf with finite values is +inf (PSNR of identical frames); +inf with -inf is undefined.
    with np.errstate(invalid="ignore"):
        return float(np.mean(x))
