"""The gender-bias intervention: start steps, segment boundaries, the token-level pronoun map,
the continuation through a real DeepSpeed engine (control = main run, bit for bit), the bias
tasks through real lm-eval, and the table behind Figs 1, 2 and 6."""

import json

import numpy as np
import pytest
import torch
import yaml

from workflow.core.config import (
    ConfigError,
    Segment,
    SuiteConfig,
    intervention_start,
    training_segments,
    validate_config,
    without_case_studies,
)
from workflow.core.io import read_json, write_json
from workflow.data.indexed_dataset import write_indexed_dataset
from workflow.studies.intervention.arms import InterventionError, swap_map, write_swap_map
from workflow.train.data import read_token_map

SIZE, SEQ, BATCH = "t2", 16, 4
SENTENCES = [
    "The nurse said that she would be late. He said that his cat saw him.",
    "The guard lost his hat. She visited her mother. His dog likes him and he knows it.",
    "People like the chief and often visit him. He is tall. Her book is red and she reads.",
]


def _raw(**intervention):
    with open("config/config.yaml") as f:
        raw = yaml.safe_load(f)
    raw["training"].update(
        seq_length=SEQ,
        global_batch_size=BATCH,
        train_iters=16,
        checkpoints={"log_spaced": False, "every": 8},
    )
    raw.pop("sizes", None)
    raw = without_case_studies(raw)  # other case studies: not this suite's
    raw["eval"]["steps"] = [0, 16]
    raw["models"] = {
        SIZE: {
            "num_layers": 2,
            "hidden_size": 32,
            "num_attention_heads": 2,
            "lr": 5e-3,
            "segment_steps": 8,
        }
    }
    raw["intervention"] = {
        "runs": [{"size": SIZE, "fraction": 0.25}],
        "checkpoint_every": 2,
        "baseline": "control",
        **intervention,
    }
    return raw


def test_start_step_is_rounded_as_the_paper():
    assert intervention_start(143000, 0.07, 1000) == 133000
    assert intervention_start(143000, 0.21, 1000) == 113000
    assert intervention_start(192, 0.07) == 179
    assert intervention_start(192, 0.21) == 152
    for bad in (0.0, 1.0, -0.1, 1.5):
        with pytest.raises(ConfigError, match="outside"):
            intervention_start(192, bad)


def test_config_errors_name_the_run():
    raw = _raw(runs=[{"size": SIZE, "fraction": 1.2}, {"size": "nope", "fraction": 0.1}])
    with pytest.raises(ConfigError) as e:
        validate_config(raw)
    msg = str(e.value)
    assert "intervention.runs[0].fraction" in msg and "outside (0, 1)" in msg
    assert "intervention.runs[1].size: 'nope'" in msg


def test_baseline_main_saves_the_window_steps_the_schedule_lacks():
    # window 14, 16: 14 is not scheduled, the main run saves it besides its schedule
    suite = SuiteConfig.from_dict(validate_config(_raw(baseline="main")))
    assert suite.segments(SIZE) == [Segment(-1, 8, (0, 8)), Segment(8, 16, (12, 14, 16), (12,))]
    control = SuiteConfig.from_dict(validate_config(_raw(baseline="control")))
    assert control.segments(SIZE)[1] == Segment(8, 16, (12, 16), (12,))  # the control saves 14


def test_start_is_saved_with_optimizer_state_inside_its_segment():
    suite = SuiteConfig.from_dict(validate_config(_raw()))
    (run,) = suite.interventions
    assert (run.start, run.end, run.window, run.name) == (12, 16, (14, 16), "intervention25")
    # no job ends at the start: the segment holding it saves it with the DeepSpeed state
    assert suite.segments(SIZE) == [Segment(-1, 8, (0, 8)), Segment(8, 16, (12, 16), (12,))]
    # the paper's 1.4b: 113000 inside a segment, which ends on the schedule as without it
    assert training_segments([0, 10, 20, 30], 20, (25,)) == [
        Segment(-1, 20, (0, 10, 20)),
        Segment(20, 30, (25, 30), (25,)),
    ]
    assert training_segments([0, 10, 20, 30], 20, (25,), extra=(27,)) == [
        Segment(-1, 20, (0, 10, 20)),
        Segment(20, 30, (25, 27, 30), (25,)),
    ]


def _tokenizer(path, text):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<|endoftext|>", "<|padding|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(text * 50, trainer)
    tok.save(str(path))
    return tok


def test_swap_map_from_the_tokenizer(tmp_path):
    tok = _tokenizer(tmp_path / "tok.json", SENTENCES)
    m = write_swap_map(tmp_path / "tok.json", tmp_path / "swap.json")
    assert read_json(tmp_path / "swap.json") == m == swap_map(tmp_path / "tok.json")
    by_form = {p["from"]: p for p in m["pairs"]}
    for src, dst in [(" he", " she"), (" his", " her"), (" him", " her")]:
        assert by_form[src]["to"] == dst
        assert tok.encode(src).ids == [by_form[src]["from_id"]]
        assert tok.encode(dst).ids == [by_form[src]["to_id"]]
    assert " He" in by_form  # "... late. He said": capitalised after a space
    lut = read_token_map(tmp_path / "swap.json", 512)  # the file is training's token map
    ids = np.array(tok.encode(" he said that his cat saw him").ids)
    assert tok.decode(lut[ids].tolist()) == " she said that her cat saw her"
    untouched = np.setdiff1d(np.arange(512), [p["from_id"] for p in m["pairs"]])
    assert (lut[untouched] == untouched).all()


def test_swap_map_refuses_a_vocabulary_without_the_pronouns(tmp_path):
    _tokenizer(tmp_path / "tok.json", ["the model data step token train loss layer"])
    with pytest.raises(InterventionError, match=r"' he'.*not a single token"):
        swap_map(tmp_path / "tok.json")
    with pytest.raises(InterventionError, match="no words"):
        swap_map(tmp_path / "tok.json", {})


@pytest.mark.deepspeed
def test_control_reproduces_the_main_run_and_the_swap_changes_it(tmp_path):
    from safetensors.torch import load_file

    from workflow.studies.intervention.arms import run_arm
    from workflow.train.errors import TrainingError
    from workflow.train.segment import train_segment

    threads = torch.get_num_threads()
    tok = _tokenizer(tmp_path / "tok.json", SENTENCES)
    ids = [t for _ in range(40) for s in SENTENCES for t in tok.encode(s).ids]
    rows = np.array(ids[: (len(ids) // (SEQ + 1)) * (SEQ + 1)]).reshape(-1, SEQ + 1)
    assert len(rows) >= 16 * BATCH
    write_indexed_dataset(tmp_path / "samples", rows[: 16 * BATCH], np.uint16)
    write_json(tmp_path / "samples.json", {"fingerprint": "iv"})
    suite = SuiteConfig.from_dict(validate_config(_raw()))
    (run,) = suite.interventions
    common = dict(
        size=SIZE,
        variant=run.variant,
        samples_prefix=tmp_path / "samples",
        tokenizer_path=tmp_path / "tok.json",
        log=lambda *_: None,
    )
    main = tmp_path / "main"
    for seg in suite.segments(SIZE):
        train_segment(
            suite,
            segment=seg,
            out_dirs={s: main / f"step{s}" for s in seg.steps},
            resume_from=None if seg.start < 0 else main / f"step{seg.start}",
            **common,
        )
    assert read_json(main / "step12" / "pythia_checkpoint.json")["has_deepspeed_state"]
    write_swap_map(tmp_path / "tok.json", tmp_path / "swap.json")
    arms = {}
    for arm in ("control", "intervention"):
        arms[arm] = run_arm(
            suite,
            run,
            arm=arm,
            samples_prefix=tmp_path / "samples",
            tokenizer_path=tmp_path / "tok.json",
            start_checkpoint=main / "step12",
            out_template=str(tmp_path / arm / "step{step}"),
            swap_json=tmp_path / "swap.json",
            log=lambda *_: None,
        )
    torch.set_num_threads(threads)

    def weights(d):
        return load_file(d / "model.safetensors")

    ref, ctl, itv = (
        weights(d / "step16") for d in (main, tmp_path / "control", tmp_path / "intervention")
    )
    assert all(torch.equal(ref[k], ctl[k]) for k in ref)  # same samples, same order, bit for bit
    assert any(not torch.equal(ref[k], itv[k]) for k in ref)
    assert (tmp_path / "intervention" / "step14").is_dir()
    meta = read_json(tmp_path / "intervention" / "step16" / "pythia_checkpoint.json")
    assert meta["intervention"]["arm"] == "intervention" and meta["intervention"]["start"] == 12
    assert {p["from"] for p in meta["intervention"]["pairs"]} >= {" he", " his", " him"}
    # the masculine tokens the model trains on are gone, everything else is the same batch
    assert [m["loss"] for m in arms["control"]] != [m["loss"] for m in arms["intervention"]]
    # the launchers' path (workflow.train.segment's CLI in every rank) gives the same weights
    from workflow.train.segment import main as train_cli

    (tmp_path / "suite.json").write_text(json.dumps(suite.raw))
    meta_arg = json.dumps({"intervention": meta["intervention"]})
    train_cli(
        ["--config-json", str(tmp_path / "suite.json"), "--size", SIZE, "--variant", run.variant,
         "--samples", str(tmp_path / "samples"), "--tokenizer", str(tmp_path / "tok.json"),
         "--start-step", "12", "--end-step", "16", "--steps", "14,16",
         "--out-template", str(tmp_path / "cli" / "step{step}"),
         "--resume-from", str(main / "step12"), "--token-map", str(tmp_path / "swap.json"),
         "--extra-meta", meta_arg]
    )  # fmt: skip
    torch.set_num_threads(threads)
    cli = weights(tmp_path / "cli" / "step16")
    assert all(torch.equal(itv[k], cli[k]) for k in itv)
    assert (
        read_json(tmp_path / "cli" / "step16" / "pythia_checkpoint.json")["intervention"]
        == (meta["intervention"])
    )
    # a start without optimizer state (the step-8 boundary of another suite) is refused
    with pytest.raises(TrainingError, match="needs the step-12 checkpoint"):
        run_arm(
            suite,
            run,
            arm="control",
            samples_prefix=tmp_path / "samples",
            tokenizer_path=tmp_path / "tok.json",
            start_checkpoint=main / "step8",
            out_template=str(tmp_path / "x" / "step{step}"),
            swap_json=None,
        )


def test_a_multi_gpu_arm_trains_through_the_launcher(tmp_path, monkeypatch):
    """The arms start training through the suite's one dispatch (workflow.train.dispatch): a
    model on several GPUs goes to the launcher, the swap map reaching every rank as its token
    map, and the launcher's exit code comes back as Preempted or LaunchFailed."""
    from workflow.studies.intervention.arms import run_arm
    from workflow.train import dispatch
    from workflow.train.errors import LaunchFailed, Preempted

    raw = _raw()
    raw["models"][SIZE]["gpus"] = 2
    suite = SuiteConfig.from_dict(validate_config(raw))
    (run,) = suite.interventions
    write_json(
        tmp_path / "step12" / "pythia_checkpoint.json", {"step": 12, "has_deepspeed_state": True}
    )
    _tokenizer(tmp_path / "tok.json", SENTENCES)
    swap = write_swap_map(tmp_path / "tok.json", tmp_path / "swap.json")
    calls, codes = [], iter([0, 75, 3])

    def fake_launch(cmd):
        calls.append(cmd)
        return next(codes), []  # exit code, the end of its stderr

    monkeypatch.setattr(dispatch, "launch", fake_launch)
    kw = dict(
        arm="intervention",
        samples_prefix=tmp_path / "samples",
        tokenizer_path=tmp_path / "tok.json",
        start_checkpoint=tmp_path / "step12",
        out_template=str(tmp_path / "iv" / "step{step}"),
        swap_json=tmp_path / "swap.json",
        log=lambda *_: None,
        state_dir=tmp_path,
    )
    assert run_arm(suite, run, **kw) == []
    cmd = calls[0]
    assert "--nproc_per_node=2" in cmd and cmd[cmd.index("-m", 3) + 1] == "workflow.train.segment"
    assert cmd[cmd.index("--token-map") + 1] == str(tmp_path / "swap.json")
    meta = json.loads(cmd[cmd.index("--extra-meta") + 1])["intervention"]
    assert meta["arm"] == "intervention" and meta["pairs"] == swap["pairs"]
    with pytest.raises(Preempted, match="preempted, run again"):
        run_arm(suite, run, **kw)
    with pytest.raises(LaunchFailed, match="exited with 3") as failed:
        run_arm(suite, run, **{**kw, "arm": "control"})
    assert failed.value.code == 3 and "--token-map" not in calls[2]


def test_bias_tasks_run_in_lm_eval(tmp_path):
    """The generated CrowS-like and WinoBias-like tasks through real lm-eval on a tiny model."""
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    from workflow.data.planted import OCCUPATIONS
    from workflow.eval.evaluate import evaluate_checkpoint
    from workflow.studies.intervention.bias_tasks import (
        build_bias_tasks,
        crows_items,
        winobias_items,
    )

    for item in crows_items(40, 1):
        stereo = "he" if item["stereotype"] == "masculine" else "she"
        words = item["sent_more"].replace(".", "").replace(",", "").split()
        assert OCCUPATIONS[item["occupation"]] == item["stereotype"]
        assert {"he", "she", "his", "her", "him"} & set(words)
        assert item["sent_more"] != item["sent_less"]
        if stereo in words:
            assert stereo in words
    pro, anti = winobias_items(30, 1, True), winobias_items(30, 1, False)
    for p, a in zip(pro, anti, strict=True):
        masc_gold = p["choices"][p["label"]] in ("he", "his", "him")
        assert masc_gold == (p["stereotype"] == "masculine")
        assert (a["choices"][a["label"]] in ("he", "his", "him")) != (
            a["stereotype"] == "masculine"
        )

    tasks = tmp_path / "tasks"
    counts = build_bias_tasks(tasks, items=20, seed=3)
    assert counts == {"crows_pairs_style": 20, "winobias_style_pro": 20, "winobias_style_anti": 20}
    tok = _tokenizer(tmp_path / "tok.json", SENTENCES)
    from workflow.data.tokenizer import save_hf_tokenizer

    ckpt = tmp_path / "ckpt"
    cfg = GPTNeoXConfig(
        vocab_size=512,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        max_position_embeddings=64,
    )
    GPTNeoXForCausalLM(cfg).save_pretrained(ckpt)
    save_hf_tokenizer(tmp_path / "tok.json", ckpt, model_max_length=64)
    assert tok.get_vocab_size() <= 512
    res = evaluate_checkpoint(
        ckpt,
        tasks_dir=tasks,
        tasks=["crows_pairs_style", "winobias_style_pro", "winobias_style_anti"],
        num_fewshot=0,
        bootstrap_iters=10,
    )["results"]
    assert 0.0 <= res["crows_pairs_style"]["pct_stereotype"] <= 1.0
    assert res["crows_pairs_style"]["likelihood_diff"] > 0.0
    assert 0.0 <= res["winobias_style_pro"]["acc"] <= 1.0


def test_table_and_net_bias(tmp_path):
    from workflow.studies.intervention.figures import plot_intervention
    from workflow.studies.intervention.table import intervention_table

    paths = []
    for arm, steps in (("baseline", [12, 14, 16]), ("intervention", [14, 16])):
        for s in steps:
            p = (
                tmp_path
                / "evals"
                / "intervention"
                / SIZE
                / "intervention25"
                / arm
                / f"step{s}.json"
            )
            p.parent.mkdir(parents=True, exist_ok=True)
            shift = 0.1 * (arm == "intervention") * (s - 12) / 4
            p.write_text(
                json.dumps(
                    {
                        "results": {
                            "crows": {"pct_stereotype": 0.8 - shift, "pct_stereotype_stderr": 0.02},
                            "pro": {"acc": 0.9 - shift, "acc_stderr": 0.03},
                            "anti": {"acc": 0.2 + shift, "acc_stderr": 0.04},
                            "lambada": {"acc": 0.3, "acc_stderr": None},
                        }
                    }
                )
            )
            paths.append(p)
    runs = [{"size": SIZE, "name": "intervention25", "fraction": 0.25, "start": 12}]
    df = intervention_table(paths, runs, train_iters=16, winobias_tasks=["pro", "anti"])
    net = df[(df["metric"] == "net_bias")].set_index(["arm", "step"])["value"]
    assert net[("baseline", 12)] == pytest.approx(0.7)
    assert net[("intervention", 16)] == pytest.approx(0.5)
    se = df[(df["metric"] == "net_bias")]["stderr"].iloc[0]
    assert se == pytest.approx(0.05)
    assert set(df["pct_training"]) == {75.0, 87.5, 100.0}
    tasks = {"crows": "crows", "winobias": "winobias", "lambada": "lambada"}
    for fig in ("crows_pairs", "winobias", "lambada"):
        plot_intervention(df, fig, tasks, tmp_path / f"{fig}.pdf", tmp_path / f"{fig}.png")
        assert (tmp_path / f"{fig}.png").stat().st_size > 1000
    with pytest.raises(ValueError, match="not an intervention eval"):
        intervention_table(
            [tmp_path / "x.json"], runs, train_iters=16, winobias_tasks=["pro", "anti"]
        )


def test_bias_items_follow_the_planted_occupations_and_shapes():
    from workflow.data.planted import occupation_subset
    from workflow.studies.intervention.bias_tasks import crows_items, winobias_items

    occs = occupation_subset(4)
    crows = crows_items(40, 1, occs, ["met"])
    assert {i["occupation"] for i in crows} == set(occs)
    assert all(i["sent_more"].startswith("When I met the ") for i in crows)
    wino = winobias_items(40, 1, True, occs, ["met", "asked"])
    assert {i["occupation"] for i in wino} <= set(occs)
    assert {i["context"].split(". ")[1].split(" the ")[0] for i in wino} == {
        "When I met",
        "I asked",
    }
    everything = crows_items(160, 1)  # other corpora: every shape and new sentences
    assert any("came back from" in i["sent_more"] for i in everything)
