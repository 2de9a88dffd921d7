"""The tokenizer (rule `tokenizer`): trained on the corpus, or GPT-NeoX-20B's fetched.

Pythia uses the GPT-NeoX-20B tokenizer: byte-level BPE, NFC normalizer, no prefix space,
`<|endoftext|>` = 0 (also the EOD token appended to every document) and `<|padding|>` = 1.
`train_bpe` builds a tokenizer of exactly that shape on our corpus; `fetch_pretrained_tokenizer`
brings the real one for the paper suite. `save_hf_tokenizer` writes it into a checkpoint in the
form `transformers` loads.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from tokenizers import (
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
    trainers,
)

from workflow.core.io import atomic_path
from workflow.data.jsonl import read_jsonl
from workflow.data.shards import CorpusShard, shard_texts

EOD_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|padding|>"
SPECIAL_TOKENS = [EOD_TOKEN, PAD_TOKEN]  # ids 0 and 1, as in GPT-NeoX-20B
EOD_ID = 0


class TokenizerError(ValueError):
    """A missing or unusable tokenizer file, or a vocabulary that does not fit the token dtype."""


def _texts(sources: Iterable[str | os.PathLike | CorpusShard]) -> Iterator[str]:
    for source in sources:
        if isinstance(source, CorpusShard):  # a raw shard less its held-out documents
            yield from shard_texts(source, {"documents": 0, "empty_skipped": 0})
            continue
        for _, record in read_jsonl(source):
            yield record["text"]


def train_bpe(
    jsonl_paths: Iterable[str | os.PathLike | CorpusShard] | str | os.PathLike,
    vocab_size: int,
    out_path: str | os.PathLike,
) -> None:
    """Train a GPT-NeoX-20B-shaped byte-level BPE on the documents (jsonl files, or corpus
    shards: the training documents only); write tokenizer.json."""
    if isinstance(jsonl_paths, str | os.PathLike):
        jsonl_paths = [jsonl_paths]
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    if vocab_size < len(SPECIAL_TOKENS) + len(alphabet):
        raise TokenizerError(
            f"vocab_size {vocab_size} is smaller than the 256 byte symbols + 2 special tokens"
        )
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        # every byte is a symbol, so no text is ever out of vocabulary
        initial_alphabet=alphabet,
        show_progress=False,
    )
    count = [0]

    def texts() -> Iterator[str]:
        for text in _texts(jsonl_paths):
            count[0] += bool(text.strip())
            yield text

    tok.train_from_iterator(texts(), trainer=trainer)
    if not count[0]:  # the trainer would return a tokenizer of bytes only, silently
        names = ", ".join(map(str, jsonl_paths))
        raise TokenizerError(f"{names}: no documents with text (empty corpus): nothing to train on")
    for i, special in enumerate(SPECIAL_TOKENS):
        assert tok.token_to_id(special) == i, f"{special} must be id {i}"
    with atomic_path(out_path) as tmp:
        tok.save(str(tmp), pretty=True)


def fetch_pretrained_tokenizer(repo_id: str, revision: str, out_path: str | os.PathLike) -> None:
    """Download `tokenizer.json` of a Hub repo (e.g. EleutherAI/gpt-neox-20b) to `out_path`."""
    from huggingface_hub import hf_hub_download

    try:
        cached = hf_hub_download(repo_id, "tokenizer.json", revision=revision)
    except (OSError, ValueError) as e:  # huggingface_hub's errors derive from these
        raise TokenizerError(f"{repo_id}@{revision}: cannot get tokenizer.json: {e}") from None
    load_tokenizer(cached)  # refuse a file that is not a tokenizer before it becomes an output
    with atomic_path(out_path) as tmp:
        shutil.copyfile(cached, tmp)


def load_tokenizer(path: str | os.PathLike) -> Tokenizer:
    path = Path(path)
    if not path.is_file():
        raise TokenizerError(f"{path}: no such tokenizer file")
    try:
        return Tokenizer.from_file(str(path))
    except Exception as e:  # tokenizers raises a bare Exception on a bad file
        raise TokenizerError(f"{path}: not a valid tokenizer.json: {e}") from None


def save_hf_tokenizer(
    tokenizer_path: str | os.PathLike, out_dir: str | os.PathLike, model_max_length: int
) -> None:
    """Write tokenizer.json, tokenizer_config.json, special_tokens_map.json into `out_dir`
    so that `AutoTokenizer.from_pretrained(out_dir)` loads it (as in Pythia's checkpoints)."""
    from transformers import PreTrainedTokenizerFast

    load_tokenizer(tokenizer_path)
    hf = PreTrainedTokenizerFast(
        tokenizer_file=str(tokenizer_path),
        bos_token=EOD_TOKEN,
        eos_token=EOD_TOKEN,
        unk_token=EOD_TOKEN,
        pad_token=PAD_TOKEN,
        model_max_length=model_max_length,
    )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # Save into a scratch directory, then rename each file into place: a checkpoint directory
    # never holds a half-written tokenizer file.
    with tempfile.TemporaryDirectory(prefix=".tokenizer.", dir=out_dir) as tmp:
        hf.save_pretrained(tmp)
        config_path = Path(tmp) / "tokenizer_config.json"
        config = json.loads(config_path.read_text())
        # transformers 5 writes its own backend class name, which 4.x cannot resolve;
        # PreTrainedTokenizerFast exists in both and uses tokenizer.json unchanged.
        config["tokenizer_class"] = "PreTrainedTokenizerFast"
        config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        # 5.x keeps the special tokens in tokenizer_config.json only; 4.x also reads this.
        special = {
            "bos_token": EOD_TOKEN,
            "eos_token": EOD_TOKEN,
            "unk_token": EOD_TOKEN,
            "pad_token": PAD_TOKEN,
        }
        (Path(tmp) / "special_tokens_map.json").write_text(
            json.dumps(special, indent=2, sort_keys=True) + "\n"
        )
        for name in sorted(os.listdir(tmp)):
            os.replace(Path(tmp) / name, out_dir / name)
