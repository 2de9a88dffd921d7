"""Evaluation throughput: checkpoints per hour on the embedded cloze task, our grouped eval job
(`evaluate_checkpoints`: one process for several checkpoints of a model, as the eval rules run
it) vs the naive one-process-per-(checkpoint, task) loop. Both start fresh Python processes, so
imports, lm-eval's task index and the task data are part of what is measured.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bench.common import Result

REPO = Path(__file__).resolve().parent.parent
WORDS = (
    "the model data step token train loss layer head paper pile suite order batch seed memory "
    "weight value query key river stone cloud green small large quick brown fox jumps over lazy"
).split()


def _setup(work: Path, checkpoints: int, documents: int) -> tuple[list[Path], Path]:
    import random

    import torch
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    from workflow.data.tokenizer import save_hf_tokenizer, train_bpe
    from workflow.eval.cloze_task import build_cloze_task, write_task_yaml

    rng = random.Random(0)
    corpus = work / "heldout.jsonl"
    with open(corpus, "w") as f:
        for _ in range(documents * 2):
            words = [rng.choice(WORDS) for _ in range(rng.randint(20, 60))]
            f.write(json.dumps({"text": " ".join(words) + "."}) + "\n")
    train_bpe([corpus], 512, work / "tokenizer.json")
    build_cloze_task(corpus, work / "tasks" / "cloze.jsonl", num_documents=documents)
    write_task_yaml("lambada_cloze", work / "tasks" / "cloze.jsonl", work / "tasks" / "t.yaml")
    ckpts = []
    for i in range(checkpoints):
        torch.manual_seed(i)
        cfg = GPTNeoXConfig(
            vocab_size=512,
            hidden_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=256,
            max_position_embeddings=128,
            bos_token_id=0,
            eos_token_id=0,
            tie_word_embeddings=False,
        )
        out = work / f"step{i}"
        GPTNeoXForCausalLM(cfg).save_pretrained(out)
        save_hf_tokenizer(work / "tokenizer.json", out, 128)
        ckpts.append(out)
    return ckpts, work / "tasks"


def _python(code: str) -> float:
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", PYTHONPATH=str(REPO))
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, env=env, capture_output=True)
    return time.perf_counter() - t


def run(work: Path, checkpoints: int = 6, documents: int = 100) -> Result:
    work.mkdir(parents=True, exist_ok=True)
    ckpts, tasks = _setup(work, checkpoints, documents)
    kw = f"tasks_dir={str(tasks)!r}, tasks=['lambada_cloze'], num_fewshot=0, batch_size=16"
    outs = [str(work / "ours" / f"{c.name}.json") for c in ckpts]
    grouped = _python(
        "import torch; torch.set_num_threads(1)\n"
        "from workflow.eval.evaluate import evaluate_checkpoints\n"
        f"evaluate_checkpoints({[str(c) for c in ckpts]!r}, {outs!r}, {kw})"
    )
    naive = 0.0
    for c in ckpts:
        naive += _python(
            "import torch, json; torch.set_num_threads(1)\n"
            "from workflow.eval.evaluate import evaluate_checkpoint\n"
            f"r = evaluate_checkpoint({str(c)!r}, {kw})\n"
            f"open({str(work / (c.name + '.naive.json'))!r}, 'w').write(json.dumps(r['results']))"
        )
    same = all(
        json.loads(Path(o).read_text())["results"]
        == json.loads((work / f"{c.name}.naive.json").read_text())
        for o, c in zip(outs, ckpts, strict=True)
    )
    ratio = naive / grouped
    return Result(
        name=f"evaluation ({checkpoints} checkpoints, cloze task of {documents} docs, 1 thread)",
        ours=f"{checkpoints / grouped * 3600:,.0f} ckpt/h",
        baseline=f"{checkpoints / naive * 3600:,.0f} ckpt/h",
        ratio=ratio,
        target=">= 3x",
        passed=same and ratio >= 3,
        note="" if same else "results DIFFER from the per-checkpoint runs",
    )
