"""Checks of the Snakemake profile a run was started with, made before any job is submitted.

profiles/slurm reads the cluster's account and partition from environment variables
(`slurm_account: "$PYTHIA_SLURM_ACCOUNT"`). Snakemake expands them when it evaluates a job's
resources and keeps an unset one as the literal text, so without this check every job would
be submitted with `-p '$PYTHIA_SLURM_PARTITION'` and fail in sbatch, one by one.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

_VAR = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


def unset_variables(resources: Mapping[str, object], environ: Mapping[str, str] | None = None):
    """(resource, variable) for every `$VAR` / `${VAR}` in a resource's text that is unset."""
    env = os.environ if environ is None else environ
    missing = []
    for name, raw in resources.items():
        for m in _VAR.finditer(str(raw)):
            var = m.group(1) or m.group(2)
            if var not in env:
                missing.append((name, var))
    return missing


def check_profile_variables(
    resources: Mapping[str, object], environ: Mapping[str, str] | None = None
) -> None:
    missing = unset_variables(resources, environ)
    if missing:
        what = ", ".join(f"{r} reads ${v}" for r, v in missing)
        names = " ".join(f"{v}=..." for _, v in missing)
        raise ValueError(
            f"profile: default resources {what}, but the variable is not set; export it "
            f"before running Snakemake (export {names}; an empty value lets Slurm choose)"
        )
