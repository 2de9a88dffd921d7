"""Snakemake adapter: train a byte-level BPE on the corpus, or fetch the GPT-NeoX-20B one."""

from workflow.core.logs import log_to
from workflow.data.tokenizer import fetch_pretrained_tokenizer, train_bpe

with log_to(snakemake.log[0]) as log:  # noqa: F821
    spec = snakemake.params.tokenizer  # noqa: F821
    out = snakemake.output[0]  # noqa: F821
    if spec["kind"] == "train_bpe":
        train_bpe([snakemake.input.corpus], spec["vocab_size"], out)  # noqa: F821
    else:
        fetch_pretrained_tokenizer(spec["pretrained_repo"], spec["pretrained_revision"], out)
    log.info("tokenizer written to %s", out)
