"""Run every benchmark (issues 3, 4 and 6) and print one markdown table.

python -m bench.run            # full sizes (~10 minutes, ~10 GB RAM at peak)
python -m bench.run --quick    # small sizes: a smoke test
python -m bench.run --data-scale [--quick]   # issue 17: dedup jobs at 1M/3M/10M documents
                               # (~10 minutes, ~6 GB of disk, < 1 GB RSS a job), tokenize + merge
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
from pathlib import Path

from bench import data_scale, memorization, minhash, scale, tokenize, train
from bench import eval as eval_bench
from bench import term_frequency as term_frequency_bench
from bench.common import Result, table

FULL = {
    "tokenize_mb": 30,
    "vocab": 16384,
    "minhash_docs": 5000,
    "maps": (scale.PILE_DOCS, scale.PILE_TOKENS, scale.PYTHIA_SAMPLES, scale.SEQ),
    "rows": scale.PYTHIA_SAMPLES,
    "train": {"seq": 128, "batch": 8, "layers": 6, "hidden": 384, "heads": 6, "steps": 12},
    "eval": {"checkpoints": 6, "documents": 100},
    "term_frequency": {"tokens": 200_000_000, "baseline_rows": 1000},
    "memorization": {"sequences": 1024, "naive_sequences": 64, "layers": 4, "hidden": 256},
}
QUICK = {
    "tokenize_mb": 2,
    "vocab": 2048,
    "minhash_docs": 300,
    "maps": (2_000_000, 3_340_000_000, 1_471_641, scale.SEQ),
    "rows": 100_000,
    "train": {"seq": 32, "batch": 4, "layers": 2, "hidden": 64, "heads": 2, "steps": 4},
    "eval": {"checkpoints": 2, "documents": 20},
    "term_frequency": {"tokens": 10_000_000, "baseline_rows": 200},
    "memorization": {"sequences": 256, "naive_sequences": 16, "layers": 2, "hidden": 64},
}


# documents at 3% copies; `high`: one run at the Pile's share of copies (~1/3), for the fit
DATA_SCALE = {
    "documents": (1_000_000, 3_000_000, 10_000_000),
    "high": (3_000_000, 0.3),
    "check": 100_000,
    "tokenize_mb": 20,
}
DATA_SCALE_QUICK = {
    "documents": (100_000, 300_000, 1_000_000),
    "high": (300_000, 0.3),
    "check": 20_000,
    "tokenize_mb": 2,
}


def run_data_scale(sizes: dict, work: Path) -> list[Result]:
    """The data stages at scale (bench/data_scale.py): the largest size runs last."""
    results, _ = data_scale.run_dedup(
        work / "dedup", sizes["documents"], sizes["check"], sizes["high"]
    )
    tok = data_scale.run_tokenize(work / "tokenize", sizes["tokenize_mb"], 16384)
    return [tok, *results]


def run_all(sizes: dict, work: Path) -> list[Result]:
    return [
        tokenize.run(work / "tokenize", sizes["tokenize_mb"], sizes["vocab"], workers=2),
        minhash.run(sizes["minhash_docs"]),
        scale.run_maps(*sizes["maps"]),
        scale.run_rows(work / "rows", sizes["rows"], scale.SEQ, scale.BATCH),
        train.run(work / "train", **sizes["train"]),
        eval_bench.run(work / "eval", **sizes["eval"]),
        memorization.run(**sizes["memorization"]),
        term_frequency_bench.run(work / "term_frequency", **sizes["term_frequency"]),
    ]


def machine() -> str:
    return (
        f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke test)")
    parser.add_argument("--workdir", help="scratch directory (default: a temporary one)")
    parser.add_argument("--data-scale", action="store_true", help="the data stages at scale")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="pythia-bench.", dir=args.workdir) as work:
        if args.data_scale:
            results = run_data_scale(DATA_SCALE_QUICK if args.quick else DATA_SCALE, Path(work))
        else:
            results = run_all(QUICK if args.quick else FULL, Path(work))
    print(f"machine: {machine()}\n")
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
