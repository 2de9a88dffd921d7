"""Snakemake adapter: merge a release's byte shards into one checked Megatron dataset."""

from workflow.core.logs import log_to
from workflow.data.merge_release import merge_shards, write_merge_meta

with log_to(snakemake.log[0]) as log:  # noqa: F821
    sm = snakemake  # noqa: F821
    release = sm.params.release
    variant = sm.wildcards.variant
    samples = release.kind == "samples"
    prefix = sm.output[0][: -len(".bin")]
    meta = merge_shards(
        sm.input.shards,
        sm.input.idx,
        prefix,
        expected_sha256=release.merged_sha256.get(variant),
        row_length=sm.params.seq_length + 1 if samples else None,
    )
    extra = {
        "source": release.source,
        "repo": release.repo(variant),
        "revision": release.revision,
        "kind": release.kind,
        "seq_length": sm.params.seq_length if samples else None,
        "global_batch_size": sm.params.global_batch_size if samples else None,
    }
    if samples:  # what training checks: enough rows for train_iters (NeoX asks 0.5% more)
        extra["num_samples"] = meta["sequences"]
        if meta["sequences"] < sm.params.num_samples:
            log.warning(
                "%s has %d samples, NeoX's num_samples is %d (training only needs "
                "train_iters x batch)",
                prefix,
                meta["sequences"],
                sm.params.num_samples,
            )
    log.info("merged: %s", write_merge_meta(prefix, meta, extra))
