"""Document tokenization (rule `tokenize`): the corpus into a Megatron MMapIndexedDataset.

Tokenization is deterministic in the number of workers (documents are split into ordered
chunks and the chunks' results are written in order): Pythia's issue #76 is that re-running
GPT-NeoX's multiprocess preprocessing does not reproduce the released document order.
"""

from __future__ import annotations

import itertools
import logging
import multiprocessing
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from workflow.data.indexed_dataset import IndexedDatasetWriter, dtype_for_vocab
from workflow.data.jsonl import CorpusError, iter_lines_in_range, line_number_at, parse_jsonl_line
from workflow.data.shards import CorpusShard, shard_lines
from workflow.data.tokenizer import EOD_ID, EOD_TOKEN, TokenizerError, load_tokenizer

log = logging.getLogger(__name__)

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


def _chunks(shard: CorpusShard, batch_docs: int) -> Iterator[tuple[str, list, bool]]:
    chunk: list[tuple[int, bytes]] = []
    for item in shard_lines(shard):
        chunk.append(item)
        if len(chunk) == batch_docs:
            yield shard.path, chunk, shard.by_offset
            chunk = []
    if chunk:
        yield shard.path, chunk, shard.by_offset


def _range_tasks(shard: CorpusShard) -> list[tuple[str, int, int]] | None:
    """Byte-range tasks the workers read themselves: a plain file with no held-out tail."""
    if shard.path.endswith(".zst") or shard.heldout_tail:
        return None
    lo, hi = shard.byte_range() or (0, Path(shard.path).stat().st_size)
    return [(shard.path, a, min(a + _RANGE_BYTES, hi)) for a in range(lo, hi, _RANGE_BYTES)]


def _check_tokenizer(tokenizer: Tokenizer, tokenizer_path, dtype, append_eod: bool):
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
    return vocab, dtype


def tokenize_documents(
    jsonl_path: str | os.PathLike,
    tokenizer_path: str | os.PathLike,
    out_prefix: str | os.PathLike,
    **kwargs,
) -> dict:
    """Tokenize every non-empty document of `jsonl_path` into `<out_prefix>.bin/.idx` (one job
    over the whole file; see `tokenize_shard`)."""
    if not Path(jsonl_path).is_file():
        raise CorpusError(f"{jsonl_path}: no such file")
    return tokenize_shard(
        CorpusShard(str(jsonl_path)), tokenizer_path, out_prefix, allow_empty=False, **kwargs
    )


def tokenize_shard(
    shard: CorpusShard,
    tokenizer_path: str | os.PathLike,
    out_prefix: str | os.PathLike,
    *,
    append_eod: bool = True,
    workers: int = 1,
    batch_docs: int = 256,
    dtype: str | np.dtype | None = None,
    allow_empty: bool = True,
) -> dict:
    """Tokenize every non-empty document of one corpus shard into `<out_prefix>.bin/.idx`.

    One entry per document, in file order, with EOD (id 0) appended when `append_eod` (GPT-NeoX
    `--append-eod`). Empty documents are skipped by `parse_jsonl_line`, exactly as the dedup
    signatures skip them, so entry i here is document i there. The token dtype is uint16 when
    the vocabulary fits (as GPT-NeoX's best_fitting_dtype), unless `dtype` is given. The shards'
    files concatenated (`tokenize_merge`) are byte for byte one job's over the whole corpus.
    """
    tokenizer = load_tokenizer(tokenizer_path)
    vocab, dtype = _check_tokenizer(tokenizer, tokenizer_path, dtype, append_eod)
    counts = {"documents": 0, "tokens": 0, "empty_skipped": 0}
    eod = (EOD_ID,) if append_eod else ()
    with IndexedDatasetWriter(out_prefix, dtype) as writer:
        for flat, sizes, empty in _encoded(shard, tokenizer_path, eod, dtype, workers, batch_docs):
            writer.add_documents(flat, sizes)
            counts["empty_skipped"] += empty
            counts["documents"] += len(sizes)
            counts["tokens"] += len(flat)
        if not counts["documents"] and not allow_empty:  # raised inside: no files left behind
            raise CorpusError(f"{shard.path}: no documents with text (empty corpus)")
    log.info("%s: %d documents, %d tokens", out_prefix, counts["documents"], counts["tokens"])
    return {
        **counts,
        "eod_appended": counts["documents"] if append_eod else 0,
        "vocab_size": vocab,
        "dtype": dtype.name,
    }


def _encoded(
    shard: CorpusShard, tokenizer_path, eod: tuple, dtype: np.dtype, workers: int, batch_docs: int
) -> Iterator[Encoded]:
    """The shard's encoded chunks, in order, from `workers` processes."""
    chunks = _chunks(shard, batch_docs)
    if workers <= 1:
        _init_worker(str(tokenizer_path), True, eod, dtype.name)
        yield from map(_encode_chunk, chunks)
        return
    # fork, not spawn: spawn re-runs the parent's __main__, which under Snakemake's `script:` is
    # the rule script itself. The parent has not encoded anything, so no tokenizer thread pool
    # is inherited. imap keeps the chunks in order.
    ctx = multiprocessing.get_context("fork")
    initargs = (str(tokenizer_path), False, eod, dtype.name)
    pool = ctx.Pool(workers, initializer=_init_worker, initargs=initargs)
    try:
        tasks = _range_tasks(shard)
        if tasks is None:  # compressed, or a tail held out: the parent reads the lines
            yield from pool.imap(_encode_chunk, chunks)
        else:  # plain: the workers read their own byte ranges, the parent only writes
            yield from pool.imap(_encode_range, tasks)
    finally:
        pool.terminate()
        pool.join()
