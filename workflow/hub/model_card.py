"""The model card (README.md) published with every checkpoint, as Pythia's repos have one."""

from __future__ import annotations

from pathlib import Path

from workflow.core.checkpoint import CHECKPOINT_JSON, read_record
from workflow.core.io import read_json


def model_card(
    ckpt_dir: Path, repo_id: str, branch: str, step: int | None, project_url: str | None = None
) -> str:
    """The README.md published with every checkpoint: architecture, data, training settings,
    fingerprints and how to load this step (deterministic: no dates). "pythia-workflow" links
    to `project_url` only when one is configured (hub.project_url)."""
    cfg = read_json(ckpt_dir / "config.json") if (ckpt_dir / "config.json").is_file() else {}
    meta = read_record(ckpt_dir)
    rope = cfg.get("rope_parameters") or {}
    shape = [cfg.get(k) for k in ("num_hidden_layers", "hidden_size", "num_attention_heads")]
    rotary = rope.get("partial_rotary_factor", cfg.get("rotary_pct"))
    base = rope.get("rope_theta", cfg.get("rotary_emb_base"))
    rows = [
        ("architecture", "GPTNeoXForCausalLM (parallel residual, untied embeddings)"),
        ("layers / d_model / heads", " / ".join(map(str, shape))),
        ("rotary", f"{rotary} of the head dimension, base {base}"),
        ("vocabulary (padded)", cfg.get("vocab_size")),
        ("context", cfg.get("max_position_embeddings")),
        ("data variant", meta.get("variant")),
        ("step", step),
        ("tokens seen", meta.get("tokens_seen")),
        ("precision / ZeRO stage", f"{meta.get('precision')} / {meta.get('zero_stage')}"),
        ("seed", meta.get("seed")),
        ("data fingerprint", meta.get("data_fingerprint")),
        ("config hash", meta.get("config_hash")),
        ("pythia-workflow version", meta.get("code_version")),
    ]
    table = "\n".join(f"| {k} | {'' if v is None else v} |" for k, v in rows)
    metrics = meta.get("metrics") or {}
    loss = f"\nTraining loss at this step: {metrics['loss']:.4f}.\n" if metrics.get("loss") else ""
    project = f"[pythia-workflow]({project_url})" if project_url else "pythia-workflow"
    return f"""---
library_name: transformers
tags: [pythia, gpt-neox, pythia-workflow]
---

# {repo_id} ({branch})

A Pythia-style checkpoint trained with {project}. Every checkpoint of the suite is a
branch `step{{N}}` of this repository; `main` is the final step.

| | |
|---|---|
{table}
{loss}
## Load this step

```python
from transformers import AutoModelForCausalLM, AutoTokenizer

model = AutoModelForCausalLM.from_pretrained("{repo_id}", revision="{branch}")
tokenizer = AutoTokenizer.from_pretrained("{repo_id}", revision="{branch}")
```

The data this step trained on is rows `[0, {step} * batch)` of the run's pre-shuffled sample
file: `python -m workflow.data.batch_viewer --step ...` prints them. Full metadata:
`{CHECKPOINT_JSON}`.
"""
