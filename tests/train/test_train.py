"""Training segments through a real DeepSpeed engine on CPU (fp32, one process).

CPU ranks do not load DeepSpeed's shm comm op (workflow.train.distributed): its first use on a
fresh machine is a ~30-45 s C++ build.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
import yaml

from workflow.core.config import Segment, SuiteConfig, validate_config, without_case_studies
from workflow.core.io import write_json
from workflow.data.indexed_dataset import MMapIndexedDataset, write_indexed_dataset
from workflow.train.model import init_stds

pytestmark = pytest.mark.deepspeed

SIZE, VARIANT = "t2", "standard"
SEQ, BATCH, VOCAB = 16, 4, 300


def tiny_suite(**training) -> SuiteConfig:
    with open("config/config.yaml") as f:
        raw = without_case_studies(yaml.safe_load(f))
    raw["training"].update(
        {
            "seq_length": SEQ,
            "global_batch_size": BATCH,
            "train_iters": 16,
            "zero_stage": 1,
            "checkpoints": {"log_spaced": True, "every": 8},
            **training,
        }
    )
    raw.pop("sizes", None)
    raw.setdefault("eval", {})["steps"] = [0, 8]
    raw["models"] = {
        SIZE: {
            "num_layers": 2,
            "hidden_size": 32,
            "num_attention_heads": 2,
            "lr": 1e-3,
            "segment_steps": 8,
        },
    }
    return SuiteConfig.from_dict(validate_config(raw))


def make_tokenizer(path):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB,
        special_tokens=["<|endoftext|>", "<|padding|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    words = "the model data step token train loss layer head paper pile suite order".split()
    rng = np.random.default_rng(0)
    text = [" ".join(rng.choice(words, 40)) for _ in range(200)]
    tok.train_from_iterator(text, trainer)
    tok.save(str(path))
    assert tok.token_to_id("<|endoftext|>") == 0 and tok.token_to_id("<|padding|>") == 1
    return path


def make_samples(prefix, n_rows, vocab):
    # Arithmetic progressions mod vocab: learnable, so the loss visibly falls.
    rng = np.random.default_rng(1)
    rows = [
        (rng.integers(vocab) + rng.integers(1, 5) * np.arange(SEQ + 1)) % vocab
        for _ in range(n_rows)
    ]
    write_indexed_dataset(prefix, rows, np.uint16)
    write_json(f"{prefix}.json", {"fingerprint": "samples-v1"})
    return str(prefix)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """step 0; one segment 0->8; the same as 0->4 then a new call 4->8."""
    from workflow.train.segment import train_segment

    threads = torch.get_num_threads()
    tmp = tmp_path_factory.mktemp("train")
    suite = tiny_suite()
    tok = make_tokenizer(tmp / "tokenizer.json")
    samples = make_samples(tmp / "samples", 12 * BATCH, VOCAB)
    logs = []

    def seg(name, start, end, steps, resume):
        out = {s: tmp / name / f"step{s}" for s in steps}
        return train_segment(
            suite,
            size=SIZE,
            variant=VARIANT,
            samples_prefix=samples,
            tokenizer_path=tok,
            segment=Segment(start, end, tuple(steps)),
            out_dirs=out,
            resume_from=resume,
            log=logs.append,
        )

    assert seg("a", -1, 0, [0], None) == []
    full = seg("a", 0, 8, [1, 2, 4, 8], tmp / "a" / "step0")
    first = seg("b", 0, 4, [4], tmp / "a" / "step0")
    second = seg("b", 4, 8, [8], tmp / "b" / "step4")
    torch.set_num_threads(threads)
    return {
        "tmp": tmp,
        "suite": suite,
        "samples": samples,
        "tok": tok,
        "full": full,
        "split": first + second,
        "logs": logs,
    }


def test_resume_is_bit_exact(run):
    from safetensors.torch import load_file

    full, split = run["full"], run["split"]
    assert [m["step"] for m in full] == list(range(1, 9))
    assert [m["loss"] for m in full] == [m["loss"] for m in split]  # bit-identical floats
    assert [m["lr"] for m in full] == [m["lr"] for m in split]
    assert [m["grad_norm"] for m in full] == [m["grad_norm"] for m in split]
    a = load_file(run["tmp"] / "a" / "step8" / "model.safetensors")
    b = load_file(run["tmp"] / "b" / "step8" / "model.safetensors")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    w0 = load_file(run["tmp"] / "a" / "step0" / "model.safetensors")
    assert not torch.equal(w0["embed_out.weight"], a["embed_out.weight"])  # it did train


def test_lr_follows_neox_schedule(run):
    from workflow.train.lr_schedule import neox_lr

    t, spec = run["suite"].training, run["suite"].models[SIZE]
    for m in run["full"]:
        expect = neox_lr(
            m["step"] - 1,
            max_lr=spec.lr,
            min_lr=spec.min_lr,
            warmup_iters=t.warmup_iters,
            decay_iters=t.lr_decay_iters,
        )
        assert m["lr"] == pytest.approx(expect, rel=1e-12, abs=0)
    assert run["full"][0]["lr"] == 0.0  # warmup starts at 0


def test_checkpoint_contents(run):
    tmp = run["tmp"]
    for s, has_ds in [(0, True), (1, False), (2, False), (4, False), (8, True)]:
        d = tmp / "a" / f"step{s}"
        names = {p.name for p in d.iterdir()}
        assert {
            "config.json",
            "model.safetensors",
            "tokenizer.json",
            "tokenizer_config.json",
            "pythia_checkpoint.json",
        } <= names, names
        assert ("deepspeed" in names) == has_ds
        meta = json.loads((d / "pythia_checkpoint.json").read_text())
        assert meta["step"] == s and meta["samples_seen"] == s * BATCH
        assert meta["tokens_seen"] == s * BATCH * SEQ
        assert meta["data_fingerprint"] == "samples-v1"
        assert (meta["variant"], meta["size"]) == (VARIANT, SIZE)
        assert len(meta["config_hash"]) == 64 and meta["code_version"]
        if s:
            logged = run["full"][s - 1]
            assert meta["metrics"]["loss"] == logged["loss"]
            assert meta["metrics"]["lr"] == logged["lr"]
            assert meta["metrics"]["grad_norm"] == logged["grad_norm"]
        cfg = json.loads((d / "config.json").read_text())
        assert (cfg["rotary_pct"], cfg["rotary_emb_base"]) == (0.25, 10000)
    assert (tmp / "b" / "step4" / "deepspeed").is_dir()  # last step of its segment
    # no temporary directories left next to the checkpoints
    assert not [p for p in (tmp / "a").iterdir() if p.name.startswith(".")]
    assert any("loss" in line for line in run["logs"])


@pytest.mark.parametrize("step", [0, 4])
def test_hf_checkpoint_reproduces_logged_loss(run, step):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from workflow.train.step import lm_loss

    d = run["tmp"] / "a" / f"step{step}"
    model = AutoModelForCausalLM.from_pretrained(d)
    model.eval()
    rows = MMapIndexedDataset(run["samples"]).get_rows(step * BATCH, (step + 1) * BATCH)
    with torch.no_grad():
        loss = lm_loss(model, torch.from_numpy(rows.astype(np.int64))).item()
    assert loss == pytest.approx(run["full"][step]["loss"], abs=1e-6)
    tok = AutoTokenizer.from_pretrained(d)
    assert tok.eos_token_id == 0 and tok.pad_token_id == 1
    assert tok.model_max_length == SEQ
    assert tok.decode(tok("the model")["input_ids"]) == "the model"


def test_step0_has_neox_init(run):
    from safetensors.torch import load_file

    spec = run["suite"].models[SIZE]
    std, out_std = init_stds(spec)
    w = load_file(run["tmp"] / "a" / "step0" / "model.safetensors")
    # file keys keep Pythia's (transformers 4.x) names: embed_out, not lm_head
    assert "embed_out.weight" in w
    for k, t in w.items():
        if "layernorm" in k or "layer_norm" in k:
            assert torch.all(t == (1.0 if k.endswith("weight") else 0.0)), k
        elif k.endswith("bias"):
            assert torch.all(t == 0), k
        else:
            target = (
                out_std if k.endswith(("attention.dense.weight", "dense_4h_to_h.weight")) else std
            )
            assert t.std().item() == pytest.approx(target, rel=0.15), k


def _other_data(run, tmp_path):
    other = make_samples(tmp_path / "other", 12 * BATCH, VOCAB)
    write_json(f"{other}.json", {"fingerprint": "samples-v2"})
    return dict(samples_prefix=other)


@pytest.mark.parametrize(
    "case, change, segment, resume, error",
    [
        # another sample file than the checkpoint trained on (its fingerprint)
        ("data", _other_data, Segment(4, 8, (8,)), ("b", 4), "samples-v1.*samples-v2"),
        # another config (hyperparameters): its hash
        (
            "config",
            lambda run, tmp_path: dict(suite=tiny_suite(weight_decay=0.01)),
            Segment(4, 8, (8,)),
            ("b", 4),
            "config hash",
        ),
        # step 2 is inside segment 0->8: HF files only, so it is no resume point
        ("state", lambda run, tmp_path: {}, Segment(2, 4, (4,)), ("a", 2), "no deepspeed/ state"),
        # an optimizer state asked for at a step the segment does not save
        (
            "keep",
            lambda run, tmp_path: {},
            Segment(4, 8, (8,), (6,)),
            ("b", 4),
            "keep_state steps must be checkpoint steps",
        ),
    ],
)
def test_resume_refusals(run, tmp_path, case, change, segment, resume, error):
    """A resume from a checkpoint this segment cannot continue is refused before any step."""
    from workflow.train.errors import TrainingError
    from workflow.train.segment import train_segment

    kw = dict(suite=run["suite"], samples_prefix=run["samples"]) | change(run, tmp_path)
    out = tmp_path / f"step{segment.end}"
    with pytest.raises(TrainingError, match=error):
        train_segment(
            kw["suite"],
            size=SIZE,
            variant=VARIANT,
            samples_prefix=kw["samples_prefix"],
            tokenizer_path=run["tok"],
            segment=segment,
            out_dirs={segment.end: out},
            resume_from=run["tmp"] / resume[0] / f"step{resume[1]}",
        )
    assert not out.exists(), case


def test_cli_runs_a_segment(run, tmp_path):
    from workflow.train.segment import main

    shutil.copytree(run["tmp"] / "b" / "step4", tmp_path / "step4")
    cfg = tmp_path / "suite.json"
    cfg.write_text(json.dumps(run["suite"].raw))
    hist = main(
        [
            "--config-json",
            str(cfg),
            "--size",
            SIZE,
            "--variant",
            VARIANT,
            "--samples",
            run["samples"],
            "--tokenizer",
            str(run["tok"]),
            "--start",
            "4",
            "--end",
            "6",
            "--steps",
            "5,6",
            "--out-template",
            str(tmp_path / "step{step}"),
            "--resume-from",
            str(tmp_path / "step4"),
        ]
    )
    assert [m["loss"] for m in hist] == [m["loss"] for m in run["full"][4:6]]
    assert (tmp_path / "step6" / "deepspeed").is_dir() and (tmp_path / "step5").is_dir()


def test_samples_too_short_is_a_clear_error(run, tmp_path):
    from workflow.train.errors import TrainingError
    from workflow.train.segment import train_segment

    short = make_samples(tmp_path / "short", 3 * BATCH, VOCAB)
    with pytest.raises(TrainingError, match="step 8 needs 32"):
        train_segment(
            run["suite"],
            size=SIZE,
            variant=VARIANT,
            samples_prefix=short,
            tokenizer_path=run["tok"],
            segment=Segment(4, 8, (8,)),
            out_dirs={8: tmp_path / "step8"},
            resume_from=run["tmp"] / "b" / "step4",
        )


def test_zero0_matches_zero1(run, tmp_path):
    """Plain fp32 data parallelism (no ZeRO) is the same math; the grad norm is still logged."""
    from workflow.train.segment import train_segment

    suite = tiny_suite(zero_stage=0)
    common = dict(
        size=SIZE,
        variant=VARIANT,
        samples_prefix=run["samples"],
        tokenizer_path=run["tok"],
        log=lambda _: None,
    )
    train_segment(
        suite,
        segment=Segment(-1, 0, (0,)),
        out_dirs={0: tmp_path / "step0"},
        resume_from=None,
        **common,
    )
    hist = train_segment(
        suite,
        segment=Segment(0, 2, (2,)),
        out_dirs={2: tmp_path / "step2"},
        resume_from=tmp_path / "step0",
        **common,
    )
    assert [m["loss"] for m in hist] == [m["loss"] for m in run["full"][:2]]
    for got, want in zip(hist, run["full"][:2], strict=True):
        assert got["grad_norm"] == pytest.approx(want["grad_norm"], rel=1e-5)


def test_fp16_refused_on_cpu(run, tmp_path, monkeypatch):
    """A precision the accelerator lacks is refused before any compute. DeepSpeed's CPU
    accelerator reports fp16 as supported on CPUs with AVX512-FP16/AMX and not on others (the
    AVX2 machines of ../shared/reference/training-cpu.md), so the test gives it an accelerator
    without fp16 either way."""
    from deepspeed.accelerator import get_accelerator

    from workflow.train.errors import TrainingError
    from workflow.train.segment import train_segment

    if torch.cuda.is_available():
        pytest.skip("fp16 is supported on this accelerator")
    monkeypatch.setattr(get_accelerator(), "is_fp16_supported", lambda: False)
    with pytest.raises(TrainingError, match=r"models\.t2\.precision: fp16 is not supported"):
        train_segment(
            tiny_suite(precision="fp16"),
            size=SIZE,
            variant=VARIANT,
            samples_prefix=run["samples"],
            tokenizer_path=run["tok"],
            segment=Segment(-1, 0, (0,)),
            out_dirs={0: tmp_path / "step0"},
            resume_from=None,
        )
    assert not (tmp_path / "step0").exists()


def test_start_from_step0_weights_without_deepspeed_state(run, tmp_path):
    """Step 0 needs no DeepSpeed state (nothing but weights exists before the first update)."""
    from workflow.train.segment import train_segment

    shutil.copytree(run["tmp"] / "a" / "step0", tmp_path / "step0")
    shutil.rmtree(tmp_path / "step0" / "deepspeed")
    hist = train_segment(
        run["suite"],
        size=SIZE,
        variant=VARIANT,
        samples_prefix=run["samples"],
        tokenizer_path=run["tok"],
        segment=Segment(0, 2, (2,)),
        out_dirs={2: tmp_path / "step2"},
        resume_from=tmp_path / "step0",
        log=lambda _: None,
    )
    assert [m["loss"] for m in hist] == [m["loss"] for m in run["full"][:2]]


def test_torchrun_two_ranks(run, tmp_path):
    """Two data-parallel ranks (gloo) under torchrun, starting from the 1-process step 0; each
    rank takes half of every global batch, so the losses equal the 1-process run's."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    cfg = tmp_path / "suite.json"
    cfg.write_text(json.dumps(run["suite"].raw))
    env = {**os.environ, "PYTHONPATH": str(repo), "DS_ACCELERATOR": "cpu"}
    # the in-process segments above must not have leaked a launcher environment
    assert not {"RANK", "WORLD_SIZE", "MASTER_PORT"} & set(os.environ)
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "workflow.train.segment",
        "--config-json",
        str(cfg),
        "--size",
        SIZE,
        "--variant",
        VARIANT,
        "--samples",
        run["samples"],
        "--tokenizer",
        str(run["tok"]),
        "--start-step",
        "0",
        "--end-step",
        "2",
        "--steps",
        "1,2",
        "--out-template",
        str(tmp_path / "step{step}"),
        "--resume-from",
        str(run["tmp"] / "a" / "step0"),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for s in (1, 2):
        meta = json.loads((tmp_path / f"step{s}" / "pythia_checkpoint.json").read_text())
        assert meta["world_size"] == 2
        assert meta["metrics"]["loss"] == pytest.approx(run["full"][s - 1]["loss"], abs=1e-5)
    shards = sorted(p.name for p in (tmp_path / "step2" / "deepspeed" / "state").iterdir())
    assert "zero_pp_rank_1_mp_rank_00_optim_states.pt" in shards


# --- step log, preemption ----------------------------------------------------------------


def _segment_0_8(run, tmp_path, suite=None, **kw):
    from workflow.train.segment import train_segment

    shutil.copytree(run["tmp"] / "a" / "step0", tmp_path / "step0")
    steps = (1, 2, 4, 8)
    return train_segment(
        suite or run["suite"],
        size=SIZE,
        variant=VARIANT,
        samples_prefix=run["samples"],
        tokenizer_path=run["tok"],
        segment=Segment(0, 8, steps),
        out_dirs={s: tmp_path / f"step{s}" for s in steps},
        resume_from=tmp_path / "step0",
        **kw,
    )


def test_step_log_csv(run, tmp_path):
    import csv

    from workflow.train.step_log import COLUMNS

    suite = tiny_suite(peak_tflops=0.5)
    hist = _segment_0_8(run, tmp_path, suite, metrics_path=tmp_path / "log.csv")
    with open(tmp_path / "log.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == COLUMNS and [int(r["step"]) for r in rows] == list(range(1, 9))
    assert (
        [float(r["loss"]) for r in rows]
        == [m["loss"] for m in run["full"]]
        == [m["loss"] for m in hist]
    )
    for r in rows:
        assert float(r["tokens_per_s"]) > 0 and r["loss_scale"] == ""  # fp32: no loss scale
        assert float(r["mfu"]) == pytest.approx(float(r["tflops_per_device"]) / 0.5)
        assert int(r["tokens_seen"]) == int(r["step"]) * BATCH * SEQ
    assert not (tmp_path / "log.csv.partial").exists()


def test_preempted_segment_saves_and_resumes_bit_exact(run, tmp_path):
    """SIGTERM (Slurm's time limit) during step 3: the step finishes, the state is saved, the
    rerun continues from it, and every checkpoint equals the uninterrupted run's."""
    import os
    import signal

    from workflow.train.errors import Preempted
    from workflow.train.preempt import preempt_dir

    def log(msg):
        if msg.startswith("step 3 "):
            os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(Preempted, match="stopped by a signal after step 3"):
        _segment_0_8(run, tmp_path, log=log, metrics_path=tmp_path / "log.csv")
    out = {s: tmp_path / f"step{s}" for s in (1, 2, 4, 8)}
    pdir = preempt_dir(out, Segment(0, 8, (1, 2, 4, 8)))
    assert (pdir / "deepspeed").is_dir() and json.loads(
        (pdir / "pythia_checkpoint.json").read_text()
    )["step"] == 3
    # Snakemake deletes a failed job's outputs; the checkpoints made so far wait in the state
    assert sorted(p.name for p in (pdir / "done").iterdir()) == ["step1", "step2"]
    assert not (tmp_path / "log.csv").exists() and (tmp_path / "log.csv.partial").exists()
    shutil.rmtree(tmp_path / "step0")
    messages = []
    hist = _segment_0_8(run, tmp_path, log=messages.append, metrics_path=tmp_path / "log.csv")
    assert any("resuming the preempted segment from step 3" in m for m in messages)
    assert [m["step"] for m in hist] == [4, 5, 6, 7, 8]
    assert [m["loss"] for m in hist] == [m["loss"] for m in run["full"][3:]]
    for s in (1, 2, 4, 8):
        ours = (out[s] / "model.safetensors").read_bytes()
        assert ours == (run["tmp"] / "a" / f"step{s}" / "model.safetensors").read_bytes(), s
    assert not pdir.exists()
    lines = (tmp_path / "log.csv").read_text().splitlines()
    assert [int(x.split(",")[0]) for x in lines[1:]] == list(range(1, 9))


def test_first_segment_initialises_trains_on_and_resumes(run, tmp_path):
    """A suite's first segment (-1, 4]: the initialisation is no job of its own. It saves the
    same step 0 as the initialisation alone (DeepSpeed state included) and trains on in the
    same process exactly as a segment resumed from that step 0; preempted after step 2 and run
    again, it continues from its saved state to the same step 4."""
    import os
    import signal

    from workflow.train.errors import Preempted
    from workflow.train.segment import train_segment

    steps = (0, 2, 4)
    out = {s: tmp_path / f"step{s}" for s in steps}

    def first_segment(log):
        return train_segment(
            run["suite"],
            size=SIZE,
            variant=VARIANT,
            samples_prefix=run["samples"],
            tokenizer_path=run["tok"],
            segment=Segment(-1, 4, steps),
            out_dirs=out,
            resume_from=None,
            log=log,
        )

    def stop_after_2(msg):
        if msg.startswith("step 2 "):
            os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(Preempted, match="stopped by a signal after step 2"):
        first_segment(stop_after_2)
    messages = []
    hist = first_segment(messages.append)
    assert any("resuming the preempted segment from step 2" in m for m in messages)
    assert not any("initialised" in m for m in messages)  # step 0 came back with the state
    assert [m["loss"] for m in hist] == [m["loss"] for m in run["full"][2:4]]
    for s in steps:
        ours = (out[s] / "model.safetensors").read_bytes()
        assert ours == (run["tmp"] / "a" / f"step{s}" / "model.safetensors").read_bytes(), s
    assert (out[0] / "deepspeed").is_dir()


def test_cli_exits_75_on_sigusr1(run, tmp_path):
    """SIGUSR1 saves the state and exits 75; a CPU rank builds no DeepSpeed shm op."""
    import os
    import signal
    import subprocess
    import sys

    from workflow.train.errors import PREEMPTED_EXIT

    long = make_samples(tmp_path / "long", 400 * BATCH, VOCAB)
    suite = tiny_suite(train_iters=400, lr_decay_iters=16)  # the same model: same config hash
    shutil.copytree(run["tmp"] / "a" / "step0", tmp_path / "step0")
    cfg = tmp_path / "suite.json"
    cfg.write_text(json.dumps(suite.raw))
    args = ["--config-json", str(cfg), "--size", SIZE, "--variant", VARIANT, "--samples", long]
    args += ["--tokenizer", str(run["tok"]), "--start-step", "0", "--end-step", "400"]
    args += ["--steps", "400", "--out-template", str(tmp_path / "step{step}")]
    args += ["--resume-from", str(tmp_path / "step0"), "--metrics", str(tmp_path / "m.csv")]
    # an empty extension cache: a CPU rank must not build DeepSpeed's shm comm op
    ext = tmp_path / "torch_extensions"
    env = dict(os.environ, DS_ACCELERATOR="cpu", TORCH_EXTENSIONS_DIR=str(ext))
    proc = subprocess.Popen(
        [sys.executable, "-m", "workflow.train.segment", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    for line in proc.stdout:
        if line.startswith("step 2 "):
            proc.send_signal(signal.SIGUSR1)
            break
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == PREEMPTED_EXIT, err[-2000:]
    assert "preempted:" in err and "run the segment again" in err
    assert (tmp_path / ".preempt-0-400" / "deepspeed").is_dir()
    assert not list(ext.rglob("*shm_comm*")) and "shm_comm_op built" not in out + err


GOLDEN = __import__("pathlib").Path(__file__).resolve().parents[1] / "fixtures" / "golden_loss.json"


def test_golden_loss(run):
    """The first 8 steps of the tiny fixed model (tiny_suite, make_samples, make_tokenizer; fp32,
    one thread, ZeRO 1) against committed values: a silent change in numerics (init, data
    order, optimizer, schedule, library upgrade) shows here. Tolerance: 1e-5 relative, far
    below the step-to-step changes (~1e-2) and above float reordering noise (~1e-7)."""
    got = {k: [m[k] for m in run["full"]] for k in ("loss", "lr", "grad_norm")}
    if __import__("os").environ.get("UPDATE_GOLDEN"):  # after an intended numerics change
        GOLDEN.write_text(json.dumps(got, indent=1) + "\n")
    golden = json.loads(GOLDEN.read_text())
    assert got["loss"] == pytest.approx(golden["loss"], rel=1e-5)
    assert got["lr"] == pytest.approx(golden["lr"], rel=1e-9)
    assert got["grad_norm"] == pytest.approx(golden["grad_norm"], rel=1e-4)


def test_tokenizer_data_mismatch_is_refused_before_compute(run, tmp_path):
    from workflow.train.errors import TrainingError

    seg = dict(segment=Segment(-1, 0, (0,)), out_dirs={0: tmp_path / "step0"}, resume_from=None)
    kw = dict(size=SIZE, variant=VARIANT, tokenizer_path=run["tok"], **seg)
    from workflow.train.segment import train_segment

    wide = make_samples(tmp_path / "wide", 12 * BATCH, 1000)  # ids up to 999 > vocab 300
    with pytest.raises(TrainingError, match=r"wide\.bin: token id \d+ in rows \[0, 4\) is outside"):
        train_segment(run["suite"], samples_prefix=wide, **kw)
    recorded = make_samples(tmp_path / "rec", 12 * BATCH, VOCAB)
    write_json(f"{recorded}.json", {"fingerprint": "x", "vocab_size": 50277})
    with pytest.raises(TrainingError, match="samples were tokenized with 50277"):
        train_segment(run["suite"], samples_prefix=recorded, **kw)
    assert not (tmp_path / "step0").exists()


def test_optimizer_settings_are_neox_v1_0s():
    """Adam (0.9, 0.95), eps 1e-8, decoupled decay 0.1 except biases and LayerNorm, clip 1.0,
    fp16 dynamic loss scaling 2^12 / window 1000 / hysteresis 2, bf16 for pythia-1b."""
    from workflow.core.config import load_config
    from workflow.train.engine import deepspeed_config, param_groups
    from workflow.train.model import build_model

    paper = SuiteConfig.from_dict(load_config("config/pythia.yaml"))
    t = paper.training
    cfg = deepspeed_config(paper.models["410m"], t, micro=32, gas=1)
    opt = cfg["optimizer"]["params"]
    assert (opt["betas"], opt["eps"], opt["weight_decay"]) == ([0.9, 0.95], 1e-8, 0.1)
    assert opt["adam_w_mode"] and cfg["gradient_clipping"] == 1.0
    assert cfg["zero_optimization"]["stage"] == 1
    assert cfg["fp16"]["enabled"] and not cfg["bf16"]["enabled"]
    assert (cfg["fp16"]["initial_scale_power"], cfg["fp16"]["loss_scale_window"]) == (12, 1000)
    assert cfg["fp16"]["hysteresis"] == 2 and cfg["fp16"]["loss_scale"] == 0  # 0 = dynamic
    one_b = deepspeed_config(paper.models["1b"], t, micro=16, gas=1)
    assert one_b["bf16"]["enabled"] and not one_b["fp16"]["enabled"]

    model = build_model(tiny_suite().models[SIZE], tiny_suite().training, VOCAB, seed=1)
    decay, no_decay = param_groups(model, 0.1)
    names = {id(p): n for n, p in model.named_parameters()}
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(
        not names[id(p)].endswith("bias") and "norm" not in names[id(p)] for p in decay["params"]
    )
    assert {names[id(p)].rsplit(".", 1)[-1] for p in no_decay["params"]} == {"weight", "bias"}
    assert all("norm" in names[id(p)] or names[id(p)].endswith("bias") for p in no_decay["params"])
    n = len(list(model.parameters()))
    assert len(decay["params"]) + len(no_decay["params"]) == n
