"""Test helpers: tiny Pythia-shaped checkpoint directories, held-out corpora, a network guard.

A checkpoint dir looks like what the training code writes: an HF-loadable GPTNeoXForCausalLM
(2 layers, d 32, vocab ~300) with a byte-level BPE tokenizer, pythia_checkpoint.json, and a
deepspeed/ folder (resume state, never published).
"""

from __future__ import annotations

import functools
import json
import random
import socket
from pathlib import Path

WORDS = (
    "the model data step token train loss layer head paper pile suite order batch seed "
    "memory weight value query key river stone cloud green small large quick brown fox jumps "
    "over lazy dog north south east west light dark early late first last"
).split()


def synthetic_documents(n: int, seed: int = 0, min_words: int = 8, max_words: int = 90) -> list:
    rng = random.Random(seed)
    docs = []
    for i in range(n):
        words = [rng.choice(WORDS) for _ in range(rng.randint(min_words, max_words))]
        docs.append({"text": " ".join(words) + ".", "meta": {"doc": i}})
    return docs


def write_heldout(path: Path, n: int, seed: int = 0) -> Path:
    docs = synthetic_documents(n, seed)
    docs.insert(3, {"text": "too short here.", "meta": {"doc": "short"}})
    path.write_text("".join(json.dumps(d) + "\n" for d in docs))
    return path


@functools.lru_cache(maxsize=1)
def _tokenizer_json() -> str:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=True)
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        min_frequency=2,
        special_tokens=["<|endoftext|>", "<|padding|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator([d["text"] for d in synthetic_documents(200, seed=99)], trainer)
    return tok.to_str()


def make_checkpoint(
    out_dir: Path, step: int, seed: int = 0, *, deepspeed: bool = True, max_len: int = 128
) -> Path:
    """Write a tiny random checkpoint for `step` (weights depend on `seed`) into `out_dir`."""
    import torch
    from tokenizers import Tokenizer
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM, PreTrainedTokenizerFast

    out_dir = Path(out_dir)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(_tokenizer_json()),
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        unk_token="<|endoftext|>",
        pad_token="<|padding|>",
        model_max_length=max_len,
    )
    cfg = GPTNeoXConfig(
        vocab_size=len(tok),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        max_position_embeddings=max_len,
        rotary_pct=0.25,
        use_parallel_residual=True,
        bos_token_id=0,
        eos_token_id=0,
        pad_token_id=1,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = GPTNeoXForCausalLM(cfg)
    model.save_pretrained(out_dir)
    tok.save_pretrained(out_dir)
    (out_dir / "pythia_checkpoint.json").write_text(
        json.dumps({"step": step, "tokens_seen": step * 8 * 64, "seed": seed}) + "\n"
    )
    if deepspeed:
        (out_dir / "deepspeed" / "global_step").mkdir(parents=True)
        (out_dir / "deepspeed" / "global_step" / "optim_states.pt").write_bytes(b"\0" * 1024)
        (out_dir / "deepspeed" / "latest").write_text(f"global_step{step}\n")
    return out_dir


def block_external_network(monkeypatch) -> list[str]:
    """Make any non-loopback connect/resolve fail loudly (tests must never reach huggingface.co).

    Returns the list the attempts are recorded in: code may swallow the error, the list shows it.
    """
    attempts: list[str] = []
    real_connect = socket.socket.connect

    def guarded(self, address):
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(host, str) and host not in ("127.0.0.1", "::1", "localhost"):
            if self.family in (socket.AF_INET, socket.AF_INET6):
                attempts.append(f"connect {address}")
                raise OSError(f"test tried to reach the network: {address}")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)

    real_getaddrinfo = socket.getaddrinfo

    def guarded_getaddrinfo(host, *args, **kwargs):
        if host not in (None, "127.0.0.1", "::1", "localhost"):
            attempts.append(f"resolve {host}")
            raise OSError(f"test tried to resolve {host}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", guarded_getaddrinfo)
    return attempts


def isolate_hf(monkeypatch, home: Path, *, offline: bool, endpoint: str | None = None) -> None:
    """Point huggingface_hub/datasets at a temp HF_HOME (and `endpoint`), offline or not.

    Both libraries read their environment once at import, so the module constants are patched as
    well as the environment (the latter for subprocesses).
    """
    import datasets.config
    from huggingface_hub import constants

    home = Path(home)
    flag = "1" if offline else "0"
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.setenv(var, flag)
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setattr(constants, "HF_HOME", str(home))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", offline)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", home / "datasets")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", offline)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", offline)
    import transformers.utils.hub

    # transformers keeps one HfApi for the process, bound to the endpoint of its first use
    monkeypatch.setattr(transformers.utils.hub, "_hf_api", None)
    if endpoint is not None:
        monkeypatch.setenv("HF_ENDPOINT", endpoint)
        monkeypatch.setattr(constants, "ENDPOINT", endpoint)
        template = endpoint + "/{repo_id}/resolve/{revision}/{filename}"
        monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", template)
        # `datasets` keeps its own copy of the endpoint (read at import)
        monkeypatch.setattr(datasets.config, "HF_ENDPOINT", endpoint)
        monkeypatch.setattr(
            datasets.config,
            "HUB_DATASETS_URL",
            endpoint + "/datasets/{repo_id}/resolve/{revision}/{path}",
        )
