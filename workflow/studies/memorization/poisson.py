"""Does training order influence memorization? (paper §3.2, Fig. 3): the Poisson analysis.

The paper cuts a checkpoint's scored samples, in training order, into blocks of 512 consecutive
samples, counts the memorized ones (score 1) per block, and compares those counts with a Poisson
distribution of the same mean in a Q-Q plot (`predictable-memorization/eda.ipynb`). If memorized
sequences arrive at a constant rate wherever they sit in training, the counts are Poisson and the
points lie on y = x: training order does not influence memorization.

The paper shows the plot and no test. We add the index-of-dispersion test (Fisher's chi-square
dispersion test): D = sum((x_i - mean)^2) / mean is chi-square with n - 1 degrees of freedom
when the counts are Poisson. It is the classical test for exactly this alternative: memorized
samples bunched in some part of training (e.g. late samples memorized more) make the counts
over-dispersed (D/(n-1) > 1). A Kolmogorov-Smirnov test is not valid here: the counts are
discrete and lambda is estimated from them.
"""

from __future__ import annotations

import math

import numpy as np


def block_counts(scores: np.ndarray, block_size: int = 512) -> np.ndarray:
    """Memorized samples (score == 1) per block of `block_size` consecutive scored samples.

    `scores` must be in training order. A trailing partial block is dropped: its count would
    come from fewer samples and is not comparable (at the paper's steps, N*1024 samples make
    whole blocks of 512).
    """
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    scores = np.asarray(scores)
    whole = len(scores) // block_size
    if whole == 0:
        raise ValueError(
            f"{len(scores)} scored samples make no whole block of {block_size}; lower block_size"
        )
    memorized = scores[: whole * block_size] == 1.0
    return memorized.reshape(whole, block_size).sum(axis=1).astype(np.int64)


def poisson_fit(counts: np.ndarray) -> float:
    """Maximum-likelihood Poisson rate: the mean count per block."""
    return float(np.mean(counts))


def poisson_qq(counts: np.ndarray, lam: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(theoretical, sample) quantiles for a Q-Q plot against Poisson(lam).

    Sample quantiles are the sorted counts; theoretical ones the Poisson quantiles at plotting
    positions i / (n + 1), i = 1..n, as statsmodels' `ProbPlot` (a = 0) that the paper used.
    """
    from scipy import stats

    counts = np.sort(np.asarray(counts))
    lam = poisson_fit(counts) if lam is None else lam
    n = len(counts)
    positions = np.arange(1, n + 1) / (n + 1)
    return stats.poisson.ppf(positions, lam).astype(np.float64), counts.astype(np.float64)


def dispersion_test(counts: np.ndarray) -> dict:
    """Index-of-dispersion (chi-square) test of counts against Poisson with a fitted mean.

    statistic = sum((x - mean)^2) / mean ~ chi2(n - 1) under Poisson; `dispersion` is
    statistic / (n - 1) (1 for Poisson, > 1 when memorized samples cluster in training time);
    `p_value` is two-sided (too much or too little spread), `p_overdispersed` the upper tail.
    """
    from scipy import stats

    counts = np.asarray(counts, dtype=np.float64)
    n = len(counts)
    if n < 2:
        raise ValueError(f"the dispersion test needs at least 2 blocks, got {n}")
    mean = counts.mean()
    df = n - 1
    if mean == 0:
        return {
            "test": "index of dispersion (chi-square)",
            "statistic": math.nan,
            "df": df,
            "dispersion": math.nan,
            "p_value": math.nan,
            "p_overdispersed": math.nan,
        }
    statistic = float(((counts - mean) ** 2).sum() / mean)
    upper = float(stats.chi2.sf(statistic, df))
    lower = float(stats.chi2.cdf(statistic, df))
    return {
        "test": "index of dispersion (chi-square)",
        "statistic": statistic,
        "df": df,
        "dispersion": statistic / df,
        "p_value": min(1.0, 2 * min(upper, lower)),
        "p_overdispersed": upper,
    }


def order_analysis(scores: np.ndarray, block_size: int) -> dict:
    """Block counts, the Poisson fit and its test for one checkpoint's scores."""
    counts = block_counts(scores, block_size)
    lam = poisson_fit(counts)
    return {
        "block_size": block_size,
        "blocks": len(counts),
        "lambda": lam,
        "counts": counts.tolist(),
        **dispersion_test(counts),
    }
