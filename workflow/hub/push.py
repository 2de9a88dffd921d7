"""``python -m workflow.hub push``: publish a local hub's repos to the Hugging Face Hub.

A suite published with the ``local_git`` backend (results/{run}/hub/repos) goes to a real Hub
afterwards, step by step, in the same layout; steps already there with the same bytes are
skipped, so an interrupted push can simply be run again.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from workflow.hub.download import download_checkpoint
from workflow.hub.layout import HubError
from workflow.hub.local_git import list_branches
from workflow.hub.upload import publish_checkpoint

log = logging.getLogger(__name__)


def push_local_repo(
    local_root: str | os.PathLike,
    repo_id: str,
    *,
    to_repo_id: str | None = None,
    endpoint: str | None = None,
    token: str | None = None,
    private: bool = False,
    force: bool = False,
) -> list[dict[str, Any]]:
    """Publish every ``step{N}`` branch of a local_git repo to a Hub (the same layout: one
    branch per step, ``main`` = the highest step). Steps already there with the same bytes are
    skipped, so an interrupted push can simply be run again. Returns the receipts."""
    branches = list_branches(local_root, repo_id)
    steps = sorted(int(b[4:]) for b in branches if re.fullmatch(r"step\d+", b))
    if not steps:
        raise HubError(f"local repo {repo_id} in {local_root} has no step branches")
    receipts = []
    for step in steps:
        with tempfile.TemporaryDirectory(prefix=".push.") as tmp:
            ckpt = download_checkpoint(
                repo_id=repo_id,
                revision=f"step{step}",
                backend="local_git",
                out_dir=Path(tmp) / "ckpt",
                local_root=local_root,
            )
            receipts.append(
                publish_checkpoint(
                    ckpt,
                    repo_id=to_repo_id or repo_id,
                    branch=f"step{step}",
                    backend="huggingface",
                    endpoint=endpoint,
                    token=token,
                    private=private,
                    final=step == steps[-1],
                    force=force,
                )
            )
        log.info("pushed %s step%d -> %s", repo_id, step, receipts[-1]["url_or_path"])
    return receipts


def main(argv: list[str] | None = None) -> int:
    """``python -m workflow.hub push``: publish a local hub's repos to the Hugging Face Hub."""
    import argparse
    import sys

    p = argparse.ArgumentParser(prog="python -m workflow.hub", description=main.__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    push = sub.add_parser("push", help="push local_git repos (all step branches) to a Hub")
    push.add_argument("--local-root", required=True, help="e.g. results/tiny/hub/repos")
    push.add_argument("--repo", action="append", required=True, help="org/name (repeatable)")
    push.add_argument("--to-org", default=None, help="publish under this org instead")
    push.add_argument("--endpoint", default=None, help="Hub URL (default: HF_ENDPOINT)")
    push.add_argument("--private", action="store_true")
    push.add_argument("--force", action="store_true", help="replace steps whose files differ")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        for repo in a.repo:
            target = f"{a.to_org}/{repo.split('/', 1)[1]}" if a.to_org else repo
            receipts = push_local_repo(
                a.local_root,
                repo,
                to_repo_id=target,
                endpoint=a.endpoint,
                private=a.private,
                force=a.force,
            )
            print(f"{repo} -> {target}: {len(receipts)} steps")
    except HubError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
