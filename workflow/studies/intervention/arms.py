"""The gender-bias intervention of the paper (§3.1, Figs 1, 2, 6).

A model resumes from its checkpoint *and optimizer state* at (1 - f) x T (the paper: 133000
for f = 7%, 113000 for 21%) and trains to T on the same samples in the same order, with
masculine pronoun tokens replaced by feminine ones in every batch: the token-level map of
GPT-NeoX's `intervention` branch (reference §6c), derived here from the run's own tokenizer.
Words are swapped in four forms, lower-case and capitalised, with and without a leading space
(" he" -> " she", "His" -> "Her", ...). As in the paper's map, a form that is a sub-word piece
("he" in "t|he|re" for a tokenizer that splits so) is swapped as well.

The baseline arm over the same window is either the suite's own checkpoints or a *control*
continuation: the same resume without the swap, which is bit-identical to the main run (the
training resume is exact), so it provides baseline checkpoints at steps the main schedule does
not save.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from workflow.core.checkpoint import CHECKPOINT_JSON
from workflow.core.config import Segment
from workflow.core.io import read_json, write_json
from workflow.train.dispatch import run_segment
from workflow.train.errors import TrainingError

PAPER_SWAP = {"he": "she", "him": "her", "his": "her"}


class InterventionError(ValueError):
    pass


def _forms(word: str) -> list[str]:
    out = []
    for w in dict.fromkeys([word.lower(), word.capitalize()]):
        out += [f" {w}", w]
    return out


def _single_token(tokenizer, text: str) -> int | None:
    ids = tokenizer.encode(text, add_special_tokens=False).ids
    if len(ids) == 1 and tokenizer.decode(ids) == text:
        return ids[0]
    return None


def swap_map(tokenizer_path: str | os.PathLike, swap: Mapping[str, str] = PAPER_SWAP) -> dict:
    """The token-level pronoun map of a tokenizer: {"pairs": [{from, to, from_id, to_id}],
    "unswappable": [forms that are not one token]}.

    The lower-case, space-prefixed form of every word (" he", " she", ...) must be a single
    token: these carry almost every occurrence in running text, and without them the swap would
    silently do nothing. Other forms are swapped when both sides are single tokens and listed as
    unswappable otherwise."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_path))
    if not swap:
        raise InterventionError("intervention.swap: no words to swap")
    pairs, unswappable, missing = [], [], []
    for masc, fem in swap.items():
        for src, dst in zip(_forms(masc), _forms(fem), strict=True):
            a, b = _single_token(tok, src), _single_token(tok, dst)
            if a is None or b is None:
                if src == f" {masc.lower()}" or dst == f" {fem.lower()}":
                    missing += [repr(t) for t, i in ((src, a), (dst, b)) if i is None]
                else:
                    unswappable.append(src if a is None else dst)
                continue
            pairs.append({"from": src, "to": dst, "from_id": a, "to_id": b})
    if missing:
        raise InterventionError(
            f"intervention.swap: {', '.join(sorted(set(missing)))} not a single token of the "
            f"vocabulary of {tokenizer_path}: the pronoun swap cannot be applied to this "
            "tokenizer"
        )
    return {
        "tokenizer": str(tokenizer_path),
        "vocab_size": tok.get_vocab_size(),
        "swap": dict(swap),
        "pairs": pairs,
        "unswappable": unswappable,
    }


def write_swap_map(tokenizer_path, out_json, swap: Mapping[str, str] = PAPER_SWAP) -> dict:
    """Write the swap map as JSON: the token-map file the intervention arm trains with
    (workflow.train.data.read_token_map reads its "vocab_size" and "pairs")."""
    m = swap_map(tokenizer_path, swap)
    write_json(out_json, m)
    return m


def run_arm(
    suite,
    run,
    *,
    arm: str,
    samples_prefix: str | os.PathLike,
    tokenizer_path: str | os.PathLike,
    start_checkpoint: str | os.PathLike,
    out_template: str,
    swap_json: str | os.PathLike | None,
    log=print,
    metrics_path: str | os.PathLike | None = None,
    state_dir: str | os.PathLike | None = None,
):
    """Continue `run.size` from its step-`run.start` checkpoint to `run.end`, saving the window
    steps under `out_template` ("{step}"): arm "intervention" swaps the pronouns, arm "control"
    does not (the baseline at the window steps).

    The swap map (`swap_json`, written by write_swap_map) is the token-map file training reads
    (workflow.train.data.read_token_map: its "pairs" map from_id -> to_id). A model trained on
    several GPUs/nodes is continued the same way, through the training launcher
    (workflow.train.dispatch; `state_dir` holds the suite JSON it reads)."""
    if arm not in ("intervention", "control"):
        raise InterventionError(f"arm {arm!r}: expected 'intervention' or 'control'")
    meta = read_json(Path(start_checkpoint) / CHECKPOINT_JSON)
    if meta.get("step") != run.start or not meta.get("has_deepspeed_state"):
        raise TrainingError(
            f"{start_checkpoint}: the intervention at {run.fraction} needs the step-{run.start} "
            f"checkpoint with its optimizer state (it holds step {meta.get('step')}, optimizer "
            f"state: {bool(meta.get('has_deepspeed_state'))})"
        )
    swap = read_json(swap_json) if arm == "intervention" else None
    return run_segment(
        suite,
        size=run.size,
        variant=run.variant,
        samples_prefix=samples_prefix,
        tokenizer_path=tokenizer_path,
        segment=Segment(run.start, run.end, tuple(run.window)),
        out_template=out_template,
        resume_from=Path(start_checkpoint),
        state_dir=state_dir or Path(out_template).parent.parent,
        log=log,
        metrics_path=metrics_path,
        token_map=swap_json if arm == "intervention" else None,
        extra_meta={
            "intervention": {
                "arm": arm,
                "fraction": run.fraction,
                "start": run.start,
                "pairs": None if swap is None else swap["pairs"],
            }
        },
    )
