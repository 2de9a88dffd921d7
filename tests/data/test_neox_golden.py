"""Byte compatibility with GPT-NeoX v1.0, against files NeoX itself wrote (tests/fixtures/neox)."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from workflow.data.indexed_dataset import IndexedDatasetWriter, MMapIndexedDataset, dtype_for_vocab
from workflow.data.pack_shuffle import index_map_names, pack_samples

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "neox"


@pytest.mark.parametrize("vocab", [50304, 100000])
def test_neox_written_dataset_reads_and_rewrites_byte_identical(vocab, tmp_path):
    prefix = GOLDEN / f"neox_v1.0_vocab{vocab}"
    docs = json.loads(Path(f"{prefix}.json").read_text())
    items = [item for doc in docs for item in doc]
    theirs = MMapIndexedDataset(prefix)
    dtype = dtype_for_vocab(vocab)
    assert theirs.dtype == dtype == (np.uint16 if vocab < 65500 else np.int32)
    assert [x.tolist() for x in theirs] == items
    assert theirs.doc_idx.tolist() == np.cumsum([0] + [len(d) for d in docs]).tolist()
    with IndexedDatasetWriter(tmp_path / "ours", dtype) as writer:
        for doc in docs:
            for item in doc:
                writer.add_item(np.asarray(item, dtype=dtype))
            writer.end_document()
    for ext in (".bin", ".idx"):
        assert (tmp_path / f"ours{ext}").read_bytes() == Path(f"{prefix}{ext}").read_bytes()


def test_index_maps_are_neox_v1_0s_bytes(tmp_path):
    for ext in (".bin", ".idx"):
        shutil.copy(GOLDEN / "order" / f"docs{ext}", tmp_path / f"docs{ext}")
    meta = pack_samples(
        tmp_path / "docs", tmp_path / "samples", seq_length=32, num_samples=500, seed=1234
    )
    assert meta["epochs"] == 2
    names = index_map_names("docs", 500, 32, 1234)
    for kind in ("doc", "sample", "shuffle"):
        ours = (tmp_path / names[kind]).read_bytes()
        assert ours == (GOLDEN / "order" / names[kind]).read_bytes(), kind
    # and the rows: NeoX's GPT2Dataset[k] is window shuffle_idx[k] of the packed documents
    docs = MMapIndexedDataset(tmp_path / "docs")
    stream_doc = np.load(GOLDEN / "order" / names["doc"])
    sample_idx = np.load(GOLDEN / "order" / names["sample"])
    shuffle = np.load(GOLDEN / "order" / names["shuffle"])
    rows = MMapIndexedDataset(tmp_path / "samples")
    for k in (0, 1, 250, 499):
        w = int(shuffle[k])
        (d0, o0), (d1, o1) = sample_idx[w], sample_idx[w + 1]
        if d0 == d1:
            want = docs[int(stream_doc[d0])][o0 : o1 + 1]
        else:
            parts = [docs[int(stream_doc[d0])][o0:]]
            parts += [docs[int(stream_doc[i])] for i in range(d0 + 1, d1)]
            parts.append(docs[int(stream_doc[d1])][: o1 + 1])
            want = np.concatenate(parts)
        assert rows[k].tolist() == want.tolist(), k
