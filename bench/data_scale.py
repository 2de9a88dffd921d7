"""The data stages at scale without the Pile (issue 17): the dedup bucket and cluster jobs on
synthetic signatures with planted duplicates, and tokenize + merge per shard.

Signatures: `documents` rows of 128 uint32 values written as the signature jobs write them
(`write_signature_shard`, 1M documents a shard), a row a pure function of its document id;
`dup_rate` of the documents are copies of an earlier one (30% of them of 1000 popular
documents, Zipf-weighted, so some families have thousands of members), 40% identical, the rest
with 1-12 values changed (>= 116 of 128 agree with the original, two copies may fall below the
112 that makes a duplicate). Each job runs in a subprocess, so its peak RSS is its own:

    python -m bench.data_scale bucket SIGDIR GROUP OUT   # -> JSON: seconds, peak_rss_bytes
    python -m bench.data_scale cluster SIGDIR OUT
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from bench.common import Result, timed

SHARD_DOCS = 1_000_000
NUM_PERM = 128
THRESHOLD = 0.87
PILE_DOCS = 210_607_728
POPULAR = 1000


def _base_rows(ids: np.ndarray) -> np.ndarray:
    """(len(ids), 128) uint32: splitmix64 of (id, column), a row a pure function of its id."""
    x = ids.astype(np.uint64)[:, None] * np.uint64(NUM_PERM) + np.arange(NUM_PERM, dtype=np.uint64)
    with np.errstate(over="ignore"):
        x += np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x ^= x >> np.uint64(31)
    return (x >> np.uint64(32)).astype(np.uint32)


def plant(documents: int, dup_rate: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(duplicate ids ascending, the root each copies): roots are never copies themselves."""
    rng = np.random.default_rng(seed)
    dups = np.sort(rng.choice(np.arange(POPULAR, documents), int(dup_rate * documents), False))
    weights = 1.0 / np.arange(1, POPULAR + 1) ** 1.1
    popular = rng.choice(POPULAR, len(dups), p=weights / weights.sum())
    uniform = (rng.random(len(dups)) * dups).astype(np.int64)
    roots = np.where(rng.random(len(dups)) < 0.3, popular, uniform)
    is_dup = np.zeros(documents, bool)
    is_dup[dups] = True
    root_of = dict(zip(dups.tolist(), roots.tolist(), strict=True))
    for j in dups.tolist():  # a copy of a copy copies its root
        r = root_of[j]
        if is_dup[r]:
            root_of[j] = root_of[r]
    return dups, np.array([root_of[j] for j in dups.tolist()], np.int64)


def write_signatures(out: Path, documents: int, dup_rate: float, seed: int = 0) -> dict:
    """Signature shards of SHARD_DOCS documents with planted copies; their paths and counts."""
    from workflow.data.dedup_signatures import write_signature_shard

    out.mkdir(parents=True, exist_ok=True)
    dups, roots = plant(documents, dup_rate, seed)
    rng = np.random.default_rng(seed + 1)
    edits = np.where(rng.random(len(dups)) < 0.4, 0, rng.integers(1, 13, len(dups)))
    shards = -(-documents // SHARD_DOCS)
    paths = []
    for k in range(shards):
        lo, hi = k * SHARD_DOCS, min((k + 1) * SHARD_DOCS, documents)
        sigs = np.empty((hi - lo, NUM_PERM), np.uint32)
        for c in range(lo, hi, 1 << 17):  # in blocks: the uint64 temporaries stay ~130 MB
            sigs[c - lo : min(c + (1 << 17), hi) - lo] = _base_rows(
                np.arange(c, min(c + (1 << 17), hi))
            )
        a, b = np.searchsorted(dups, [lo, hi])
        rows = _base_rows(roots[a:b])
        for i, e in enumerate(edits[a:b].tolist()):
            cols = rng.choice(NUM_PERM, e, replace=False)
            rows[i, cols] = rng.integers(0, 2**32, e, dtype=np.uint32)
        sigs[dups[a:b] - lo] = rows
        paths.append(out / f"part{k}.npy")
        meta = {"shard": k, "num_shards": shards, "empty_skipped": 0, "shingle_size": 5, "seed": 1}
        write_signature_shard(sigs, paths[-1], threshold=THRESHOLD, meta=meta)
    exact = int((edits == 0).sum())
    return {"paths": [str(p) for p in paths], "planted": len(dups), "exact": exact}


def _peak_rss_bytes() -> int:
    """This process's own peak RSS: VmHWM (ru_maxrss survives exec, so a child started by a
    large parent would report the parent's size)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _child(argv: list[str]) -> dict:
    """One job in this process: its time and peak RSS."""
    from workflow.data.dedup_buckets import bucket_pairs
    from workflow.data.dedup_clusters import write_clusters

    kind, sigdir = argv[0], Path(argv[1])
    sig_paths = sorted(sigdir.glob("part*[0-9].npy"), key=lambda p: int(p.stem[4:]))
    rss0 = _peak_rss_bytes()
    t = time.perf_counter()
    if kind == "bucket":
        meta = bucket_pairs(sig_paths, int(argv[2]), Path(argv[3]), bands_per_job=1)
    else:
        pairs = sorted(Path(argv[2]).glob("group*.npy"), key=lambda p: int(p.stem[5:]))
        meta = write_clusters(sig_paths, pairs, Path(argv[2]) / "out")
    return {
        "seconds": time.perf_counter() - t,
        "peak_rss_bytes": _peak_rss_bytes(),
        "rss_before_bytes": rss0,
        "meta": {k: meta[k] for k in ("pairs", "buckets") if k in meta}
        | {k: meta[k] for k in ("documents_removed",) if k in meta},
    }


def _run_child(*args) -> dict:
    proc = subprocess.run(
        [sys.executable, "-m", "bench.data_scale", *map(str, args)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(proc.stdout.splitlines()[-1])


def measure_dedup(work: Path, documents: int, dup_rate: float = 0.03) -> dict:
    """Every bucket job (one band each) and the cluster job on `documents` signatures."""
    sigdir = work / f"sig{documents}_{dup_rate}"
    planted, gen_s = timed(write_signatures, sigdir, documents, dup_rate)
    buckets = [_run_child("bucket", sigdir, g, sigdir / f"group{g}.npy") for g in range(7)]
    cluster = _run_child("cluster", sigdir, sigdir)
    removed = cluster["meta"]["documents_removed"]
    for p in sigdir.glob("*"):
        if p.is_file():
            p.unlink()
    return {
        "documents": documents,
        "planted": planted["planted"],
        "removed": removed,
        "generate_seconds": gen_s,
        "bucket": buckets,
        "cluster": cluster,
    }


PILE_REMOVED = 210_607_728 - 134_318_121  # the deduped Pile's documents (HF rows): 36% gone


def _job_points(rows: list[dict], job: str) -> tuple[list[int], list[int], list[float]]:
    """(peak RSS, seconds) of the worst bucket job or the cluster job, per measured size."""
    if job == "bucket":
        rss = [max(b["peak_rss_bytes"] for b in r["bucket"]) for r in rows]
        return rss, [max(b["seconds"] for b in r["bucket"]) for r in rows]
    return [r["cluster"]["peak_rss_bytes"] for r in rows], [r["cluster"]["seconds"] for r in rows]


def fit(rows: list[dict], ys) -> np.ndarray:
    """Least squares y = a + b * documents + c * removed (c = 0 when every row has the same
    share of copies: the two are then proportional)."""
    n = np.array([r["documents"] for r in rows], float)
    d = np.array([r["removed"] for r in rows], float)
    shares = {round(r["removed"] / r["documents"], 2) for r in rows}
    cols = [np.ones_like(n), n] + ([d] if len(shares) > 1 else [])
    coef = np.linalg.lstsq(np.stack(cols, axis=1), np.asarray(ys, float), rcond=None)[0]
    return np.append(coef, 0.0) if len(coef) == 2 else coef


def extrapolate(rows: list[dict], documents: int = PILE_DOCS, removed: int | None = None):
    """Per job: peak RSS (GB) and hours at `documents` (`removed` of them copies; default the
    measured share), by `fit`."""
    if removed is None:
        removed = documents * rows[-1]["removed"] / rows[-1]["documents"]
    out = {}
    for job in ("bucket", "cluster"):
        rss, secs = _job_points(rows, job)
        r, t = fit(rows, rss), fit(rows, secs)
        x = np.array([1.0, documents, removed])
        out[job] = {"rss_fit": r, "seconds_fit": t, "rss_gb": r @ x / 1e9, "hours": t @ x / 3600}
    return out


def _fit_note(ext: dict) -> str:
    return "; ".join(
        f"{job}: RSS = {e['rss_fit'][0] / 1e9:.2f} GB + {e['rss_fit'][1]:.0f} B x docs"
        f" + {e['rss_fit'][2]:.0f} B x removed, time = {e['seconds_fit'][1] * 1e6:.2f} s/M docs"
        f" + {e['seconds_fit'][2] * 1e6:.2f} s/M removed"
        for job, e in ext.items()
    )


def check_against_minhash_lsh(work: Path, documents: int) -> bool:
    """The banded jobs' kept ids and clusters equal datasketch MinHashLSH's on the same
    planted signatures (in-process; MinHashLSH holds ~3.5 KB a kept document)."""
    from workflow.data.dedup import minhash_lsh, read_dedup_outputs
    from workflow.data.dedup_buckets import bucket_pairs
    from workflow.data.dedup_clusters import write_clusters

    sigdir = work / f"check{documents}"
    paths = write_signatures(sigdir, documents, 0.05, seed=3)["paths"]
    pairs = [sigdir / f"group{g}.npy" for g in range(7)]
    for g, p in enumerate(pairs):
        bucket_pairs(paths, g, p, bands_per_job=1)
    write_clusters(paths, pairs, sigdir / "out")
    ours, ref = read_dedup_outputs(sigdir / "out"), minhash_lsh(paths, threshold=THRESHOLD)
    return (ours.kept_ids, ours.clusters) == (ref.kept_ids, ref.clusters)


def run_dedup(work: Path, sizes=(1_000_000, 3_000_000, 10_000_000), check_docs=100_000, high=None):
    """Results rows: per size (3% planted; `high` = (documents, rate) adds one run with many
    more copies, so the fit separates documents from copies) the worst bucket job and the
    cluster job; then the fits at the Pile's size. The largest size runs last."""
    identical = check_against_minhash_lsh(work, check_docs)
    runs = ([(high[0], high[1])] if high else []) + [(n, 0.03) for n in sorted(sizes)]
    rows = [measure_dedup(work, n, rate) for n, rate in runs]
    results = []
    for r in rows:
        worst = max(r["bucket"], key=lambda b: b["peak_rss_bytes"])
        c = r["cluster"]
        results.append(
            Result(
                name=f"dedup jobs, {r['documents'] / 1e6:g}M documents, {r['planted']} copies",
                ours=(
                    f"bucket {worst['peak_rss_bytes'] / 1e9:.2f} GB, "
                    f"{max(b['seconds'] for b in r['bucket']):.1f} s (x7); cluster "
                    f"{c['peak_rss_bytes'] / 1e9:.2f} GB, {c['seconds']:.1f} s"
                ),
                baseline=f"MinHashLSH ~{3.5e3 * r['documents'] / 1e9:.1f} GB (3.5 KB/doc)",
                ratio=None,
                target="each job <= 64 GB at 210.6M",
                passed=identical,
                note=f"{r['removed']} removed; times per job: "
                + ", ".join(f"{b['seconds']:.1f}" for b in r["bucket"])
                + ("" if identical else "; kept ids DIFFER from MinHashLSH"),
            )
        )
    for label, ext in (
        ("the bench's share of copies", extrapolate(rows)),
        ("the Pile's 36% removed", extrapolate(rows, removed=PILE_REMOVED)),
    ):
        results.append(
            Result(
                name=f"dedup at 210.6M documents, {label} (fit)",
                ours=(
                    f"bucket {ext['bucket']['rss_gb']:.1f} GB, {ext['bucket']['hours']:.2f} h; "
                    f"cluster {ext['cluster']['rss_gb']:.1f} GB, {ext['cluster']['hours']:.2f} h"
                ),
                baseline="MinHashLSH ~690 GiB, one job",
                ratio=None,
                target="<= 64 GB a job",
                passed=max(ext["bucket"]["rss_gb"], ext["cluster"]["rss_gb"]) <= 64,
                note=_fit_note(ext),
            )
        )
    return results, rows


def run_tokenize(work: Path, megabytes: float, vocab: int, shards: int = 3, workers: int = 2):
    """tokenize per shard (byte ranges) + tokenize_merge vs one job: MB/s and byte identity."""
    from bench.tokenize import make_corpus
    from workflow.data.shards import corpus_shards
    from workflow.data.tokenize import tokenize_documents, tokenize_shard
    from workflow.data.tokenize_merge import merge_tokenized

    work.mkdir(parents=True, exist_ok=True)
    corpus, tok, nbytes = make_corpus(work, megabytes, vocab)
    _, t_one = timed(tokenize_documents, corpus, tok, work / "one", workers=workers)
    times, prefixes = [], []
    for s in corpus_shards([corpus], shards):
        prefixes.append(work / f"part{s.index}")
        times.append(timed(tokenize_shard, s, tok, prefixes[-1], workers=workers)[1])
    _, t_merge = timed(merge_tokenized, prefixes, work / "merged")
    same = all(
        (work / f"merged.{e}").read_bytes() == (work / f"one.{e}").read_bytes()
        for e in ("bin", "idx")
    )
    mb = nbytes / 1e6
    return Result(
        name=f"tokenize {shards} shards + merge ({mb:.0f} MB, {workers} workers a shard)",
        ours=f"{mb / sum(times):.2f} MB/s per shard job, merge {mb / t_merge:.0f} MB/s",
        baseline=f"one job {mb / t_one:.2f} MB/s",
        ratio=t_one / (sum(times) + t_merge),
        target="identical bytes",
        passed=same,
        note=("" if same else "merged files DIFFER from one job's; ")
        + "per shard: "
        + ", ".join(f"{t:.1f} s" for t in times),
    )


if __name__ == "__main__":
    print(json.dumps(_child(sys.argv[1:])))
