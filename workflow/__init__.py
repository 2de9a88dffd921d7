"""pythia-workflow: the library behind the Snakemake DAG (no Snakemake imports here)."""

__version__ = "0.1.0"


def export_library_path(basedir: str) -> None:
    """Make `import workflow` work in every job process (conda envs, Slurm jobs): they inherit
    the PYTHONPATH of the Snakemake process that starts them."""
    import os

    parts = [basedir, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(parts))
