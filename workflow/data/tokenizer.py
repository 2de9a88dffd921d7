"""Tokenizer training, loading, and document tokenization into an MMapIndexedDataset.

Pythia uses the GPT-NeoX-20B tokenizer: byte-level BPE, NFC normalizer, no prefix space,
`<|endoftext|>` = 0 (also the EOD token appended to every document) and `<|padding|>` = 1.
`train_bpe` builds a tokenizer of exactly that shape on our corpus; `fetch_pretrained_tokenizer`
brings the real one for the paper suite.

Tokenization is deterministic in the number of workers (documents are split into ordered
chunks and the chunks' results are written in order): Pythia's issue #76 is that re-running
GPT-NeoX's multiprocess preprocessing does not reproduce the released document order.
"""

from __future__ import annotations

import itertools
import json
import logging
import multiprocessing
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
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
from workflow.data.corpus import (
    CorpusError,
    iter_jsonl_lines,
    iter_lines_in_range,
    line_number_at,
    parse_jsonl_line,
    read_jsonl,
)
from workflow.data.indexed_dataset import IndexedDatasetWriter, dtype_for_vocab

log = logging.getLogger(__name__)

EOD_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|padding|>"
SPECIAL_TOKENS = [EOD_TOKEN, PAD_TOKEN]  # ids 0 and 1, as in GPT-NeoX-20B
EOD_ID = 0


class TokenizerError(ValueError):
    """A missing or unusable tokenizer file, or a vocabulary that does not fit the token dtype."""


def _texts(jsonl_paths: Iterable[str | os.PathLike]) -> Iterator[str]:
    for path in jsonl_paths:
        for _, record in read_jsonl(path):
            yield record["text"]


def train_bpe(
    jsonl_paths: Iterable[str | os.PathLike] | str | os.PathLike,
    vocab_size: int,
    out_path: str | os.PathLike,
) -> None:
    """Train a GPT-NeoX-20B-shaped byte-level BPE on the documents; write tokenizer.json."""
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


# --------------------------------------------------------------------------------------------
# Tokenization

_worker_tokenizer: Tokenizer | None = None
_worker_suffix: list[int] = []
_worker_dtype: np.dtype = np.dtype(np.uint16)


def _init_worker(
    tokenizer_path: str, parallel: bool = True, suffix: tuple[int, ...] = (), dtype: str = "uint16"
) -> None:
    global _worker_tokenizer, _worker_suffix, _worker_dtype
    if not parallel:
        # one process per core already: no Rust thread pool inside each worker
        os.environ["TOKENIZERS_PARALLELISM"] = "false"
    _worker_tokenizer = load_tokenizer(tokenizer_path)
    _worker_suffix = list(suffix)
    _worker_dtype = np.dtype(dtype)


Encoded = tuple[np.ndarray, np.ndarray, int]


def _encode_chunk(chunk: tuple[str, list[tuple[int, bytes]], bool]) -> Encoded:
    """Parse and encode a chunk of raw jsonl lines: (the documents' ids, each followed by the
    suffix, concatenated; each one's length; empty documents skipped).

    A chunk's lines carry line numbers, or byte offsets (`by_offset`) when a worker read them
    itself from a byte range; an error then names the line, counted only on failure. The
    workers parse the JSON too and return arrays rather than lists of ints: the parent only
    hands out work and writes arrays, so it is not the bottleneck on 2 cores."""
    assert _worker_tokenizer is not None
    path, lines, by_offset = chunk
    texts = []
    skipped = 0
    for where, raw in lines:
        try:
            record = parse_jsonl_line(path, where, raw)
        except CorpusError:
            if by_offset:
                parse_jsonl_line(path, line_number_at(path, where), raw)
            raise
        if record is None:
            skipped += bool(raw.strip())
        else:
            texts.append(record["text"])
    encodings = _worker_tokenizer.encode_batch(texts, add_special_tokens=False)
    suffix = _worker_suffix
    sizes = np.fromiter((len(e.ids) + len(suffix) for e in encodings), np.int64, len(encodings))
    flat = np.fromiter(
        itertools.chain.from_iterable(
            itertools.chain(e.ids, suffix) if suffix else e.ids for e in encodings
        ),
        _worker_dtype,
        int(sizes.sum()),
    )
    return flat, sizes, skipped


def _encode_range(task: tuple[str, int, int]) -> tuple[np.ndarray, np.ndarray, int]:
    """A worker reads the lines starting in its byte range of a plain .jsonl itself."""
    path, lo, hi = task
    return _encode_chunk((path, list(iter_lines_in_range(path, lo, hi)), True))


_RANGE_BYTES = 1 << 20  # jsonl bytes per task: small enough to balance, big enough to batch


def _chunks(jsonl_path, batch_docs: int) -> Iterator[tuple[str, list[tuple[int, bytes]], bool]]:
    chunk: list[tuple[int, bytes]] = []
    for item in iter_jsonl_lines(jsonl_path):
        chunk.append(item)
        if len(chunk) == batch_docs:
            yield str(jsonl_path), chunk, False
            chunk = []
    if chunk:
        yield str(jsonl_path), chunk, False


def tokenize_documents(
    jsonl_path: str | os.PathLike,
    tokenizer_path: str | os.PathLike,
    out_prefix: str | os.PathLike,
    *,
    append_eod: bool = True,
    workers: int = 1,
    batch_docs: int = 256,
    dtype: str | np.dtype | None = None,
) -> dict:
    """Tokenize every non-empty document of `jsonl_path` into `<out_prefix>.bin/.idx`.

    One entry per document, in file order, with EOD (id 0) appended when `append_eod` (GPT-NeoX
    `--append-eod`). Empty documents are skipped by `parse_jsonl_line`, exactly as `deduplicate`
    skips them, so entry i here is document i there. The token dtype is uint16 when the
    vocabulary fits (as GPT-NeoX's best_fitting_dtype), unless `dtype` is given.
    """
    if not Path(jsonl_path).is_file():
        raise CorpusError(f"{jsonl_path}: no such file")
    tokenizer = load_tokenizer(tokenizer_path)
    vocab = tokenizer.get_vocab_size(with_added_tokens=True)
    dtype = dtype_for_vocab(vocab) if dtype is None else np.dtype(dtype)
    if dtype.kind not in "iu" or vocab - 1 > np.iinfo(dtype).max:
        raise TokenizerError(
            f"{tokenizer_path}: vocabulary of {vocab} tokens does not fit token dtype {dtype}"
        )
    if append_eod and tokenizer.id_to_token(EOD_ID) != EOD_TOKEN:
        raise TokenizerError(
            f"{tokenizer_path}: id {EOD_ID} is {tokenizer.id_to_token(EOD_ID)!r}, not "
            f"{EOD_TOKEN!r}; cannot append EOD"
        )
    skipped = documents = tokens = 0
    eod = [EOD_ID] if append_eod else []
    with IndexedDatasetWriter(out_prefix, dtype) as writer:
        chunks = _chunks(jsonl_path, batch_docs)
        initargs = (str(tokenizer_path), False, tuple(eod), dtype.name)
        if workers <= 1:
            _init_worker(str(tokenizer_path), True, *initargs[2:])
            results: Iterable[tuple[np.ndarray, np.ndarray, int]] = map(_encode_chunk, chunks)
            pool = None
        else:
            # fork, not spawn: spawn re-runs the parent's __main__, which under Snakemake's
            # `script:` is the rule script itself. The parent has not encoded anything, so no
            # tokenizer thread pool is inherited. imap keeps the chunks in order.
            ctx = multiprocessing.get_context("fork")
            pool = ctx.Pool(workers, initializer=_init_worker, initargs=initargs)
            path = Path(jsonl_path)
            if path.suffix == ".zst":  # compressed: the parent reads the lines
                results = pool.imap(_encode_chunk, chunks)
            else:  # plain: the workers read their own byte ranges, the parent only writes
                size = path.stat().st_size
                tasks = [
                    (str(path), lo, min(lo + _RANGE_BYTES, size))
                    for lo in range(0, size, _RANGE_BYTES)
                ]
                results = pool.imap(_encode_range, tasks)
        try:
            for flat, sizes, empty in results:
                writer.add_documents(flat, sizes)
                skipped += empty
                documents += len(sizes)
                tokens += len(flat)
        finally:
            if pool is not None:
                pool.terminate()
                pool.join()
        if not documents:  # raised inside the writer: no empty .bin/.idx is left behind
            raise CorpusError(f"{jsonl_path}: no documents with text (empty corpus)")
    log.info("%s: %d documents, %d tokens", out_prefix, documents, tokens)
    return {
        "documents": documents,
        "tokens": tokens,
        "empty_skipped": skipped,
        "eod_appended": documents if append_eod else 0,
        "vocab_size": vocab,
        "dtype": dtype.name,
    }


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
