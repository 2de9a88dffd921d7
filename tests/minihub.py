"""minihub: a stdlib-only TEST DOUBLE of the Hugging Face Hub HTTP API, backed by bare git repos.

Not a Hub. It covers what huggingface_hub 2.4.0 (HfApi.create_repo / create_branch /
upload_folder(revision=...) / list_repo_refs / model_info / list_repo_files / hf_hub_download /
snapshot_download), transformers' from_pretrained(repo, revision=...) and lm-eval need, so tests
run the real client code paths end to end on loopback. Every file is accepted as a "regular"
(inline base64) upload, so the LFS/Xet upload path, auth, rate limits and the Hub's naming rules
are NOT exercised. Downloads do speak the Hub's LFS metadata (files `.gitattributes` marks
`filter=lfs` get `lfs.oid` = sha256 in paths-info and `X-Linked-Etag` on resolve), HTTP Range
requests (206) and, for tests, a one-shot dropped connection (`cut_next_download`).
Storage: ROOT/<type>s/<org>/<name> bare git repos with one branch per revision (the layout
olah's `mirrors-path` serves). Adapted from reference/eval-offline.md Appendix A.

In tests: ``with MiniHub(root) as hub: HfApi(endpoint=hub.url)``. CLI: python minihub.py ROOT PORT
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlparse

ENV = dict(
    os.environ,
    GIT_AUTHOR_NAME="minihub",
    GIT_AUTHOR_EMAIL="minihub@localhost",
    GIT_COMMITTER_NAME="minihub",
    GIT_COMMITTER_EMAIL="minihub@localhost",
)


def git(repo, *args, input=None, env=None):
    r = subprocess.run(["git", "-C", repo, *args], input=input, capture_output=True, env=env or ENV)
    if r.returncode:
        raise RuntimeError(r.stderr.decode())
    return r.stdout


def resolve(repo, rev):
    try:
        return git(repo, "rev-parse", "--verify", "-q", f"{rev}^{{commit}}").decode().strip()
    except RuntimeError:
        return None


def ls_tree(repo, sha, path="", recursive=True):
    args = ["ls-tree", "-l", "-z"] + (["-r"] if recursive else []) + [sha]
    if path:
        args.append(path.rstrip("/") + "/")
    out = []
    for ent in git(repo, *args).decode().split("\0"):
        if ent:
            meta, p = ent.split("\t", 1)
            _mode, typ, oid, size = meta.split()
            out.append(
                {
                    "type": "directory" if typ == "tree" else "file",
                    "oid": oid,
                    "size": 0 if size == "-" else int(size),
                    "path": p,
                }
            )
    return out


def lfs_patterns(repo, sha):
    """Patterns `.gitattributes` marks `filter=lfs` at a commit (the Hub serves those as LFS)."""
    try:
        text = git(repo, "show", f"{sha}:.gitattributes").decode()
    except RuntimeError:
        return []
    return [ln.split()[0] for ln in text.splitlines() if ln.strip() and "filter=lfs" in ln]


def with_lfs(repo, sha, entry, patterns):
    """The Hub's file entry: LFS files also carry their sha256 (`lfs.oid`) and size."""
    if entry["type"] == "file" and any(
        fnmatch.fnmatch(os.path.basename(entry["path"]), pat) for pat in patterns
    ):
        data = git(repo, "cat-file", "blob", entry["oid"])
        sha256 = hashlib.sha256(data).hexdigest()
        entry = dict(entry, lfs={"oid": sha256, "size": len(data), "pointerSize": 134})
    return entry


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    @property
    def root(self):
        return self.server.root

    @property
    def base(self):
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def log_message(self, fmt, *a):
        self.server.requests.append(f"{self.command} {self.path}")
        if self.server.verbose:
            sys.stderr.write("minihub %s\n" % (fmt % a))

    def send(self, code, body=b"", headers=None, ctype="application/json"):
        if not isinstance(body, bytes):
            body = json.dumps(body).encode()
        self.send_response(code)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def err(self, code, kind, msg):
        self.send(code, {"error": msg}, {"X-Error-Code": kind, "X-Error-Message": msg})

    def body(self):
        if getattr(self, "_body", None) is not None:  # already read by guard()
            return self._body
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            return self.rfile.read(n)
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        return b""

    def repo_dir(self, rtype, rid):
        return os.path.join(self.root, rtype, rid)

    def route(self):
        u = urlparse(self.path)
        path, q = unquote(u.path), parse_qs(u.query)
        m = self.command
        if m == "POST" and path == "/api/repos/create":
            d = json.loads(self.body())
            rid = f"{d.get('organization') or 'user'}/{d['name']}"
            repo = self.repo_dir((d.get("type") or "model") + "s", rid)
            with self.server.create_lock:
                if os.path.exists(repo):  # the real Hub's 409 also carries the url
                    msg = "You already created this model repo"
                    body = {"error": msg, "url": f"{self.base}/{rid}"}
                    return self.send(
                        409, body, {"X-Error-Code": "RepoExists", "X-Error-Message": msg}
                    )
                os.makedirs(repo)
                git(repo, "init", "-q", "--bare", "-b", "main")
                empty = git(repo, "hash-object", "-t", "tree", "-w", "--stdin", input=b"")
                first = git(repo, "commit-tree", empty.decode().strip(), "-m", "initial commit")
                git(repo, "update-ref", "refs/heads/main", first.decode().strip())
            return self.send(200, {"url": f"{self.base}/{rid}", "name": rid})
        if m == "POST" and path == "/api/validate-yaml":  # model card metadata check
            self.body()
            return self.send(200, {"errors": [], "warnings": []})
        if m == "GET" and path == "/api/whoami-v2":
            return self.send(200, {"type": "user", "name": "user", "orgs": []})
        mt = re.match(r"^/api/(models|datasets|spaces)/([^/]+/[^/]+)(?:/(.*))?$", path)
        if mt:
            rtype, rid, rest = mt.group(1), mt.group(2), mt.group(3) or ""
            repo = self.repo_dir(rtype, rid)
            if not os.path.isdir(repo):
                return self.err(404, "RepoNotFound", "Repository not found")
            return self.api(m, repo, rid, rest, q)
        mr = re.match(r"^/(?:(datasets|spaces)/)?([^/]+/[^/]+)/resolve/([^/]+)/(.+)$", path)
        if mr and m in ("GET", "HEAD"):
            repo = self.repo_dir(mr.group(1) or "models", mr.group(2))
            if not os.path.isdir(repo):
                return self.err(404, "RepoNotFound", "Repository not found")
            sha = resolve(repo, mr.group(3))
            if sha is None:
                return self.err(404, "RevisionNotFound", "Invalid rev id")
            try:
                oid = git(repo, "rev-parse", f"{sha}:{mr.group(4)}").decode().strip()
                data = git(repo, "cat-file", "blob", oid)
            except RuntimeError:
                return self.err(404, "EntryNotFound", "Entry not found")
            headers = {"X-Repo-Commit": sha, "ETag": f'"{oid}"', "Accept-Ranges": "bytes"}
            entry = {"type": "file", "path": mr.group(4), "oid": oid}
            lfs = with_lfs(repo, sha, entry, lfs_patterns(repo, sha)).get("lfs")
            if lfs:  # the Hub names an LFS file by its sha256
                headers["X-Linked-Etag"] = f'"{lfs["oid"]}"'
                headers["X-Linked-Size"] = str(lfs["size"])
            rng = self.headers.get("Range")
            self.server.ranges.append((mr.group(4), rng))
            code, total = 200, len(data)
            m_rng = re.match(r"^bytes=(\d+)-(\d*)$", rng or "")
            if m_rng and m == "GET":
                start = int(m_rng.group(1))
                end = int(m_rng.group(2)) if m_rng.group(2) else total - 1
                if start >= total:
                    return self.send(416, b"", {"Content-Range": f"bytes */{total}"})
                data, code = data[start : end + 1], 206
                headers["Content-Range"] = f"bytes {start}-{start + len(data) - 1}/{total}"
            cut = self.server.cut_after.pop(mr.group(4), None) if m == "GET" else None
            if cut is not None:  # fault injection: announce everything, send `cut` bytes, drop
                self.send_response(code)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[:cut])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(2)
                return None
            return self.send(code, data, headers, "application/octet-stream")
        return self.err(404, "NotFound", f"no route {m} {path}")

    def api(self, m, repo, rid, rest, q):
        if m == "GET" and rest == "refs":
            fmt = "--format=%(refname:short) %(objectname)"
            refs = git(repo, "for-each-ref", fmt, "refs/heads").decode().split("\n")
            br = [
                {"name": n, "ref": f"refs/heads/{n}", "targetCommit": s}
                for n, s in (line.split() for line in refs if line)
            ]
            return self.send(200, {"branches": br, "tags": [], "converts": []})
        mb = re.match(r"^branch/(.+)$", rest)
        if mb and m == "POST":
            start = (json.loads(self.body() or b"{}") or {}).get("startingPoint") or "main"
            if resolve(repo, f"refs/heads/{mb.group(1)}"):
                return self.err(409, "BranchExists", "Reference already exists")
            try:
                git(repo, "branch", mb.group(1), start)
            except RuntimeError as e:  # a concurrent create of the same branch
                if resolve(repo, f"refs/heads/{mb.group(1)}"):
                    return self.err(409, "BranchExists", "Reference already exists")
                raise e
            return self.send(200, {})
        mi = re.match(r"^(?:revision/(.+))?$", rest)
        if mi and m in ("GET", "HEAD"):
            sha = resolve(repo, mi.group(1) or "main")
            if sha is None:
                return self.err(404, "RevisionNotFound", "Invalid rev id")
            files = [e["path"] for e in ls_tree(repo, sha)]
            info = {
                "id": rid,
                "modelId": rid,
                "sha": sha,
                "private": False,
                "disabled": False,
                "gated": False,
                "tags": [],
                "downloads": 0,
                "likes": 0,
                "siblings": [{"rfilename": f} for f in files],
            }
            return self.send(200, info)
        mt = re.match(r"^tree/([^/]+)(?:/(.*))?$", rest)
        if mt and m == "GET":
            sha = resolve(repo, mt.group(1))
            if sha is None:
                return self.err(404, "RevisionNotFound", "Invalid rev id")
            sub = (mt.group(2) or "").strip("/")
            recursive = q.get("recursive", ["false"])[0] in ("1", "true", "True")
            entries = ls_tree(repo, sha, sub, recursive=recursive)
            if sub and not entries:
                return self.err(404, "EntryNotFound", "Entry not found")
            return self.send(200, entries)
        mp = re.match(r"^preupload/(.+)$", rest)
        if mp and m == "POST":
            files = json.loads(self.body())["files"]
            modes = [
                {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files
            ]
            return self.send(200, {"files": modes})
        mpi = re.match(r"^paths-info/(.+)$", rest)
        if mpi and m == "POST":
            sha = resolve(repo, unquote(mpi.group(1)))
            if sha is None:
                return self.err(404, "RevisionNotFound", "Invalid rev id")
            form = parse_qs(self.body().decode())
            wanted = {p.strip("/") for p in form.get("paths", [])}
            patterns = lfs_patterns(repo, sha)
            entries = [
                with_lfs(repo, sha, e, patterns) for e in ls_tree(repo, sha) if e["path"] in wanted
            ]
            return self.send(200, entries)
        mc = re.match(r"^commit/(.+)$", rest)
        if mc and m == "POST":
            lines = [json.loads(line) for line in self.body().splitlines() if line.strip()]
            return self.commit(repo, rid, mc.group(1), lines)
        return self.err(404, "NotFound", f"no api route {m} {rest}")

    def commit(self, repo, rid, rev, lines):
        parent = resolve(repo, f"refs/heads/{rev}")
        if parent is None:
            return self.err(404, "RevisionNotFound", f"Invalid rev id: {rev}")
        header = next(line["value"] for line in lines if line["key"] == "header")
        with tempfile.TemporaryDirectory() as td:
            # private index and an empty work tree: concurrent commits never share state
            env = dict(ENV, GIT_INDEX_FILE=os.path.join(td, "index"), GIT_WORK_TREE=td)
            git(repo, "read-tree", parent, env=env)
            for line in lines:
                key, v = line["key"], line["value"]
                if key == "file":
                    content = base64.b64decode(v["content"])
                    oid = git(repo, "hash-object", "-w", "--stdin", input=content).decode().strip()
                    info = f"100644,{oid},{v['path']}"
                    git(repo, "update-index", "--add", "--cacheinfo", info, env=env)
                elif key in ("deletedFile", "deletedFolder"):
                    spec = v["path"].rstrip("/") + ("/" if key == "deletedFolder" else "")
                    out = git(repo, "ls-files", "-z", "--", spec, env=env).decode()
                    for p in out.split("\0"):
                        if p:
                            git(repo, "update-index", "--force-remove", "--", p, env=env)
                elif key != "header":
                    return self.err(400, "BadRequest", f"unsupported op {key} (regular only)")
            tree = git(repo, "write-tree", env=env).decode().strip()
        msg = header["summary"] + (
            "\n\n" + header["description"] if header.get("description") else ""
        )
        sha = git(repo, "commit-tree", tree, "-p", parent, "-m", msg).decode().strip()
        try:
            git(repo, "update-ref", f"refs/heads/{rev}", sha, parent)
        except RuntimeError:
            return self.err(412, "PreconditionFailed", f"{rev} moved during the commit; retry")
        body = {"commitUrl": f"{self.base}/{rid}/commit/{sha}", "commitOid": sha}
        return self.send(200, dict(body, pullRequestUrl=None))

    def guard(self):
        """Test switches: injected failures (429/5xx), token checks (401), read-only orgs (403).
        Returns True when it answered the request itself."""
        u = urlparse(self.path)
        for i, (method, pattern, status) in enumerate(self.server.fail_next):
            if method == self.command and re.search(pattern, unquote(u.path)):
                del self.server.fail_next[i]
                if self.command == "POST":
                    self.body()  # drain the request
                self.send(status, {"error": "injected"}, {"Retry-After": "0"})
                return True
        tokens = self.server.valid_tokens
        writes = self.command in ("POST", "PUT", "DELETE") or u.path == "/api/whoami-v2"
        if tokens and writes:
            auth = self.headers.get("Authorization", "")
            if not auth.startswith("Bearer ") or auth[7:] not in tokens:
                if self.command == "POST":
                    self.body()
                self.err(401, "Unauthorized", "Invalid credentials in Authorization header")
                return True
        if self.command == "POST" and self.server.forbidden_orgs:
            path = unquote(u.path)
            body = b""
            if path == "/api/repos/create":
                body = self.body()
                org = json.loads(body or b"{}").get("organization") or "user"
                self._body = body
            else:
                mt = re.match(r"^/api/(?:models|datasets|spaces)/([^/]+)/", path)
                org = mt.group(1) if mt else None
            if org in self.server.forbidden_orgs:
                if not body:
                    self.body()
                self.err(403, "Forbidden", f"You don't have the rights to write to {org}")
                return True
        return False

    def handle_any(self):
        try:
            self._body = None
            if self.guard():
                return
            self.route()
        except Exception as e:  # surface server bugs as HTTP 500 instead of a dropped connection
            self.err(500, "InternalError", str(e)[:200])

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = handle_any


class MiniHub:
    """Serve `root` on 127.0.0.1 (port 0 = any free port) in a daemon thread."""

    def __init__(self, root, port=0, verbose=False):
        os.makedirs(root, exist_ok=True)
        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.server.root = str(root)
        self.server.verbose = verbose
        self.server.requests = []
        self.server.ranges = []  # (file, Range header or None) of every resolve request
        self.server.cut_after = {}  # file -> bytes: its next GET is cut after that many
        self.server.fail_next = []  # (method, path regex, status): answered once with status
        self.server.valid_tokens = set()  # non-empty: writes need one of these tokens
        self.server.forbidden_orgs = set()  # orgs no token may write to (403)
        self.server.create_lock = threading.Lock()
        self.thread = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    @property
    def requests(self):
        return self.server.requests

    @property
    def ranges(self):
        return self.server.ranges

    def cut_next_download(self, filename, after_bytes):
        """Fault injection: the next GET of `filename` drops the connection midway."""
        self.server.cut_after[filename] = after_bytes

    def repo_path(self, repo_id, rtype="models"):
        return os.path.join(self.server.root, rtype, repo_id)

    def start(self):
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        if self.thread is not None:
            self.thread.join(timeout=5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


if __name__ == "__main__":
    hub = MiniHub(sys.argv[1], int(sys.argv[2]), verbose=True)
    print(f"minihub serving {sys.argv[1]} at {hub.url}", flush=True)
    hub.server.serve_forever()
