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

On the generated corpus we also know which samples hold a planted repeated passage
(`planted_coverage`), so the memorization rate of those can be compared with the rest.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from workflow.core.io import atomic_path

# An n-gram of passage tokens this long marks planted text; shorter ones can occur by chance
# in the generated corpus's other documents (the passages share their words with it).
PLANTED_NGRAM = 8


# ---------------------------------------------------------------------------- block counts


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


# ---------------------------------------------------------------------------- planted passages


def passage_ngrams(passages: Iterable[str], tokenizer, n: int = PLANTED_NGRAM) -> set[bytes]:
    """Token n-grams of the planted passages, as they are tokenized inside a document (after a
    space) and at its start."""
    grams: set[bytes] = set()
    for text in passages:
        for variant in (text, " " + text):
            ids = np.asarray(tokenizer.encode(variant).ids, dtype=np.int64)
            for i in range(len(ids) - n + 1):
                grams.add(ids[i : i + n].tobytes())
    return grams


def planted_coverage(rows: np.ndarray, grams: set[bytes], n: int = PLANTED_NGRAM) -> np.ndarray:
    """Boolean mask (rows.shape) of the tokens inside an occurrence of a planted passage: every
    token of an n-gram window that matches a passage n-gram."""
    rows = np.ascontiguousarray(np.asarray(rows, dtype=np.int64))
    mask = np.zeros(rows.shape, dtype=bool)
    if rows.shape[1] < n or not grams:
        return mask
    windows = np.lib.stride_tricks.sliding_window_view(rows, n, axis=1)
    flat = np.ascontiguousarray(windows).reshape(-1, n)
    keys = flat.view(np.dtype((np.void, 8 * n))).ravel()
    wanted = np.array(sorted(grams), dtype=np.dtype((np.void, 8 * n)))
    hit = np.isin(keys, wanted).reshape(windows.shape[:2])
    for offset in range(n):
        mask[:, offset : offset + hit.shape[1]] |= hit
    return mask


def planted_groups(coverage: np.ndarray, prompt_tokens: int, continuation_tokens: int):
    """'planted' (the whole continuation is passage text), 'rest' (no passage token in the
    prompt or continuation) or 'partial' per row."""
    k, n = prompt_tokens, continuation_tokens
    cont = coverage[:, k : k + n].all(axis=1)
    none = ~coverage[:, : k + n].any(axis=1)
    return np.where(cont, "planted", np.where(none, "rest", "partial"))


def planted_comparison(scores: np.ndarray, groups: np.ndarray) -> dict:
    """Samples, memorized samples, memorization rate and mean score of each group."""
    out = {}
    for name in ("planted", "partial", "rest"):
        sel = groups == name
        s = np.asarray(scores)[sel]
        out[name] = {
            "samples": int(sel.sum()),
            "memorized": int((s == 1.0).sum()),
            "memorized_rate": float((s == 1.0).mean()) if len(s) else math.nan,
            "mean_score": float(s.mean()) if len(s) else math.nan,
        }
    p, r = out["planted"]["memorized_rate"], out["rest"]["memorized_rate"]
    out["rate_ratio"] = p / r if r and not math.isnan(r) else (math.inf if p else math.nan)
    return out


def analyse_checkpoint(
    table,
    block_size: int,
    prompt_tokens: int,
    continuation_tokens: int,
    samples_prefix: str | os.PathLike | None = None,
    passages: Sequence[str] | None = None,
    tokenizer_path: str | os.PathLike | None = None,
) -> dict:
    """Everything Fig. 3 and the memorization table need from one checkpoint's (index, score)
    table: totals, the block counts with their Poisson fit and test, and (when the planted
    passages are known) memorization of the samples that hold one against the rest."""
    scores = table["score"].to_numpy()
    out = {
        "samples": len(scores),
        "memorized": int((scores == 1.0).sum()),
        "memorized_rate": float((scores == 1.0).mean()) if len(scores) else math.nan,
        "mean_score": float(scores.mean()) if len(scores) else math.nan,
        "prompt_tokens": prompt_tokens,
        "continuation_tokens": continuation_tokens,
        **order_analysis(scores, block_size),
    }
    if passages:
        from tokenizers import Tokenizer

        from workflow.data.indexed_dataset import MMapIndexedDataset

        ds = MMapIndexedDataset(samples_prefix)
        index = table["index"].to_numpy()
        width = prompt_tokens + continuation_tokens
        rows = np.stack([ds.get(int(i), 0, width) for i in index]) if len(index) else None
        grams = passage_ngrams(passages, Tokenizer.from_file(str(tokenizer_path)))
        groups = planted_groups(planted_coverage(rows, grams), prompt_tokens, continuation_tokens)
        out["planted"] = planted_comparison(scores, groups)
    return out


TABLE_COLUMNS = [
    "variant", "size", "step", "samples", "memorized", "memorized_rate", "mean_score",
    "block_size", "blocks", "lambda", "dispersion", "statistic", "df", "p_value",
    "p_overdispersed",
]  # fmt: skip


def memorization_table(paths: Iterable[str | os.PathLike]):
    """One row per analysed checkpoint (`analyse_checkpoint` JSONs), with the planted-vs-rest
    rates when known."""
    import pandas as pd

    from workflow.core.io import read_json

    rows = []
    for path in paths:
        a = read_json(path)
        row = {c: a.get(c) for c in TABLE_COLUMNS}
        for group, values in (a.get("planted") or {}).items():
            if isinstance(values, dict):
                row[f"{group}_samples"] = values["samples"]
                row[f"{group}_memorized_rate"] = values["memorized_rate"]
                row[f"{group}_mean_score"] = values["mean_score"]
            else:
                row["planted_rate_ratio"] = values
        rows.append(row)
    return pd.DataFrame(rows)


def write_csv(table, path: str | os.PathLike) -> None:
    with atomic_path(Path(path)) as tmp:
        table.to_csv(tmp, index=False)


# ---------------------------------------------------------------------------- Figure 3


def plot_poisson_qq(
    panels: Sequence[dict],
    out_pdf: str | os.PathLike,
    out_png: str | os.PathLike,
    title: str,
) -> None:
    """Fig. 3: one Q-Q panel per entry of `panels` (top to bottom), each a dict with `label`,
    `counts` and the dispersion-test fields. Dot size and colour give the number of blocks at
    the same point, as in the paper; the line is y = x."""
    from matplotlib import colormaps
    from matplotlib.figure import Figure  # no pyplot: no global backend state

    fig = Figure(figsize=(5.2, 3.6 * len(panels)))
    axes = fig.subplots(len(panels), 1, squeeze=False)[:, 0]
    cmap = colormaps["viridis"]
    for ax, panel in zip(axes, panels, strict=True):
        theo, sample = poisson_qq(np.asarray(panel["counts"]), panel["lambda"])
        points, overlap = np.unique(np.stack([theo, sample], axis=1), axis=0, return_counts=True)
        sc = ax.scatter(
            points[:, 0],
            points[:, 1],
            s=12 + 60 * overlap / overlap.max(),
            c=overlap,
            cmap=cmap,
            edgecolors="none",
        )
        fig.colorbar(sc, ax=ax, label="blocks at this point")
        hi = max(float(theo.max()), float(sample.max()), 1.0)
        ax.plot([0, hi], [0, hi], color="black", lw=1, ls="--", label="y = x")
        stat = (
            f"dispersion {panel['dispersion']:.2f}, "
            f"$\\chi^2_{{{panel['df']}}}$ = {panel['statistic']:.1f}, p = {panel['p_value']:.2g}"
            if not math.isnan(panel["statistic"])
            else "no memorized samples"
        )
        ax.set_title(
            f"{panel['label']}: {panel['blocks']} blocks of {panel['block_size']}, "
            f"$\\lambda$ = {panel['lambda']:.2f}\n{stat}",
            fontsize=9,
        )
        ax.set_xlabel("Poisson quantiles")
        ax.set_ylabel("memorized per block")
        ax.legend(loc="upper left", fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    for path, fmt in ((out_pdf, "pdf"), (out_png, "png")):
        with atomic_path(Path(path)) as tmp:
            kwargs = {"metadata": {"CreationDate": None}} if fmt == "pdf" else {}
            fig.savefig(tmp, format=fmt, dpi=150, bbox_inches="tight", **kwargs)
