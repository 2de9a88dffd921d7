"""Snakemake adapter: train a byte-level BPE on the corpus, or fetch the GPT-NeoX-20B one."""

from workflow.core.logs import log_to
from workflow.data.tokenizer import fetch_pretrained_tokenizer, train_bpe

with log_to(snakemake.log[0]) as log:  # noqa: F821
    spec = snakemake.params.tokenizer  # noqa: F821
    out = snakemake.output[0]  # noqa: F821
    if spec["kind"] == "train_bpe":
        # the training documents (a raw source's shards less the held-out tail), or the corpus
        sources = snakemake.params.shards or list(snakemake.input.corpus)  # noqa: F821
        train_bpe(sources, spec["vocab_size"], out)
    else:
        fetch_pretrained_tokenizer(spec["pretrained_repo"], spec["pretrained_revision"], out)
    log.info("tokenizer written to %s", out)
