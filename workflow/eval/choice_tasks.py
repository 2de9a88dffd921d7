"""Embedded multiple-choice tasks for the paper's task types, built from held-out documents of
the generated corpus (each document carries its domain and its `cloze_target`):

* ``piqa_style`` (2 choices, like PIQA): a document without its last sentence, then that last
  sentence vs the last sentence of another document of the same domain;
* ``sciq_style`` (4 choices, like SciQ/ARC): a passage whose last word is the answer, vs three
  answers of other documents of the same domain (cities, numbers, names, ...);
* ``winogrande_style`` (2 choices, like WinoGrande/WSC): a dialogue's concluding sentence with
  its two names in the right order vs swapped; only the dialogue says who lives where.

Each is a jsonl {context, choices, label} plus an lm-eval ``multiple_choice`` task YAML (acc,
acc_norm) with an absolute data path, loaded like the cloze task.
"""

from __future__ import annotations

import os
import random
import re
from collections import defaultdict
from pathlib import Path

from workflow.core.tasks import CHOICE_TASKS as TASKS
from workflow.data.jsonl import read_jsonl
from workflow.eval.task_files import metric, task_spec, write_jsonl, write_task_file

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_CONCLUSION = re.compile(r"^(\w+) now knew that (\w+) (lives in|works as) (.+)$")


def _sentences(text: str) -> list[str]:
    return [s for s in _SENTENCE_END.split(" ".join(text.split())) if s]


def _piqa(docs, rng) -> list[dict]:
    by_domain = defaultdict(list)
    for d in docs:
        sents = _sentences(d["text"])
        if len(sents) >= 3:
            by_domain[d.get("meta", {}).get("domain")].append(sents)
    out = []
    for domain, items in by_domain.items():
        if len(items) < 2:
            continue
        for i, sents in enumerate(items):
            other = items[rng.choice([j for j in range(len(items)) if j != i])][-1]
            if other == sents[-1]:
                continue
            label = rng.randrange(2)
            choices = [other, other]
            choices[label] = sents[-1]
            choices[1 - label] = other
            out.append(
                {
                    "context": " ".join(sents[:-1]),
                    "choices": choices,
                    "label": label,
                    "domain": domain,
                }
            )
    return out


def _sciq(docs, rng) -> list[dict]:
    by_domain = defaultdict(list)
    for d in docs:
        target = d.get("meta", {}).get("cloze_target")
        text = " ".join(d["text"].split())
        if target and text.rstrip(".").endswith(str(target)):
            context = text.rstrip(".")[: -len(str(target))].rstrip()
            by_domain[d["meta"].get("domain")].append((context, str(target)))
    out = []
    for domain, items in by_domain.items():
        answers = sorted({t for _, t in items})
        if len(answers) < 4:
            continue
        for context, target in items:
            wrong = rng.sample([a for a in answers if a != target], 3)
            choices = [*wrong]
            label = rng.randrange(4)
            choices.insert(label, target)
            out.append({"context": context, "choices": choices, "label": label, "domain": domain})
    return out


def _winogrande(docs, rng) -> list[dict]:
    out = []
    for d in docs:
        if d.get("meta", {}).get("domain") != "dialogue":
            continue
        sents = _sentences(d["text"])
        m = _CONCLUSION.match(sents[-1]) if sents else None
        if not m or m.group(1) == m.group(2):
            continue
        a, b, verb, rest = m.groups()
        right = f"{a} now knew that {b} {verb} {rest}"
        swapped = f"{b} now knew that {a} {verb} {rest}"
        label = rng.randrange(2)
        choices = [swapped, swapped]
        choices[label] = right
        out.append(
            {
                "context": " ".join(sents[:-1]),
                "choices": choices,
                "label": label,
                "domain": "dialogue",
            }
        )
    return out


BUILDERS = {"piqa_style": _piqa, "sciq_style": _sciq, "winogrande_style": _winogrande}


def build_choice_tasks(
    heldout_jsonl: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    num_documents: int,
    seed: int = 1234,
) -> dict[str, int]:
    """Write `<task>.jsonl` and `<task>.yaml` for every task of TASKS into `out_dir`; at most
    `num_documents` items each (seeded sample). Returns the item count per task."""
    docs = [record for _, record in read_jsonl(heldout_jsonl)]
    out_dir = Path(out_dir)
    counts = {}
    for name in TASKS:
        rng = random.Random(f"{seed}-{name}")
        items = BUILDERS[name](docs, rng)
        if not items:
            raise ValueError(
                f"{heldout_jsonl}: no documents usable for {name} (needs the generated corpus's "
                "domains and cloze targets)"
            )
        if len(items) > num_documents:
            items = rng.sample(items, num_documents)
        data = out_dir / f"{name}.jsonl"
        write_jsonl(data, items, ensure_ascii=False)
        write_choice_task_yaml(name, data, out_dir / f"{name}.yaml")
        counts[name] = len(items)
    return counts


def write_choice_task_yaml(task: str, data_jsonl: str | os.PathLike, out_yaml) -> Path:
    """An lm-eval multiple_choice task over {context, choices, label} records."""
    spec = task_spec(
        task,
        data_jsonl,
        "multiple_choice",
        [metric("acc", "mean", True), metric("acc_norm", "mean", True)],
        doc_to_text="context",
        doc_to_choice="choices",
        doc_to_target="label",
        target_delimiter=" ",
    )
    return write_task_file(spec, out_yaml)
