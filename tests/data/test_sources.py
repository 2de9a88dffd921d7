"""Shard download (with resume and checksum) against a local HTTP server, and the held-out split."""

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import zstandard

from workflow.data.download import DownloadError, download
from workflow.data.heldout import split_heldout
from workflow.data.jsonl import CorpusError, read_jsonl

PAYLOAD = bytes(range(256)) * 4000  # ~1 MB


class _Handler(BaseHTTPRequestHandler):
    """Serves PAYLOAD at /shard, honouring Range unless the server says otherwise."""

    def do_GET(self):  # noqa: N802 (http.server's naming)
        srv = self.server
        srv.requests.append(dict(self.headers))
        if self.path != "/shard":
            self.send_error(404)
            return
        start = 0
        rng = self.headers.get("Range")
        if rng and srv.honour_range:
            start = int(rng.removeprefix("bytes=").rstrip("-"))
            if start >= len(PAYLOAD):
                self.send_error(416)
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}")
        else:
            self.send_response(200)
        body = PAYLOAD[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if srv.cut_after is not None:  # drop the connection midway
            self.wfile.write(body[: srv.cut_after])
            self.wfile.flush()
            self.connection.shutdown(2)
            return
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.requests, srv.honour_range, srv.cut_after = [], True, None
    thread = threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield srv, f"http://127.0.0.1:{srv.server_address[1]}/shard"
    srv.shutdown()
    srv.server_close()


SHA = hashlib.sha256(PAYLOAD).hexdigest()


def test_download_whole(server, tmp_path):
    srv, url = server
    info = download(url, tmp_path / "s.bin", sha256=SHA, chunk=4096)
    assert (tmp_path / "s.bin").read_bytes() == PAYLOAD
    assert info == {
        "url": url,
        "path": str(tmp_path / "s.bin"),
        "bytes": len(PAYLOAD),
        "sha256": SHA,
    }
    assert not (tmp_path / "s.bin.part").exists()
    assert "Range" not in srv.requests[0]


def test_download_resumes_a_partial_file(server, tmp_path):
    srv, url = server
    (tmp_path / "s.bin.part").write_bytes(PAYLOAD[:300_000])
    download(url, tmp_path / "s.bin", sha256=SHA)
    assert srv.requests[-1]["Range"] == "bytes=300000-"
    assert (tmp_path / "s.bin").read_bytes() == PAYLOAD


def test_download_interrupted_then_resumed(server, tmp_path):
    srv, url = server
    srv.cut_after = 100_000
    with pytest.raises(DownloadError, match=r"s\.bin\.part is kept, run again to resume"):
        download(url, tmp_path / "s.bin", sha256=SHA)
    assert not (tmp_path / "s.bin").exists()
    assert (tmp_path / "s.bin.part").stat().st_size == 100_000
    srv.cut_after = None
    download(url, tmp_path / "s.bin", sha256=SHA)
    assert srv.requests[-1]["Range"] == "bytes=100000-"
    assert (tmp_path / "s.bin").read_bytes() == PAYLOAD


def test_download_complete_part_and_server_without_range(server, tmp_path):
    srv, url = server
    (tmp_path / "a.part").write_bytes(PAYLOAD)  # 416 from the server: already complete
    download(url, tmp_path / "a", sha256=SHA)
    assert (tmp_path / "a").read_bytes() == PAYLOAD
    srv.honour_range = False  # 200 with the whole body: start over, not append
    (tmp_path / "b.part").write_bytes(PAYLOAD[:5000])
    download(url, tmp_path / "b", sha256=SHA)
    assert (tmp_path / "b").read_bytes() == PAYLOAD


def test_download_checksum_mismatch(server, tmp_path):
    _, url = server
    with pytest.raises(DownloadError, match="sha256 mismatch: expected 00"):
        download(url, tmp_path / "s.bin", sha256="00" * 32)
    assert list(tmp_path.iterdir()) == []


def test_download_http_error(server, tmp_path):
    _, url = server
    with pytest.raises(DownloadError, match="HTTP 404"):
        download(url.replace("/shard", "/nope"), tmp_path / "s.bin")


def test_download_local_path(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(PAYLOAD)
    info = download(str(src), tmp_path / "out" / "s.bin", sha256=SHA)
    assert info["bytes"] == len(PAYLOAD) and (tmp_path / "out" / "s.bin").read_bytes() == PAYLOAD
    with pytest.raises(DownloadError, match="sha256 mismatch"):
        download(src, tmp_path / "out" / "t.bin", sha256="ab" * 32)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["s.bin"]
    with pytest.raises(DownloadError, match="no such file"):
        download(tmp_path / "missing", tmp_path / "x")


def _docs(path, texts, zst=False):
    data = "".join(json.dumps({"text": t, "meta": {"pile_set_name": "X"}}) + "\n" for t in texts)
    if zst:
        path.write_bytes(zstandard.ZstdCompressor().compress(data.encode()))
    else:
        path.write_text(data)
    return path


def test_heldout_is_the_last_documents_of_the_last_shard(tmp_path):
    # no concatenated copy: the tokenize jobs of that shard leave the same documents out
    # (tests/test_tokenize_shards.py), so the split is by document position alone
    b = _docs(tmp_path / "01.jsonl.zst", ["b0", "", "b1", "b2"], zst=True)
    stats = split_heldout(b, tmp_path / "heldout.jsonl", 2)
    heldout = [r for _, r in read_jsonl(tmp_path / "heldout.jsonl")]
    assert [r["text"] for r in heldout] == ["b1", "b2"]
    assert heldout[0]["meta"] == {"pile_set_name": "X"}
    assert stats == {
        "shard": str(b),
        "shard_documents": 3,
        "train_documents_of_shard": 1,
        "heldout_documents": 2,
        "empty_skipped": 1,
    }


def test_heldout_too_few_documents(tmp_path):
    a = _docs(tmp_path / "00.jsonl", ["x", "y"])
    with pytest.raises(CorpusError, match="need more than the 2 held out"):
        split_heldout(a, tmp_path / "heldout.jsonl", 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["00.jsonl"]
