"""workflow.eval: cloze task from held-out docs, lm-eval YAML, real lm-eval runs
(offline)."""

from __future__ import annotations

import json
import math

import pytest
import yaml
from helpers_checkpoints import block_external_network, isolate_hf, make_checkpoint, write_heldout

from workflow.core.tasks import CLOZE_TASK
from workflow.eval.cloze_task import build_cloze_task, cloze_passage, write_task_yaml
from workflow.eval.evaluate import evaluate_checkpoint


@pytest.fixture(autouse=True)
def network_attempts(monkeypatch, tmp_path):
    attempts = block_external_network(monkeypatch)
    isolate_hf(monkeypatch, tmp_path / "hf_home", offline=True)
    yield attempts
    assert attempts == [], f"tried to reach the network: {attempts}"


@pytest.fixture(scope="module")
def hubeval_task(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    heldout = write_heldout(root / "heldout.jsonl", 30)
    summary = build_cloze_task(heldout, root / "data" / "cloze.jsonl", num_documents=20)
    write_task_yaml(
        CLOZE_TASK, root / "data" / "cloze.jsonl", root / "tasks" / "lambada_cloze.yaml"
    )
    ckpt = make_checkpoint(root / "ckpt" / "step8", 8, seed=8)
    return {"root": root, "summary": summary, "ckpt": ckpt, "tasks": root / "tasks"}


def test_cloze_passage():
    assert cloze_passage("one two three four five six.", 60) == "one two three four five six"
    assert cloze_passage("a b c d e f g h.", 4) == "e f g h"
    assert cloze_passage("a\nb  c\td e ...", 60) == "a b c d e"
    assert cloze_passage("too short here.", 60) is None


def test_build_cloze_task(hubeval_task, tmp_path):
    s = hubeval_task["summary"]
    assert (s["num_documents"], s["eligible"], s["skipped_short"]) == (20, 30, 1)
    lines = [json.loads(x) for x in (hubeval_task["root"] / "data" / "cloze.jsonl").open()]
    assert len(lines) == 20 and all(set(d) == {"text", "context", "target"} for d in lines)
    from lm_eval.utils import apply_template

    for d in lines:
        words = d["text"].split(" ")
        assert 5 <= len(words) <= 60 and words[-1].isalpha()
        # lambada_openai's templates, which the fields precompute
        assert d["context"] == apply_template("{{text.split(' ')[:-1]|join(' ')}}", d)
        assert d["target"] == apply_template("{{' '+text.split(' ')[-1]}}", d)
    again = build_cloze_task(
        hubeval_task["root"] / "heldout.jsonl", tmp_path / "again.jsonl", num_documents=20
    )
    assert again["sha256"] == s["sha256"]  # deterministic choice
    other = build_cloze_task(
        hubeval_task["root"] / "heldout.jsonl", tmp_path / "seed.jsonl", num_documents=20, seed=7
    )
    assert other["sha256"] != s["sha256"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine words are here ok"}\n{"txt": 1}\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl:2: expected a JSON object with a 'text'"):
        build_cloze_task(bad, tmp_path / "x.jsonl", num_documents=5)


def test_task_yaml_uses_absolute_path(hubeval_task):
    task = yaml.safe_load((hubeval_task["tasks"] / "lambada_cloze.yaml").read_text())
    assert task["task"] == CLOZE_TASK and task["output_type"] == "loglikelihood"
    data = task["dataset_kwargs"]["data_files"]["test"]
    assert data.startswith("/") and data.endswith("data/cloze.jsonl")
    assert [m["metric"] for m in task["metric_list"]] == ["perplexity", "acc"]


@pytest.mark.parametrize("shots, offline", [(0, False), (1, True)])
def test_evaluate_checkpoint_runs_lm_eval(hubeval_task, shots, offline, monkeypatch, tmp_path):
    # offline=False: even without HF_HUB_OFFLINE a local checkpoint must not touch the network
    # (the autouse fixture fails the test on any attempt, including ones lm-eval swallows)
    isolate_hf(monkeypatch, tmp_path / "hf_home", offline=offline)
    monkeypatch.chdir(tmp_path)  # data path must not depend on the CWD
    out = evaluate_checkpoint(
        hubeval_task["ckpt"],
        tasks_dir=hubeval_task["tasks"],
        tasks=[CLOZE_TASK],
        num_fewshot=shots,
        batch_size=8,
    )
    json.dumps(out, allow_nan=False)  # what the rule writes with write_json
    metrics = out["results"][CLOZE_TASK]
    assert math.isfinite(metrics["perplexity"]) and metrics["perplexity"] > 1
    assert 0.0 <= metrics["acc"] <= 1.0
    assert out["n_samples"][CLOZE_TASK]["effective"] == 20
    assert out["config"]["num_fewshot"] == shots and out["config"]["lm_eval_version"] == "0.4.13"
    assert out["checkpoint"]["step"] == 8


def test_evaluate_checkpoint_user_errors(hubeval_task, tmp_path):
    kw = dict(tasks_dir=hubeval_task["tasks"], num_fewshot=0)
    with pytest.raises(ValueError, match="lm-eval ignores revisions of directories"):
        evaluate_checkpoint(hubeval_task["ckpt"], tasks=[CLOZE_TASK], revision="step8", **kw)
    # not ours and not one of lm-eval's built-ins either
    with pytest.raises(ValueError, match=r"unknown lm-eval task\(s\) \['no_such_task'\]"):
        evaluate_checkpoint(hubeval_task["ckpt"], tasks=["no_such_task"], **kw)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        evaluate_checkpoint(tmp_path / "missing", tasks=[CLOZE_TASK], **kw)


def test_evaluate_published_checkpoint_by_revision(hubeval_task, monkeypatch, tmp_path):
    """checkpoints: published: lm-eval loads {org}/{repo} at revision step{N} from the Hub API."""
    from minihub import MiniHub

    from workflow.hub.upload import publish_checkpoint

    repo = "pythia-workflow/pythia-tiny-70m"
    with MiniHub(tmp_path / "minihub") as hub:
        isolate_hf(monkeypatch, tmp_path / "hf_online", offline=False, endpoint=hub.url)
        receipt = publish_checkpoint(
            hubeval_task["ckpt"],
            repo_id=repo,
            branch="step8",
            backend="huggingface",
            endpoint=hub.url,
            token="minihub-test",
        )
        out = evaluate_checkpoint(
            repo,
            revision="step8",
            tasks_dir=hubeval_task["tasks"],
            tasks=[CLOZE_TASK],
            num_fewshot=0,
            limit=5,
        )
    assert out["config"]["model_sha"] == receipt["commit"]
    assert out["config"]["revision"] == "step8" and out["checkpoint"] is None
    assert math.isfinite(out["results"][CLOZE_TASK]["perplexity"])


def test_prefetch_then_evaluate_offline(hubeval_task, monkeypatch, tmp_path):
    """A task whose data is a Hub dataset (as lambada_openai, piqa, ...): `prefetch_tasks` fills
    the datasets cache where there is network; the eval job then runs with the Hub unreachable
    and HF_DATASETS_OFFLINE=1, as on a compute node."""
    import yaml
    from helpers_checkpoints import isolate_hf
    from huggingface_hub import HfApi
    from minihub import MiniHub

    from workflow.eval.builtin_tasks import prefetch_tasks

    tasks = tmp_path / "tasks"
    tasks.mkdir()
    spec = yaml.safe_load((hubeval_task["tasks"] / "lambada_cloze.yaml").read_text())
    spec.update(task="remote_cloze", dataset_path="test-org/remote_cloze", dataset_kwargs=None)
    (tasks / "remote_cloze.yaml").write_text(yaml.safe_dump(spec))
    with MiniHub(tmp_path / "minihub") as hub:
        isolate_hf(monkeypatch, tmp_path / "hf_home", offline=False, endpoint=hub.url)
        api = HfApi(endpoint=hub.url, token="t")
        api.create_repo("test-org/remote_cloze", repo_type="dataset")
        api.upload_file(
            path_or_fileobj=str(hubeval_task["root"] / "data" / "cloze.jsonl"),
            path_in_repo="test.jsonl",
            repo_id="test-org/remote_cloze",
            repo_type="dataset",
        )
        info = prefetch_tasks(["remote_cloze"], tasks)
    assert info["remote_cloze"]["documents"] == {"test": 20}
    isolate_hf(monkeypatch, tmp_path / "hf_home", offline=True, endpoint="http://127.0.0.1:9")
    out = evaluate_checkpoint(
        hubeval_task["ckpt"], tasks_dir=tasks, tasks=["remote_cloze"], num_fewshot=0, limit=5
    )
    assert 0.0 <= out["results"]["remote_cloze"]["acc"] <= 1.0


def test_evaluate_several_checkpoints_in_one_process(hubeval_task, tmp_path, monkeypatch):
    from lm_eval.api.registry import get_model

    from workflow.eval.evaluate import evaluate_checkpoints

    ckpts = [hubeval_task["ckpt"], make_checkpoint(tmp_path / "step4", 4, seed=4)]
    outs = [tmp_path / "out" / "a.json", tmp_path / "out" / "b.json"]
    kw = dict(tasks_dir=hubeval_task["tasks"], tasks=[CLOZE_TASK], num_fewshot=0, limit=5)
    results = evaluate_checkpoints(ckpts, outs, **kw)
    assert [json.loads(p.read_text())["results"] for p in outs] == [r["results"] for r in results]
    assert results[0]["checkpoint"]["step"] == 8 and results[1]["checkpoint"]["step"] == 4
    alone = evaluate_checkpoint(ckpts[1], **kw)
    assert alone["results"] == results[1]["results"]  # the same numbers as a job of its own
    with pytest.raises(ValueError, match="2 checkpoints but 1 output paths"):
        evaluate_checkpoints(ckpts, outs[:1], **kw)
    # one checkpoint with two shot counts (as an eval job runs the paper's 0- and 5-shot),
    # loaded once for both
    kw.pop("num_fewshot")
    hf, loads = get_model("hf"), []
    build = hf.create_from_arg_obj
    monkeypatch.setattr(hf, "create_from_arg_obj", lambda *a: loads.append(a) or build(*a))
    both = evaluate_checkpoints(ckpts[1:] * 2, outs, num_fewshot=[0, 2], **kw)
    assert len(loads) == 1 and [r["config"]["num_fewshot"] for r in both] == [0, 2]
    monkeypatch.undo()
    assert both[0]["results"] == alone["results"]
    assert both[1]["results"] == evaluate_checkpoint(ckpts[1], num_fewshot=2, **kw)["results"]
    with pytest.raises(ValueError, match="2 checkpoints but 1 shot counts"):
        evaluate_checkpoints(ckpts, outs, num_fewshot=[0], **kw)


def test_broken_checkpoints_are_named_before_any_evaluation(hubeval_task, tmp_path):
    import shutil

    from workflow.eval.evaluate import CheckpointError

    kw = dict(tasks_dir=hubeval_task["tasks"], tasks=[CLOZE_TASK], num_fewshot=0)
    no_weights = tmp_path / "no_weights"
    shutil.copytree(hubeval_task["ckpt"], no_weights)
    (no_weights / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"no_weights: no model weights"):
        evaluate_checkpoint(no_weights, **kw)
    other_tok = tmp_path / "other_tokenizer"
    shutil.copytree(hubeval_task["ckpt"], other_tok)
    cfg = json.loads((other_tok / "config.json").read_text())
    cfg["vocab_size"] = 100  # a model whose embedding is smaller than the tokenizer
    (other_tok / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match=r"other_tokenizer: its tokenizer has \d+ tokens"):
        evaluate_checkpoint(other_tok, **kw)


@pytest.mark.parametrize("shots", [0, 1])
def test_scores_equal_lm_eval_simple_evaluate(hubeval_task, shots):
    # evaluate_checkpoint runs simple_evaluate's steps without its environment report (a
    # `pip list` subprocess per call): the scores and per-document answers must be lm-eval's
    from lm_eval import simple_evaluate

    from workflow.eval.evaluate import _task_index

    kw = dict(num_fewshot=shots, batch_size=4, limit=12, bootstrap_iters=100)
    ours = evaluate_checkpoint(
        hubeval_task["ckpt"],
        tasks_dir=hubeval_task["tasks"],
        tasks=[CLOZE_TASK],
        log_samples=True,
        **kw,
    )
    theirs = simple_evaluate(
        model="hf",
        model_args={"pretrained": str(hubeval_task["ckpt"].resolve()), "dtype": "float32"},
        tasks=[CLOZE_TASK],
        task_manager=_task_index([CLOZE_TASK], hubeval_task["tasks"]),
        device="cpu",
        log_samples=True,
        **kw,
    )
    assert "pretty_env_info" in theirs and "pretty_env_info" not in json.dumps(ours)
    assert ours["results"][CLOZE_TASK] == {
        k.removesuffix(",none"): v for k, v in theirs["results"][CLOZE_TASK].items() if "," in k
    }
    assert ours["n_samples"] == theirs["n-samples"]
    # per document the log-likelihood of its continuation: with shots=1 it also depends on the
    # few-shot example drawn (simple_evaluate's few-shot seed)
    assert [s["filtered_resps"] for s in ours["samples"][CLOZE_TASK]] == [
        s["filtered_resps"] for s in theirs["samples"][CLOZE_TASK]
    ]
    assert ours["config"]["model_num_parameters"] == theirs["config"]["model_num_parameters"]
