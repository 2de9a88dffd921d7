"""Config validation, the checkpoint schedule, training segments and the compute plan."""

import math
from pathlib import Path

import pytest
import yaml

from workflow.core.config import (
    ConfigError,
    Segment,
    SuiteConfig,
    checkpoint_schedule,
    load_config,
    padded_vocab_size,
    training_segments,
    validate_config,
)

# Reference §1.1: (non-embedding, total) parameters of the paper's 8 sizes.
PAPER_PARAMS = {
    "70m": (18_915_328, 70_426_624),
    "160m": (85_056_000, 162_322_944),
    "410m": (302_311_424, 405_334_016),
    "1b": (805_736_448, 1_011_781_632),
    "1.4b": (1_208_602_624, 1_414_647_808),
    "2.8b": (2_517_652_480, 2_775_208_960),
    "6.9b": (6_444_163_072, 6_857_302_016),
    "12b": (11_327_027_200, 11_846_072_320),
}


@pytest.fixture(scope="module")
def paper():
    return SuiteConfig.from_dict(load_config("config/pythia.yaml"))


def test_pythia_schedule_has_154_checkpoints(paper):
    s = paper.training.schedule
    assert len(s) == 154
    assert list(s) == [0] + [2**i for i in range(10)] + list(range(1000, 143001, 1000))


def test_pythia_sizes_match_the_paper(paper):
    for name, (non_emb, total) in PAPER_PARAMS.items():
        spec = paper.models[name]
        vocab = padded_vocab_size(50277, 128, spec.model_parallel)
        assert spec.non_embedding_params() == non_emb, name
        assert spec.total_params(vocab) == total, name
    assert padded_vocab_size(50277, 128, 2) == 50432
    assert padded_vocab_size(50277, 128, 4) == 50688


def test_pythia_hyperparameters(paper):
    t = paper.training
    assert t.tokens_per_step == 2_097_152
    assert t.num_samples(0.005) == 147_164_160  # the 147164160ns of the released index maps
    assert t.warmup_iters == 1430
    assert (t.adam_betas, t.weight_decay, t.zero_stage) == ((0.9, 0.95), 0.1, 1)
    assert paper.models["1b"].precision == "bf16"
    assert paper.models["70m"].precision == "fp16"
    assert paper.models["6.9b"].init == "normal" and paper.models["410m"].init == "small_wang"
    # 6.9B: 128 GPUs, model parallel 2 -> DP 64 x micro-batch 8 x GAS 2
    spec = paper.models["6.9b"]
    assert (spec.micro_batch_size, spec.gradient_accumulation_steps) == (8, 2)
    assert all(math.isclose(m.min_lr, 0.1 * m.lr) for m in paper.models.values())


def test_embedded_default_is_a_16_model_suite():
    suite = SuiteConfig.from_dict(load_config("config/config.yaml"))
    assert len(suite.models) == 8 and suite.variants == ("standard", "deduped")
    params = [m.non_embedding_params() for m in suite.models.values()]
    assert params == sorted(params)  # the ladder grows like Pythia's
    assert set(suite.eval_steps()) <= set(suite.training.schedule)


def test_segments_partition_the_schedule():
    schedule = checkpoint_schedule(143000, 1000)
    segs = training_segments(schedule, 10000)
    # the first segment initialises (step 0) and trains on: no job of its own for step 0
    assert segs[0].start == -1 and segs[0].steps[:12] == (
        0,
        1,
        2,
        4,
        8,
        16,
        32,
        64,
        128,
        256,
        512,
        1000,
    )
    covered = [s for seg in segs for s in seg.steps]
    assert covered == schedule
    for prev, seg in zip(segs, segs[1:], strict=False):
        assert seg.start == prev.end  # each segment resumes from the previous one's last step
        assert all(seg.start < s <= seg.end for s in seg.steps)
    assert segs[0].end == 10000
    assert training_segments([0], 10) == [Segment(-1, 0, (0,))]  # the initialisation alone


def test_schedule_always_contains_the_last_step():
    assert checkpoint_schedule(50, 16) == [0, 1, 2, 4, 8, 16, 32, 48, 50]
    # step 0 always: it is where training starts (a schedule without it could not be trained)
    assert checkpoint_schedule(10, 4, log_spaced=False) == [0, 4, 8, 10]
    assert 7 in checkpoint_schedule(10, 4, extra=(7,))


def _tiny_raw():
    with open("config/config.yaml") as f:
        return yaml.safe_load(f)


@pytest.mark.parametrize(
    "mutate, key",
    [
        (lambda c: c["training"].update(seq_length="long"), "training.seq_length"),
        (lambda c: c["training"].update(bogus=1), "training"),
        (lambda c: c["models"]["tiny-70m"].update(hidden_size=33), "models.tiny-70m"),
        (
            lambda c: c["models"]["tiny-70m"].update(num_attention_heads=1, hidden_size=20),
            "rotary dims",
        ),
        (lambda c: c.update(sizes=["nope"]), "sizes"),
        (lambda c: c["eval"].update(steps=[10_000]), "eval.steps"),
        (lambda c: c["data"].update(source="ftp"), "data.source"),
        (lambda c: c["data"].update(source="pile_jsonl"), "data.pile.urls"),
        (lambda c: c["eval"].update(fewshot_steps={5: [0]}), "eval.fewshot_steps.5: 5 is not in"),
        (lambda c: c["data"].update(source="pythia_preshuffled"), "data.tokenizer.kind"),
        (lambda c: c["data"].update(source="pythia_preshuffled"), "eval.tasks: the embedded tasks"),
        (lambda c: c["data"].update(source="pythia_idxmaps"), "variants: source 'pythia_idxmaps'"),
        (
            lambda c: c["data"].update(source="pile_jsonl", pile={"urls": ["x.jsonl.zst"]}),
            "piqa_style, sciq_style and winogrande_style need the generated corpus",
        ),
        (
            lambda c: c["data"].update(release={"sha256": {"x.bin": "not-a-hash"}}),
            "data.release.sha256.x.bin",
        ),
        # the case studies' sections are checked with the config (workflow/core/semantics.py)
        (
            lambda c: c["memorization"].update(steps=[3]),
            "memorization.steps: step 3 is not a checkpoint of the schedule",
        ),
        (
            lambda c: c["intervention"]["runs"].append({"size": "nope", "fraction": 0.5}),
            "intervention.runs[5].size: 'nope' is not a model",
        ),
    ],
)
def test_bad_config_names_the_key(mutate, key):
    raw = _tiny_raw()
    mutate(raw)
    with pytest.raises(ConfigError) as err:
        validate_config(raw)
    assert key in str(err.value)


def test_defaults_are_filled():
    raw = _tiny_raw()
    del raw["hub"]
    config = validate_config(raw)
    assert config["hub"]["backend"] == "local_git"
    assert config["models"]["tiny-70m"]["init"] == "small_wang"
    assert config["training"]["adam_eps"] == 1e-8


def test_sizes_selects_models():
    raw = _tiny_raw()
    raw["sizes"] = ["tiny-70m", "tiny-1b"]
    assert list(SuiteConfig.from_dict(validate_config(raw)).models) == ["tiny-70m", "tiny-1b"]


def test_snakemake_reports_a_bad_config_by_key(tmp_path):
    import subprocess
    import sys

    bad = tmp_path / "bad.yaml"
    bad.write_text(
        Path("tests/fixtures/ci.yaml").read_text().replace("seq_length: 32", "seq_length: long")
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "-n",
            "--configfile",
            str(bad),
            "--directory",
            str(tmp_path / "run"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert f"invalid {bad}" in proc.stdout + proc.stderr
    assert "training.seq_length: 'long' is not of type 'integer'" in proc.stdout + proc.stderr
