"""Snakemake adapter: one checkpoint's shards -> (index, score) parquet + Poisson analysis JSON."""

from workflow.core.io import read_json, write_json
from workflow.core.logs import log_to
from workflow.core.tables import write_table
from workflow.studies.memorization.gather import analyse_checkpoint, gather_shards

sm = snakemake  # noqa: F821
with log_to(sm.log[0]) as log:
    mem = sm.params.memorization
    table = gather_shards(list(sm.input.parts))
    write_table(table, sm.output.scores)
    passages = read_json(sm.input.stats)["memorized"]["passages"] if sm.input.stats else None
    analysis = analyse_checkpoint(
        table,
        block_size=mem["block_size"],
        prompt_tokens=mem["prompt_tokens"],
        continuation_tokens=mem["continuation_tokens"],
        samples_prefix=sm.input.samples[0],
        passages=passages,
        tokenizer_path=sm.input.tokenizer or None,
    )
    analysis.update(
        variant=sm.wildcards.variant, size=sm.wildcards.size, step=int(sm.wildcards.step)
    )
    write_json(sm.output.analysis, analysis)
    log.info("%s: %s", sm.output.analysis, {k: v for k, v in analysis.items() if k != "counts"})
