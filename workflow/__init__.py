"""pythia-workflow: the library behind the Snakemake DAG (no Snakemake imports here)."""

__version__ = "0.1.0"
