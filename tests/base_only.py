"""Run a module as if only the base install (`pip install -e .`, no extras) were there.

    python tests/base_only.py snakemake -n --profile slurm ...

Every distribution outside the closure of pythia-workflow's own requirements (extras excluded,
markers evaluated here) is made unimportable and invisible to `pkgutil.iter_modules`, which is
how Snakemake finds its plugins: the test extra (pytest, xdist, ruff, snakefmt and what they
pull) and anything else this environment happens to hold. `BASE_ONLY_ALSO_HIDE` (comma-separated
distribution names) hides base requirements too, so a test can show what their absence does.
"""

from __future__ import annotations

import importlib.abc
import importlib.metadata as md
import os
import pkgutil
import runpy
import sys

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

PROJECT = "pythia-workflow"


def base_closure(project: str = PROJECT) -> set[str]:
    """The distributions `pip install -e .` brings: the project's requirements without extras,
    with the extras those requirements ask for, transitively (normalized names)."""
    seen: set[tuple[str, str]] = set()
    dists: set[str] = set()
    todo = [(project, "")]
    while todo:
        name, extra = todo.pop()
        if (canonicalize_name(name), extra) in seen:
            continue
        seen.add((canonicalize_name(name), extra))
        try:
            requires = md.distribution(name).requires or []
        except md.PackageNotFoundError:
            continue
        dists.add(canonicalize_name(name))
        for line in requires:
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate({"extra": extra}):
                todo += [(req.name, "")] + [(req.name, e) for e in req.extras]
    return dists


def hidden_modules(allowed: set[str]) -> set[str]:
    """Top-level modules that only distributions outside `allowed` provide."""
    return {
        module
        for module, dists in md.packages_distributions().items()
        if not {canonicalize_name(d) for d in dists} & allowed
    }


class _Hide(importlib.abc.MetaPathFinder):
    def __init__(self, modules: set[str]):
        self.modules = modules

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in self.modules:
            raise ModuleNotFoundError(f"No module named {name!r} (not in the base install)")
        return None


def hide(modules: set[str]) -> None:
    sys.meta_path.insert(0, _Hide(modules))
    iter_modules = pkgutil.iter_modules

    def visible(*args, **kwargs):
        return (m for m in iter_modules(*args, **kwargs) if m.name not in modules)

    pkgutil.iter_modules = visible


def main(argv: list[str]) -> None:
    also = {canonicalize_name(d) for d in os.environ.get("BASE_ONLY_ALSO_HIDE", "").split(",") if d}
    hide(hidden_modules(base_closure() - also))
    module, *args = argv
    sys.argv = [module, *args]
    sys.path[0] = os.getcwd()  # as `python -m`: not this file's folder (tests/)
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main(sys.argv[1:])
