"""Raw Pile-style sources (config `data.source: pile_jsonl`, rule `download`): one shard each.

Downloads of the Pile's ~15 GB shards fail midway; a retry resumes from the partial
`<out>.part` with an HTTP Range request instead of starting over.
"""

from __future__ import annotations

import http.client
import logging
import os
import shutil
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

from workflow.core.io import atomic_path, sha256_file

log = logging.getLogger(__name__)


class DownloadError(RuntimeError):
    """A failed or corrupt download; the message names the URL and the file."""


def _is_url(src: str) -> bool:
    return urlparse(src).scheme in ("http", "https")


def download(
    url_or_path: str | os.PathLike,
    out_path: str | os.PathLike,
    sha256: str | None = None,
    chunk: int = 1 << 20,
) -> dict:
    """Copy a local file or stream an http(s) URL to `out_path`, resuming a partial download.

    The bytes go to `<out_path>.part` and are renamed into place only when complete and, if
    `sha256` is given, verified; a checksum mismatch deletes the .part (its bytes are wrong, so
    resuming from it would never succeed).
    """
    src = str(url_or_path)
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not _is_url(src):
        local = Path(urlparse(src).path if src.startswith("file://") else src)
        if not local.is_file():
            raise DownloadError(f"{local}: no such file")
        with atomic_path(out) as tmp:
            shutil.copyfile(local, tmp)
            _verify(tmp, sha256, src, delete=True)
        return {
            "url": src,
            "path": str(out),
            "bytes": out.stat().st_size,
            "sha256": sha256_file(out),
        }

    part = Path(str(out) + ".part")
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(src)
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=60)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # the .part is already complete
            response = None
        else:
            raise DownloadError(f"{src}: HTTP {e.code} {e.reason}") from None
    except urllib.error.URLError as e:
        raise DownloadError(f"{src}: {e.reason}") from None
    if response is not None:
        with response:
            resumed = have and response.status == 206
            if have and not resumed:
                log.info("%s: server ignored the Range request; downloading from the start", src)
            try:
                with open(part, "ab" if resumed else "wb") as f:
                    while block := response.read(chunk):
                        f.write(block)
            except (http.client.HTTPException, OSError) as e:
                raise DownloadError(
                    f"{src}: download interrupted ({e!r}); {part} is kept, run again to resume"
                ) from None
            expected = response.headers.get("Content-Length")
            got = part.stat().st_size - (have if resumed else 0)
            if expected is not None and got != int(expected):
                raise DownloadError(
                    f"{src}: connection closed after {got} of {expected} bytes; {part} is kept, "
                    "run again to resume"
                )
    digest = _verify(part, sha256, src, delete=True)
    os.replace(part, out)
    return {"url": src, "path": str(out), "bytes": out.stat().st_size, "sha256": digest}


def _verify(path: Path, sha256: str | None, src: str, delete: bool) -> str:
    digest = sha256_file(path)
    if sha256 is not None and digest != sha256.lower():
        if delete:
            path.unlink(missing_ok=True)
        raise DownloadError(
            f"{src}: sha256 mismatch: expected {sha256}, got {digest}; the partial file was "
            "deleted, run again to download it afresh"
        )
    return digest
