"""Embedded multiple-choice tasks built from held-out documents, run through real lm-eval."""

import json

import pytest
import yaml
from helpers_checkpoints import make_checkpoint

from workflow.data.corpus import generate_corpus
from workflow.eval.choice_tasks import TASKS, build_choice_tasks
from workflow.eval.evaluate import evaluate_checkpoint


@pytest.fixture(scope="module")
def tasks(tmp_path_factory):
    root = tmp_path_factory.mktemp("tasks")
    generate_corpus(
        root / "train.jsonl",
        root / "heldout.jsonl",
        seed=5,
        num_documents=300,
        heldout_documents=120,
        near_duplicate_clusters=5,
        near_duplicate_copies=2,
        near_duplicate_edit_rate=0.01,
    )
    counts = build_choice_tasks(root / "heldout.jsonl", root / "tasks", num_documents=40)
    return root, counts


def test_items_are_well_formed(tasks):
    root, counts = tasks
    assert set(counts) == set(TASKS) and all(n > 0 for n in counts.values())
    assert counts["piqa_style"] == counts["sciq_style"] == 40
    for name, n_choices in (("piqa_style", 2), ("sciq_style", 4), ("winogrande_style", 2)):
        items = [json.loads(x) for x in (root / "tasks" / f"{name}.jsonl").open()]
        assert len(items) == counts[name]
        labels = set()
        for it in items:
            assert len(it["choices"]) == n_choices and len(set(it["choices"])) == n_choices
            assert 0 <= it["label"] < n_choices and it["context"]
            labels.add(it["label"])
        assert len(labels) > 1  # the answer is not always in the same place
        spec = yaml.safe_load((root / "tasks" / f"{name}.yaml").read_text())
        assert spec["output_type"] == "multiple_choice"
        assert spec["dataset_kwargs"]["data_files"]["test"].startswith("/")
    wino = [json.loads(x) for x in (root / "tasks" / "winogrande_style.jsonl").open()]
    for it in wino:  # the right order is the one the dialogue supports
        right = it["choices"][it["label"]]
        who = right.split(" now knew that ")[1].split(" ")[0]
        assert f"said {who}" in it["context"]


def test_deterministic(tasks, tmp_path):
    root, counts = tasks
    again = build_choice_tasks(root / "heldout.jsonl", tmp_path, num_documents=40)
    assert again == counts
    for name in TASKS:
        assert (tmp_path / f"{name}.jsonl").read_bytes() == (
            root / "tasks" / f"{name}.jsonl"
        ).read_bytes()


def test_lm_eval_runs_them(tasks, tmp_path):
    root, _ = tasks
    ckpt = make_checkpoint(tmp_path / "ckpt", 8, seed=1)
    out = evaluate_checkpoint(
        ckpt, tasks_dir=root / "tasks", tasks=list(TASKS), num_fewshot=0, limit=8
    )
    for name in TASKS:
        assert 0.0 <= out["results"][name]["acc"] <= 1.0
        assert "acc_norm" in out["results"][name]


def test_a_corpus_without_domains_is_a_clear_error(tmp_path):
    src = tmp_path / "h.jsonl"
    src.write_text(
        "".join(json.dumps({"text": f"plain text number {i}."}) + "\n" for i in range(9))
    )
    with pytest.raises(ValueError, match=r"h\.jsonl: no documents usable for piqa_style"):
        build_choice_tasks(src, tmp_path / "out", num_documents=5)
