"""Packing + shuffle and batch viewing at the paper's scale, on index arrays only (no tokens).

`python -m bench.scale maps DOCS TOKENS SAMPLES SEQ` builds doc_idx, sample_idx and shuffle_idx
as GPT-NeoX does for the Pile and prints JSON with the time and the process's peak RSS (run in
a subprocess so the RSS is the index maps' alone). `... rows ROWS SEQ BATCH DIR` writes a sparse
pre-shuffled sample file of ROWS rows (a .bin of the full size but no disk blocks, and a real
.idx) and prints the median time of `batch_rows` for steps near the end.
"""

from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from bench.common import Result
from workflow.data.batch_viewer import batch_rows
from workflow.data.indexed_dataset import write_index
from workflow.data.pack_shuffle import (
    build_doc_idx,
    build_sample_idx,
    build_shuffle_idx,
    num_epochs,
)

# The Pile (reference/pythia.md): ~210M documents, ~334B tokens with the GPT-NeoX tokenizer;
# Pythia trains 143,000 steps x 1024 samples... of 2049 tokens: 147,164,160 samples.
PILE_DOCS = 210_607_728
PILE_TOKENS = 334_000_000_000
PYTHIA_SAMPLES = 147_164_160
SEQ = 2048
BATCH = 1024


def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def doc_sizes(num_docs: int, total_tokens: int, seed: int = 0) -> np.ndarray:
    """int32 document lengths, lognormal (web text), summing to ~total_tokens; drawn in
    chunks so no float64 array of num_docs is ever held."""
    rng = np.random.default_rng(seed)
    mean = total_tokens / num_docs
    sigma = 1.2
    mu = np.log(mean) - sigma**2 / 2
    sizes = np.empty(num_docs, dtype=np.int32)
    step = 1 << 23
    for i in range(0, num_docs, step):
        n = min(step, num_docs - i)
        sizes[i : i + n] = np.clip(rng.lognormal(mu, sigma, n), 1, 2**31 - 1).astype(np.int32)
    return sizes


def build_maps(num_docs: int, total_tokens: int, num_samples: int, seq: int) -> dict:
    sizes = doc_sizes(num_docs, total_tokens)
    tokens = int(sizes.sum(dtype=np.int64))
    rss0 = _peak_rss_bytes()
    t = time.perf_counter()
    epochs = num_epochs(tokens, seq, num_samples)
    rng = np.random.RandomState(1234)
    doc_idx = build_doc_idx(np.arange(num_docs, dtype=np.int32), epochs, rng)
    t_doc = time.perf_counter()
    sample_idx = build_sample_idx(sizes, doc_idx, seq, epochs, tokens)
    t_sample = time.perf_counter()
    shuffle_idx = build_shuffle_idx(len(sample_idx) - 1, len(sample_idx) - 1, rng)
    t_end = time.perf_counter()
    assert len(shuffle_idx) >= num_samples
    return {
        "documents": num_docs,
        "tokens": tokens,
        "epochs": epochs,
        "windows": len(sample_idx) - 1,
        "seconds": t_end - t,
        "seconds_doc_idx": t_doc - t,
        "seconds_sample_idx": t_sample - t_doc,
        "seconds_shuffle_idx": t_end - t_sample,
        "peak_rss": _peak_rss_bytes(),
        "peak_rss_before": rss0,
    }


def write_sparse_samples(prefix: Path, rows: int, seq: int) -> None:
    """A fixed-length uint16 sample file of `rows` rows of seq + 1 tokens: the .bin is a
    sparse file (no disk used, reads give zeros), the .idx is real."""
    width = seq + 1
    with open(f"{prefix}.bin", "wb") as f:
        f.truncate(rows * width * 2)
    sizes = np.full(rows, width, dtype=np.int32)
    write_index(Path(f"{prefix}.idx"), np.dtype(np.uint16), sizes, np.arange(rows + 1))


def read_steps(prefix: Path, rows: int, batch: int, reads: int = 9) -> dict:
    """Median seconds of `batch_rows` (open + read + copy) over distinct steps near the end:
    each read touches pages not read before (cold in the page cache, though a sparse file's
    holes cost no disk I/O)."""
    last = rows // batch - 1
    times = []
    for k in range(reads):
        step = max(0, last - 2 * k)
        t = time.perf_counter()
        out = batch_rows(prefix, step, batch)
        times.append(time.perf_counter() - t)
        assert out.shape[0] == batch
    warm = []
    for _ in range(reads):  # the same step again: page-cache warm
        t = time.perf_counter()
        batch_rows(prefix, last, batch)
        warm.append(time.perf_counter() - t)
    return {
        "steps": last + 1,
        "median_cold": statistics.median(times),
        "median_warm": statistics.median(warm),
    }


def _subprocess(*args) -> dict:
    proc = subprocess.run(
        [sys.executable, "-m", "bench.scale", *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).resolve().parent.parent,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"bench.scale {args} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_maps(num_docs=PILE_DOCS, total_tokens=PILE_TOKENS, num_samples=PYTHIA_SAMPLES, seq=SEQ):
    r = _subprocess("maps", num_docs, total_tokens, num_samples, seq)
    gib = r["peak_rss"] / 2**30
    return Result(
        name=f"index maps: {num_docs:,} docs, {r['tokens'] / 1e9:.0f}B tokens, "
        f"{num_samples:,} samples x {seq}",
        ours=f"{gib:.2f} GiB peak RSS, {r['seconds']:.0f} s",
        baseline="-",
        ratio=None,
        target="< 8 GiB",
        passed=gib < 8,
        note=f"{r['epochs']} epoch(s), {r['windows']:,} windows; doc_idx "
        f"{r['seconds_doc_idx']:.1f} s, sample_idx {r['seconds_sample_idx']:.1f} s, shuffle_idx "
        f"{r['seconds_shuffle_idx']:.1f} s; RSS includes the sizes array "
        f"({r['peak_rss_before'] / 2**30:.2f} GiB peak before building)",
    )


def run_rows(work: Path, rows=PYTHIA_SAMPLES, seq=SEQ, batch=BATCH):
    work.mkdir(parents=True, exist_ok=True)
    r = _subprocess("rows", rows, seq, batch, work)
    ms = r["median_cold"] * 1e3
    return Result(
        name=f"batch_rows: one step ({batch} x {seq + 1} uint16) of a {rows:,}-row file",
        ours=f"{ms:.2f} ms (warm {r['median_warm'] * 1e3:.2f} ms)",
        baseline="-",
        ratio=None,
        target="< 10 ms",
        passed=ms < 10,
        note=f"sparse .bin of {rows * (seq + 1) * 2 / 1e9:,.0f} GB (holes: no disk reads, so this "
        "is the open + page-fault + copy cost; a real file adds the disk's latency)",
    )


def main(argv: list[str]) -> int:
    if argv[0] == "maps":
        print(json.dumps(build_maps(*map(int, argv[1:5]))))
    elif argv[0] == "rows":
        rows, seq, batch, work = int(argv[1]), int(argv[2]), int(argv[3]), Path(argv[4])
        prefix = work / "samples"
        try:
            write_sparse_samples(prefix, rows, seq)
            print(json.dumps(read_steps(prefix, rows, batch)))
        finally:
            for ext in (".bin", ".idx"):
                Path(f"{prefix}{ext}").unlink(missing_ok=True)
    else:
        raise SystemExit(f"unknown mode {argv[0]!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
