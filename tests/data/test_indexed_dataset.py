"""MMapIndexedDataset: round trip and the errors a damaged file gives."""

import numpy as np
import pytest

from workflow.data.indexed_dataset import (
    IndexedDatasetError,
    IndexedDatasetWriter,
    MMapIndexedDataset,
    dtype_for_vocab,
    write_indexed_dataset,
)


def test_round_trip(tmp_path):
    seqs = [[5, 6, 7], [], [1], list(range(100, 150))]
    write_indexed_dataset(tmp_path / "d", seqs, np.uint16)
    ds = MMapIndexedDataset(tmp_path / "d")
    assert len(ds) == 4 and ds.dtype == np.uint16
    assert [x.tolist() for x in ds] == seqs
    assert ds.sizes.tolist() == [3, 0, 1, 50]
    assert ds.doc_idx.tolist() == [0, 1, 2, 3, 4]
    assert ds.num_tokens == 54
    assert ds.get(3, offset=10, length=5).tolist() == [110, 111, 112, 113, 114]
    assert ds.get(0, offset=1).tolist() == [6, 7]


def test_fixed_length_rows(tmp_path):
    rows = np.arange(30, dtype=np.int32).reshape(6, 5)
    write_indexed_dataset(tmp_path / "s", rows, np.int32)
    ds = MMapIndexedDataset(tmp_path / "s.bin")  # a path with the extension works too
    np.testing.assert_array_equal(ds.get_rows(1, 4), rows[1:4])
    assert ds.get_rows(2, 2).shape == (0, 5)
    with pytest.raises(IndexError, match="out of range"):
        ds.get_rows(4, 7)


def test_dtype_for_vocab():
    assert dtype_for_vocab(50277) == np.uint16  # GPT-NeoX-20B
    assert dtype_for_vocab(70000) == np.int32


def test_truncated_bin(tmp_path):
    write_indexed_dataset(tmp_path / "d", [[1, 2, 3], [4, 5]])
    b = tmp_path / "d.bin"
    b.write_bytes(b.read_bytes()[:-2])
    with pytest.raises(IndexedDatasetError, match=r"d\.bin.*truncated"):
        MMapIndexedDataset(tmp_path / "d")


def test_wrong_magic(tmp_path):
    write_indexed_dataset(tmp_path / "d", [[1, 2, 3]])
    idx = tmp_path / "d.idx"
    idx.write_bytes(b"NOTANIDX\x00" + idx.read_bytes()[9:])
    with pytest.raises(IndexedDatasetError, match=r"d\.idx.*bad magic at offset 0"):
        MMapIndexedDataset(tmp_path / "d")


def test_truncated_idx(tmp_path):
    write_indexed_dataset(tmp_path / "d", [[1, 2, 3], [4]])
    idx = tmp_path / "d.idx"
    idx.write_bytes(idx.read_bytes()[:-8])
    with pytest.raises(IndexedDatasetError, match=r"d\.idx.*truncated"):
        MMapIndexedDataset(tmp_path / "d")


def test_missing_file(tmp_path):
    with pytest.raises(IndexedDatasetError, match="no such file"):
        MMapIndexedDataset(tmp_path / "nope")


def test_token_too_large_leaves_no_output(tmp_path):
    with pytest.raises(IndexedDatasetError, match="does not fit uint16"):
        with IndexedDatasetWriter(tmp_path / "d", np.uint16) as w:
            w.add_document([1, 2])
            w.add_document([70000])
    assert list(tmp_path.iterdir()) == []


def test_reading_past_a_sequence_is_refused(tmp_path):
    write_indexed_dataset(tmp_path / "d", [[1, 2, 3], [4, 5]])
    ds = MMapIndexedDataset(tmp_path / "d")
    assert ds.get(0, offset=1, length=2).tolist() == [2, 3]
    with pytest.raises(IndexError, match="out of range"):
        ds.get(0, offset=2, length=2)  # would run into sequence 1


def test_rewrite_replaces_the_pair_and_leaves_no_temp_files(tmp_path):
    write_indexed_dataset(tmp_path / "d", [[1, 2, 3]])
    write_indexed_dataset(tmp_path / "d", [[7], [8, 9]])
    assert [x.tolist() for x in MMapIndexedDataset(tmp_path / "d")] == [[7], [8, 9]]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.bin", "d.idx"]
