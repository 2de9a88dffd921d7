"""The job list (workflow/plan/jobs.py): rule names, step chunks and final targets without
Snakemake; the DAG's rules and `rule all` are the job list's; the plan costs the same jobs; and
no rule file uses a name that only a later-included one defines."""

from __future__ import annotations

import itertools
import re
from collections import Counter
from pathlib import Path

import pytest
from helpers_dag import dry_run

from workflow.core.config import load_config
from workflow.plan.estimate import plan_jobs
from workflow.plan.job_kinds import rule_tag, step_chunks
from workflow.plan.jobs import SuiteJobs

REPO = Path(__file__).resolve().parents[2]
CONFIGS = {"default": "config/config.yaml", "pythia": "config/pythia.yaml"}


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def suite(request):
    """(name, validated config, job list) of the embedded default and of the paper's suite."""
    config = load_config(REPO / CONFIGS[request.param])
    return request.param, config, SuiteJobs.from_config(config)


@pytest.fixture(scope="module")
def dry_runs(tmp_path_factory):
    """One `snakemake -n` per config, run when first asked for."""
    runs = {}

    def get(name):
        if name not in runs:
            args = [] if name == "default" else ["--configfile", CONFIGS[name]]
            runs[name] = dry_run(tmp_path_factory.mktemp(name), *args)
        return runs[name]

    return get


def test_rule_tag_and_step_chunks():
    assert rule_tag("1.4b") == "1_4b" and rule_tag("tiny-70m") == "tiny_70m"
    assert rule_tag("1.4b", "deduped") == "1_4b_deduped"  # as pythia-1.4b-deduped
    assert step_chunks([0, 1, 2, 4, 8], 2) == [(0, 1), (2, 4), (8,)]
    assert step_chunks([3, 1], 1) == [(3,), (1,)]  # the given order, not sorted
    assert step_chunks([], 4) == []
    # eval.hours_per_job: a run also ends before the step that would go over the budget
    hours = {0: 1.0, 1: 1.0, 2: 3.0, 4: 1.0, 8: 5.0}.get
    assert step_chunks([0, 1, 2, 4, 8], 4, hours, 4.0) == [(0, 1), (2, 4), (8,)]  # 8 alone
    assert step_chunks([0, 1, 2, 4, 8], 2, hours, 100.0) == [(0, 1), (2, 4), (8,)]


def test_training_segments_chain_per_size(suite):
    _, _, jobs = suite
    for size, variant in itertools.product(jobs.sizes, jobs.variants):
        train = [j for j in jobs.train if (j.size, j.variant) == (size, variant)]
        tag = rule_tag(size, variant)
        # the first segment initialises the model (step 0) and trains on
        first = train[0]
        assert first.rule == f"train_{tag}_0_{first.segment.end}" and first.resume is None
        assert first.segment.start == -1 and first.segment.steps[0] == 0
        for prev, job in zip(train, train[1:], strict=False):
            assert job.rule == f"train_{tag}_{prev.segment.end}_{job.segment.end}"
            assert job.resume == jobs.layout.checkpoint(variant, size, prev.segment.end)
        # literal paths (no {variant}): Snakemake finds a checkpoint's producer by its path
        assert first.outputs()[0] == jobs.layout.checkpoint(variant, size, 0)
        # every scheduled step once, and the start of each intervention on this size (with
        # its optimizer state), and with a main baseline its window's steps
        runs = [r for r in jobs.suite.interventions if r.size == size]
        main = jobs.config["intervention"].get("baseline") == "main"
        window = {s for r in runs for s in r.window} if main else set()
        assert [s for j in train for s in j.segment.steps] == sorted(
            {*jobs.suite.training.schedule, *(r.start for r in runs), *window}
        )
        kept = {s for j in train for s in (*j.segment.keep_state, j.segment.end)}
        assert {r.start for r in runs} <= kept


def test_uploads_publish_every_scheduled_checkpoint_once(suite):
    """One upload job per training segment: its scheduled checkpoints, a receipt each; a step
    saved only as an intervention's branch point is not published."""
    _, _, jobs = suite
    schedule = jobs.suite.training.schedule
    for size, variant in itertools.product(jobs.sizes, jobs.variants):
        ups = [u for u in jobs.uploads if (u.size, u.variant) == (size, variant)]
        assert [s for u in ups for s in u.steps] == list(schedule)
        segments = {(t.first_step, t.segment.end) for t in jobs.train if t.size == size}
        assert {(u.first, u.last) for u in ups} <= segments
        for u in ups:
            assert u.rule == f"upload_{rule_tag(size, variant)}_{u.first}_{u.last}"
            hub = f"{jobs.layout.root}/hub/{variant}/{size}"
            assert u.outputs() == [f"{hub}/steps{u.first}-{u.last}.json"]  # as its rule


def test_eval_chunks_cover_the_eval_steps(suite):
    """Each evaluated checkpoint is in one job with all its shot counts (the paper's five-shot
    grid lies inside its zero-shot one); every (step, shots) result once."""
    _, config, jobs = suite
    per_job = config["eval"]["steps_per_job"]
    for size, variant in itertools.product(jobs.sizes, jobs.variants):
        mine = [j for j in jobs.evals if (j.variant, j.size) == (variant, size)]
        runs = [r for j in mine for r in j.runs]
        assert runs == sorted(set(runs))  # by step, then shots, and each once
        for shots in config["eval"]["num_fewshot"]:
            assert [s for s, k in runs if k == shots] == jobs.suite.eval_steps(shots)
        first = mine[0]
        assert (
            first.rule == f"evaluate_{rule_tag(size, variant)}_{first.steps[0]}_{first.steps[-1]}"
        )
        assert first.outputs() == [
            jobs.layout.eval_result(variant, size, s, k) for s, k in first.runs
        ]
        assert first.checkpoints() == [
            jobs.layout.checkpoint(variant, size, s) for s in first.steps
        ]
        assert first.checkpoint_runs() == [
            (jobs.layout.checkpoint(variant, size, s), k) for s, k in first.runs
        ]
        assert all(1 <= len(j.steps) <= per_job for j in mine)
        # a chunk's checkpoints come from one training segment (they appear together)
        segments = [t.segment for t in jobs.train if t.size == size]
        for j in mine:
            assert any(set(j.steps) <= set(seg.steps) for seg in segments)
    assert jobs.eval_results() == [
        jobs.layout.eval_result(v, size, s, k)
        for k in config["eval"]["num_fewshot"]
        for v in jobs.variants
        for size in jobs.sizes
        for s in jobs.suite.eval_steps(k)
    ]
    assert sorted(jobs.eval_results()) == sorted(o for j in jobs.evals for o in j.outputs())
    rules = [j.rule for j in jobs.evals + jobs.term_frequency + jobs.train]
    rules += [r for iv in jobs.interventions for r in (iv.eval_rule, *map(iv.arm_rule, iv.arms))]
    assert len(rules) == len(set(rules))


def test_final_targets_without_snakemake():
    config = load_config(REPO / "config/config.yaml")
    jobs = SuiteJobs.from_config(config)
    targets = jobs.final_targets()
    root = "results/tiny"
    assert targets[-1] == f"{root}/plan/jobs.csv" and f"{root}/tables/evals.csv" in targets
    receipts = [t for t in targets if t.startswith(f"{root}/hub/")]
    assert receipts == [out for u in jobs.uploads for out in u.outputs()]
    assert len(receipts) == len(jobs.uploads) <= len(jobs.train)  # one per training segment
    assert f"{root}/tables/intervention.csv" in targets
    # published checkpoints: nothing trained, uploaded or intervened on
    published = SuiteJobs.from_config({**config, "checkpoints": {"source": "published"}})
    assert published.train == [] and published.uploads == [] and published.interventions == []
    assert not any("/hub/" in t or "intervention" in t for t in published.final_targets())


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_rule_all_is_the_final_targets(name, dry_runs):
    jobs = SuiteJobs.from_config(load_config(REPO / CONFIGS[name]))
    assert dry_runs(name).all_inputs == jobs.final_targets()


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_dag_rules_are_the_job_list(name, dry_runs):
    jobs = SuiteJobs.from_config(load_config(REPO / CONFIGS[name]))
    counts = dry_runs(name).counts
    expected = Counter({j.rule: 1 for j in jobs.evals})  # a rule per variant
    expected.update({j.rule: 1 for j in jobs.train})  # a rule per variant
    expected.update({j.rule: 1 for j in jobs.term_frequency})
    for iv in jobs.interventions:
        expected.update([iv.eval_rule, *map(iv.arm_rule, iv.arms)])
    per_job = re.compile(r"^(init|train|evaluate|term_frequency_eval|intervention|control)_")
    dag = {r: n for r, n in counts.items() if per_job.match(r) and r != "intervention_table"}
    assert dag == dict(expected)
    assert counts.get("memorization_scores", 0) == len(jobs.memorization_shards())
    uploads = {r: n for r, n in counts.items() if r.startswith("upload_")}
    assert uploads == {u.rule: 1 for u in jobs.uploads}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_plan_costs_the_dag_jobs(name, dry_runs):
    """Every GPU job of the DAG is in the plan, as many times, with the DAG's rule names."""
    planned = Counter(j["rule"] for j in plan_jobs(load_config(REPO / CONFIGS[name])))
    counts = dry_runs(name).counts
    for rule, n in planned.items():
        assert counts.get(rule) == n, rule
    gpu = re.compile(r"^(init|train|evaluate|term_frequency_eval|intervention|control)_")
    gpu_rules = {r for r in counts if gpu.match(r) and r != "intervention_table"}
    gpu_rules |= {"memorization_scores"} & set(counts)
    assert gpu_rules and {r: counts[r] for r in gpu_rules} == {r: planned[r] for r in gpu_rules}


# ------------------------------------------------------------------------ include order

_DEFINED = re.compile(r"^(?:def\s+(\w+)|(\w+)\s*=[^=]|import\s+(\w+))", re.MULTILINE)
_IMPORTED = re.compile(r"^from\s+\S+\s+import\s+(\([^)]*\)|[^\n]*)", re.MULTILINE)


def _defined(text: str) -> set[str]:
    names = {n for m in _DEFINED.finditer(text) for n in m.groups() if n}
    for m in _IMPORTED.finditer(text):
        names |= {n.split(" as ")[-1].strip() for n in m.group(1).strip("()").split(",")}
    return names - {""}


def test_no_rule_file_uses_a_later_name():
    snakefile = (REPO / "Snakefile").read_text()
    order = re.findall(r'^include:\s*"([^"]+)"', snakefile, re.MULTILINE)
    texts = [(REPO / p).read_text() for p in order] + [snakefile]
    defined = [_defined(t) for t in texts]
    for i, (path, text) in enumerate(zip([*order, "Snakefile"], texts, strict=True)):
        code = re.sub(r"#[^\n]*", "", text)
        used = set(re.findall(r"\b[A-Za-z_]\w*\b", code))
        earlier = set().union(*defined[: i + 1])
        later = set().union(*defined[i + 1 :]) - earlier
        assert not used & later, (path, sorted(used & later))
