"""Snakemake adapter: pack documents into the pre-shuffled sample file (GPT-NeoX v1.0 order)."""

from workflow.core.logs import log_to
from workflow.data.pack_shuffle import pack_samples

with log_to(snakemake.log[0]) as log:  # noqa: F821
    sm = snakemake  # noqa: F821
    meta = pack_samples(
        sm.input[0][: -len(".bin")],
        sm.output[0][: -len(".bin")],
        seq_length=sm.params.seq_length,
        num_samples=sm.params.num_samples,
        seed=sm.params.seed,
        index_dir=sm.output.index_maps,
        index_name_prefix=f"{sm.wildcards.variant}_documents",
        global_batch_size=sm.params.global_batch_size,
        producer=sm.rule,
    )
    log.info("samples: %s", meta)
