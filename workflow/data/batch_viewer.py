"""Pythia's batch viewer: the exact token rows a model trained on at given steps.

Step s consumes rows [s*B, (s+1)*B) of the pre-shuffled sample file (B = global batch size).
`--step S --end E` returns steps S..E inclusive, i.e. rows [S*B, (E+1)*B): Pythia's
`utils/batch_viewer.py` at HEAD, without the off-by-one of its older versions (pythia#186).

    python -m workflow.data.batch_viewer --run tiny --variant deduped --step 3 --end 4 --decode
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

from workflow.core.io import atomic_path, read_json
from workflow.data.indexed_dataset import MMapIndexedDataset


def batch_rows(
    samples_prefix: str | os.PathLike,
    step: int,
    global_batch_size: int,
    end_step: int | None = None,
) -> np.ndarray:
    """Rows [step*B, (end_step+1)*B) of the sample file as a (rows, seq_length + 1) array."""
    end_step = step if end_step is None else end_step
    if step < 0 or end_step < step:
        raise ValueError(f"need 0 <= step <= end_step, got step {step}, end_step {end_step}")
    if global_batch_size < 1:
        raise ValueError(f"global_batch_size must be >= 1, got {global_batch_size}")
    ds = MMapIndexedDataset(samples_prefix)
    start, stop = step * global_batch_size, (end_step + 1) * global_batch_size
    if stop > len(ds):
        last = len(ds) // global_batch_size - 1
        raise IndexError(
            f"{ds.bin_path}: steps {step}..{end_step} need rows [{start}, {stop}) but the file "
            f"has {len(ds)} rows (steps 0..{last} at batch size {global_batch_size})"
        )
    return np.array(ds.get_rows(start, stop))


def compare_steps(
    samples_prefix: str | os.PathLike,
    other_prefix: str | os.PathLike,
    steps,
    global_batch_size: int,
) -> list[dict]:
    """Compare the rows of `steps` in two sample files, e.g. ours rebuilt from
    `pythia_deduped_pile_idxmaps` against EleutherAI's `pile-deduped-pythia-preshuffled`
    (reference section 3.4). Returns one record per differing step (empty: same data order)."""
    diffs = []
    for s in steps:
        a = batch_rows(samples_prefix, s, global_batch_size)
        b = batch_rows(other_prefix, s, global_batch_size)
        if a.shape != b.shape:
            diffs.append({"step": s, "row": None, "why": f"shapes {a.shape} vs {b.shape}"})
            continue
        rows = np.flatnonzero((a != b).any(axis=1))
        if rows.size:
            diffs.append(
                {"step": s, "row": int(rows[0]), "why": f"{rows.size} of {len(a)} rows differ"}
            )
    return diffs


def _parse(argv) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="pythia-batch-viewer",
        description=__doc__.split("\n\n")[0],
    )
    p.add_argument("--run", required=True, help="run name in the config (results/{run}/...)")
    p.add_argument("--variant", required=True, choices=["standard", "deduped"])
    p.add_argument("--step", required=True, type=int, help="first training step")
    p.add_argument("--end", type=int, default=None, help="last training step, inclusive")
    p.add_argument("--decode", action="store_true", help="also print each row as text")
    p.add_argument("--results-dir", default="results")
    p.add_argument("--save", default=None, help="write the rows to this .npy file")
    p.add_argument(
        "--batch-size", type=int, default=None, help="rows per step (default: the recorded one)"
    )
    p.add_argument(
        "--compare",
        default=None,
        metavar="PREFIX",
        help="another sample file (.bin/.idx prefix, e.g. the merged pythia preshuffled data): "
        "report whether its rows at these steps are the same",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    data = Path(args.results_dir) / args.run / "data"
    samples = data / args.variant / "samples"
    meta_path = samples.with_suffix(".json")
    try:
        meta = read_json(meta_path)
    except FileNotFoundError:
        print(f"error: {meta_path}: no such file (was the data stage run?)", file=sys.stderr)
        return 2
    batch = args.batch_size or meta.get("global_batch_size")
    if not batch:
        print(
            f"error: {meta_path}: no global_batch_size recorded; give --batch-size", file=sys.stderr
        )
        return 2
    try:
        if args.compare:
            end = args.step if args.end is None else args.end
            steps = range(args.step, end + 1)
            diffs = compare_steps(samples, args.compare, steps, int(batch))
            for d in diffs:
                print(f"step{d['step']}: differs ({d['why']}; first row {d['row']})")
            print(f"{len(steps) - len(diffs)} of {len(steps)} steps identical to {args.compare}")
            return 1 if diffs else 0
        rows = batch_rows(samples, args.step, int(batch), args.end)
    except (IndexError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    tokenizer = None
    if args.decode:
        from workflow.data.tokenizer import load_tokenizer

        tokenizer = load_tokenizer(data / "tokenizer" / "tokenizer.json")
    for i, row in enumerate(rows):
        step = args.step + i // int(batch)
        print(f"step{step} row{i}: {' '.join(map(str, row.tolist()))}")
        if tokenizer is not None:
            print(repr(tokenizer.decode(row.tolist(), skip_special_tokens=False)))
    if args.save:
        with atomic_path(args.save) as tmp, open(tmp, "wb") as f:
            np.save(f, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
