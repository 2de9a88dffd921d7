"""The pre-shuffled sample file equals GPT-NeoX v1.0's data order (independent re-derivations)."""

import math

import numpy as np
import pytest

from workflow.core.io import read_json
from workflow.data.indexed_dataset import MMapIndexedDataset, write_indexed_dataset
from workflow.data.pack_shuffle import (
    DataOrderError,
    build_doc_idx,
    build_sample_idx,
    build_shuffle_idx,
    index_map_names,
    num_epochs,
    pack_samples,
)


def _neox_sample_idx_loop(sizes, doc_idx, seq_length, epochs, tokens_per_epoch):
    """A line-by-line port of helpers.cpp build_sample_idx (the reference)."""
    n = (epochs * tokens_per_epoch - 1) // seq_length
    out = np.zeros((n + 1, 2), np.int32)
    d = off = 0
    for s in range(1, n + 1):
        remaining = seq_length + 1
        while remaining != 0:
            length = sizes[doc_idx[d]] - off
            remaining -= length
            if remaining <= 0:
                off += remaining + length - 1
                remaining = 0
            else:
                d += 1
                off = 0
        out[s] = (d, off)
    return out


def _documents(tmp_path, n=37, seed=0, empty=()):
    rng = np.random.default_rng(seed)
    docs = []
    for i in range(n):
        size = 0 if i in empty else int(rng.integers(1, 90))
        docs.append(rng.integers(2, 1000, size).tolist() + ([] if i in empty else [0]))
    write_indexed_dataset(tmp_path / "documents", docs, np.uint16)
    return docs


def _independent_rows(docs, seq_length, num_samples, seed):
    """Straightforward: one token stream of the epoch-shuffled documents, cut into windows
    [i*L, i*L + L + 1), taken in the order of a shuffled range (same RandomState stream)."""
    total = sum(map(len, docs))
    epochs = 1
    while (epochs * total - 1) // seq_length < num_samples:
        epochs += 1
    rng = np.random.RandomState(seed)
    order = np.array(list(range(len(docs))) * epochs, dtype=np.int32)
    rng.shuffle(order)
    stream = np.concatenate([np.asarray(docs[i], np.int64) for i in order])
    windows = (epochs * total - 1) // seq_length
    perm = np.arange(windows, dtype=np.uint32)
    rng.shuffle(perm)
    rows = [stream[i * seq_length : i * seq_length + seq_length + 1] for i in perm[:num_samples]]
    return np.stack(rows), epochs


@pytest.mark.parametrize("seq_length,num_samples", [(16, 50), (16, 300), (7, 1000), (64, 3)])
def test_pack_samples_matches_independent_implementation(tmp_path, seq_length, num_samples):
    docs = _documents(tmp_path)
    meta = pack_samples(
        tmp_path / "documents",
        tmp_path / "samples",
        seq_length=seq_length,
        num_samples=num_samples,
        seed=1234,
        global_batch_size=5,
    )
    expected, epochs = _independent_rows(docs, seq_length, num_samples, 1234)
    got = MMapIndexedDataset(tmp_path / "samples")
    assert got.dtype == np.uint16 and len(got) == num_samples
    np.testing.assert_array_equal(got.get_rows(0, num_samples), expected)
    assert meta["epochs"] == epochs
    assert meta == read_json(tmp_path / "samples.json")
    assert meta["global_batch_size"] == 5
    assert meta["tokens_per_epoch"] == sum(map(len, docs))
    assert meta["samples_per_epoch"] == pytest.approx(meta["tokens_per_epoch"] / seq_length)


def test_index_maps_under_neox_names(tmp_path):
    _documents(tmp_path)
    meta = pack_samples(
        tmp_path / "documents",
        tmp_path / "out" / "samples",
        seq_length=16,
        num_samples=100,
        seed=1234,
        index_dir=tmp_path / "maps",
        index_name_prefix="pile_text_document",
    )
    stem = "pile_text_document_train_0_indexmap_100ns_16sl_1234s"
    doc = np.load(tmp_path / "maps" / f"{stem}_doc_idx.npy")
    sample = np.load(tmp_path / "maps" / f"{stem}_sample_idx.npy")
    shuffle = np.load(tmp_path / "maps" / f"{stem}_shuffle_idx.npy")
    assert (doc.dtype, sample.dtype, shuffle.dtype) == (np.int32, np.int32, np.uint32)
    assert len(doc) == 37 * meta["epochs"] and sample.shape == (meta["samples_available"] + 1, 2)
    assert sorted(shuffle.tolist()) == list(range(meta["samples_available"]))
    assert index_map_names("x", 147164160, 2048, 1234)["doc"] == (
        "x_train_0_indexmap_147164160ns_2048sl_1234s_doc_idx.npy"  # Pythia's published name
    )


def test_sample_idx_equals_neox_loop():
    rng = np.random.default_rng(5)
    for trial in range(20):
        sizes = rng.integers(0 if trial % 2 else 1, 40, int(rng.integers(1, 30))).astype(np.int32)
        sizes[0] = max(sizes[0], 0 if trial % 4 == 1 else 1)
        if sizes.sum() < 2:
            continue
        seq_length = int(rng.integers(2, 50))
        tpe = int(sizes.sum())
        epochs = int(rng.integers(1, 4))
        doc_idx = build_doc_idx(
            np.arange(len(sizes), dtype=np.int32), epochs, np.random.RandomState(trial)
        )
        np.testing.assert_array_equal(
            build_sample_idx(sizes, doc_idx, seq_length, epochs, tpe),
            _neox_sample_idx_loop(sizes, doc_idx, seq_length, epochs, tpe),
        )


def test_num_epochs():
    assert num_epochs(1000, 10, 99) == 1  # (1000 - 1) // 10 = 99
    assert num_epochs(1000, 10, 100) == 2
    assert num_epochs(100, 64, 772) == 495
    # Pythia: ceil(143000 * 1024 * 1.005) samples of 2049 tokens, 334B-token standard Pile
    assert math.ceil(143000 * 1024 * 1.005) == 147164160
    assert num_epochs(334_000_000_000, 2048, 147164160) == 1
    assert num_epochs(207_000_000_000, 2048, 147164160) == 2


def test_doc_and_shuffle_idx_use_one_rng_stream():
    rng = np.random.RandomState(1234)
    doc = build_doc_idx(np.arange(5, dtype=np.int32), 3, rng)
    assert doc.dtype == np.int32 and sorted(doc.tolist()) == sorted(list(range(5)) * 3)
    shuffle = build_shuffle_idx(10, 10, rng)
    ref = np.random.RandomState(1234)
    ref_doc = np.repeat(np.arange(5)[None], 3, 0).reshape(-1).astype(np.int32)
    ref.shuffle(ref_doc)
    ref_shuffle = np.arange(10, dtype=np.uint32)
    ref.shuffle(ref_shuffle)
    np.testing.assert_array_equal(doc, ref_doc)
    np.testing.assert_array_equal(shuffle, ref_shuffle)
    assert shuffle.dtype == np.uint32


def test_deterministic_and_fingerprinted(tmp_path):
    _documents(tmp_path)
    kw = dict(seq_length=16, num_samples=60, seed=7)
    a = pack_samples(tmp_path / "documents", tmp_path / "a", **kw)
    b = pack_samples(tmp_path / "documents", tmp_path / "b", **kw)
    assert (tmp_path / "a.bin").read_bytes() == (tmp_path / "b.bin").read_bytes()
    assert a["documents_fingerprint"] == b["documents_fingerprint"]
    c = pack_samples(tmp_path / "documents", tmp_path / "c", **{**kw, "seed": 8})
    assert (tmp_path / "c.bin").read_bytes() != (tmp_path / "a.bin").read_bytes()
    assert c["fingerprint"] != a["fingerprint"]


def test_empty_documents_in_the_data(tmp_path):
    docs = _documents(tmp_path, n=15, empty={0, 4, 5})
    pack_samples(tmp_path / "documents", tmp_path / "s", seq_length=8, num_samples=90, seed=3)
    expected, _ = _independent_rows(docs, 8, 90, 3)
    np.testing.assert_array_equal(MMapIndexedDataset(tmp_path / "s").get_rows(0, 90), expected)


def test_no_tokens_is_a_clear_error(tmp_path):
    write_indexed_dataset(tmp_path / "documents", [[], []])
    with pytest.raises(DataOrderError, match=r"documents\.idx: no tokens"):
        pack_samples(tmp_path / "documents", tmp_path / "s", seq_length=8, num_samples=4, seed=1)
    assert not (tmp_path / "s.bin").exists()
