"""GPU memory of a job, per rank: the model the plan uses to refuse a layout that cannot fit.

Training memory is four parts (bytes per rank):

- **model states** (Rajbhandari et al. 2020, ZeRO): the working weights and gradients in the
  training precision, the fp32 master copy (mixed precision only) and Adam's two fp32 moments.
  ZeRO-1 partitions master weights and moments over the data-parallel ranks, ZeRO-2 the
  gradients too; tensor parallelism (DeepSpeed AutoTP, train/engine.py) splits the QKV, attention
  output, both MLP matrices, their column-parallel biases and the LM head over the TP group and
  replicates the input embedding, the LayerNorms and the row-parallel biases (`Shape.per_rank`).
- **communication buckets**: DeepSpeed's reduce and all-gather buffers (`reduce_bucket_size`,
  `allgather_bucket_size` elements of the half-precision dtype; capped by the shard they cover).
- **activations saved for backward**, counted tensor by tensor from transformers'
  `GPTNeoXLayer` with parallel residual and no dropout (Pythia's settings); `sbh` is
  sequence x micro-batch x hidden elements:
  layer input 1, LayerNorm-1 output 1, fused QKV output 3, Q and K after rotary 1 + 1, attention
  output 1 and its contiguous copy fed to the dense projection 1, LayerNorm-2 output 1,
  MLP up-projection output 4 and GeLU output 4: 18 sbh per layer, plus the two LayerNorms'
  statistics and flash/SDPA attention's log-sum-exp (fp32, b x heads x s). Eager attention
  keeps Q, K^T and V (3 sbh) and the softmax probabilities (b x heads x s^2) instead. With
  activation checkpointing only each layer's input is kept, and backward recomputes one layer
  at a time.
  Outside the layers: the last layer's output, the final LayerNorm output.
- **the LM head's loss**: `F.cross_entropy(logits.float())` keeps the fp32 log-softmax
  (b x s x V) for backward, and at its peak holds the logits, their fp32 copy and the
  log-softmax at once; backward the same three again as gradients. A chunked loss keeps none
  of them across the step: each chunk of tokens is computed (and recomputed in backward) alone.
  Under tensor parallelism the head's vocabulary shard of the logits is gathered whole on every
  rank (AutoTP's colwise_gather_output), so the loss terms are the full vocabulary's plus the
  shard.

A stated allocator margin (fragmentation, CUDA context, kernels' workspaces) is added on top.
`tests/test_memory.py` checks the activation, loss and optimizer terms against tensors measured
on CPU (saved-tensor hooks and a real optimizer's state).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}
GIB = 1024**3


# CUDA context + cuBLAS/flash workspaces + fragmentation of PyTorch's caching allocator: a fixed
# part and a share of the rest (DeepSpeed's and Megatron's own planners assume 10-20%).
MARGIN_FIXED = 1.5 * GIB
MARGIN_SHARE = 0.10
# per layer, in units of seq x micro-batch x hidden elements (see the module docstring)
LAYER_SBH = 18
# of which sharded by a tensor-parallel group (all but the layer input and two LayerNorm outputs)
LAYER_SBH_SHARDED = 15
OUTSIDE_LAYERS_SBH = 2
# eager attention keeps Q, K^T and V (3) instead of the fused QKV output, rotated Q and K and the
# attention output (6)
EAGER_SBH_LESS = 3


@dataclass(frozen=True)
class Shape:
    """One GPT-NeoX model and the rows one rank holds at once."""

    layers: int
    hidden: int
    heads: int
    vocab: int  # padded, as the embedding has it
    seq: int
    micro_batch: int

    @property
    def parameters(self) -> int:
        """Exact GPT-NeoX parameter count (untied embeddings, biases, two LayerNorms a layer)."""
        h = self.hidden
        per_layer = 12 * h * h + 13 * h  # QKV, dense, two MLP matrices, their biases, 2 LNs
        return self.layers * per_layer + 2 * self.vocab * h + 2 * h

    @property
    def tokens(self) -> int:
        return self.seq * self.micro_batch

    def per_rank(self, tensor_parallel: int = 1) -> float:
        """Parameters one rank holds under AutoTP's GPT-NeoX split: per layer the QKV weight and
        bias, the attention output weight, the MLP up-projection weight and bias and its
        down-projection weight (12h^2 + 7h) are sharded, the LayerNorms and the two row-parallel
        biases (6h) replicated; the LM head is sharded, the input embedding and the final
        LayerNorm replicated."""
        h = self.hidden
        sharded = self.layers * (12 * h * h + 7 * h) + self.vocab * h
        replicated = self.layers * 6 * h + self.vocab * h + 2 * h
        return sharded / tensor_parallel + replicated


@dataclass(frozen=True)
class Layout:
    """How a job runs one model: precision, parallelism and the memory savers it uses."""

    precision: str = "fp32"
    zero_stage: int = 1
    data_parallel: int = 1
    tensor_parallel: int = 1
    activation_checkpointing: bool = False
    flash_attention: bool = True
    loss_chunk_tokens: int | None = None  # None: the whole b x s x V at once
    reduce_bucket: float = 5e8  # elements
    allgather_bucket: float = 5e8


@dataclass(frozen=True)
class Estimate:
    """Bytes per rank by part; `total` includes the allocator margin."""

    weights: int
    gradients: int
    optimizer: int
    buckets: int
    activations: int
    loss: int
    margin: int

    @property
    def total(self) -> int:
        return (
            self.weights
            + self.gradients
            + self.optimizer
            + self.buckets
            + self.activations
            + self.loss
            + self.margin
        )

    def gib(self) -> float:
        return self.total / GIB


def model_states(shape: Shape, layout: Layout) -> tuple[int, int, int]:
    """(weights, gradients, optimizer state) bytes per rank, as DeepSpeed's engines hold them.

    fp32 without ZeRO: weights, gradients and Adam's moments (4 + 4 + 8 bytes a parameter).
    With ZeRO >= 1 DeepSpeed keeps a flat fp32 copy of its partition (the master weights; in
    mixed precision the only fp32 copy), and in mixed precision an fp32 gradient of that
    partition too. ZeRO-2 keeps only its partition of the working-precision gradients.
    Measured on CPU with a real engine (tests/test_memory.py): 16, 20.8 and 20.0 bytes a
    parameter for fp32 ZeRO 0, 1, 2 on one rank; the model says 16, 20, 20.
    """
    n = shape.per_rank(layout.tensor_parallel)
    dp = layout.data_parallel
    elem = BYTES[layout.precision]
    mixed = layout.precision != "fp32"
    zero = layout.zero_stage
    weights = elem * n
    gradients = elem * n if zero < 2 else elem * n / dp
    shard = n / dp if zero >= 1 else n
    moments = 8 * shard
    master = 4 * shard if (mixed or zero >= 1) else 0
    grad_partition = 4 * shard if (zero >= 1 and mixed) else 0
    return int(weights), int(gradients + grad_partition), int(moments + master)


def bucket_bytes(shape: Shape, layout: Layout) -> int:
    """DeepSpeed's reduce and all-gather buffers; none without ZeRO on one rank."""
    if layout.zero_stage == 0 or layout.data_parallel == 1:
        return 0
    n = shape.per_rank(layout.tensor_parallel)
    elem = BYTES[layout.precision]
    return int(elem * (min(layout.reduce_bucket, n) + min(layout.allgather_bucket, n)))


def _layer_bytes(shape: Shape, layout: Layout) -> float:
    """Everything one layer saves for backward without checkpointing."""
    elem = BYTES[layout.precision]
    sbh = shape.tokens * shape.hidden
    tp = layout.tensor_parallel
    heads = shape.heads / tp
    stats = 2 * 2 * shape.tokens * elem  # mean and rstd of two LayerNorms
    if layout.flash_attention:
        sharded = LAYER_SBH_SHARDED
        attention = 4 * shape.micro_batch * heads * shape.seq  # log-sum-exp, fp32
    else:  # eager: Q, K^T, V and the softmax probabilities instead of QKV and rotary copies
        sharded = LAYER_SBH_SHARDED - EAGER_SBH_LESS
        attention = elem * shape.micro_batch * heads * shape.seq * shape.seq
    replicated = LAYER_SBH - LAYER_SBH_SHARDED
    return elem * sbh * (replicated + sharded / tp) + stats + attention


def saved_activation_bytes(shape: Shape, layout: Layout) -> int:
    """Activations the forward pass leaves for backward (what saved-tensor hooks see), outside
    the LM head's loss: per layer all of it, or only its input under checkpointing; then the
    last layer's output, the final LayerNorm's output and statistics, and the int64 inputs and
    targets."""
    elem = BYTES[layout.precision]
    sbh = shape.tokens * shape.hidden
    per_layer = elem * sbh if layout.activation_checkpointing else _layer_bytes(shape, layout)
    outside = OUTSIDE_LAYERS_SBH * elem * sbh + 2 * shape.tokens * elem + 16 * shape.tokens
    return int(shape.layers * per_layer + outside)


def activation_bytes(shape: Shape, layout: Layout) -> int:
    """Peak activations: the saved ones, and under checkpointing one layer recomputed at a
    time in backward."""
    recompute = _layer_bytes(shape, layout) if layout.activation_checkpointing else 0
    return int(saved_activation_bytes(shape, layout) + recompute)


def loss_bytes(shape: Shape, layout: Layout) -> tuple[int, int]:
    """(saved for backward, peak while computing) bytes of the LM head's logits and loss.

    Full: the fp32 log-softmax is saved; at the peak the logits (training dtype), their fp32
    copy and the log-softmax coexist, and in backward their three gradients. Chunked: nothing is
    saved past the chunk, and the peak is those three tensors for one chunk of tokens. Tensor
    parallelism gathers the whole vocabulary's logits on every rank, beside the rank's shard.
    """
    elem = BYTES[layout.precision]
    vocab = shape.vocab
    tokens = shape.tokens
    if layout.loss_chunk_tokens:
        tokens = min(tokens, layout.loss_chunk_tokens)
        saved = 0
    else:
        saved = 4 * tokens * vocab
    upcast = 4 if elem != 4 else 0
    shard = elem * vocab / layout.tensor_parallel if layout.tensor_parallel > 1 else 0
    peak = tokens * (vocab * (elem + upcast + 4) + shard)
    return int(saved), int(peak)


def training_memory(shape: Shape, layout: Layout) -> Estimate:
    """Peak bytes per rank of a training step of `shape` run as `layout`."""
    weights, gradients, optimizer = model_states(shape, layout)
    saved, peak = loss_bytes(shape, layout)
    activations = activation_bytes(shape, layout)
    return _with_margin(
        weights, gradients, optimizer, bucket_bytes(shape, layout), activations, saved + peak
    )


def forward_memory(shape: Shape, precision: str, tensor_parallel: int = 1) -> Estimate:
    """Peak bytes of a forward-only job (evaluation, memorization, term frequency) scoring
    `micro_batch` rows of `seq` tokens: the weights, one layer's activations at a time, and the
    logits with the fp32 log-softmax that lm-eval and the scorers take of them."""
    elem = BYTES[precision]
    n = shape.parameters / tensor_parallel
    sbh = shape.tokens * shape.hidden
    layer = elem * sbh * (2 + LAYER_SBH_SHARDED / tensor_parallel)
    logits = shape.tokens * shape.vocab / tensor_parallel * (elem + 4 + 4)
    return _with_margin(int(elem * n), 0, 0, 0, int(layer), int(logits))


def decode_memory(shape: Shape, precision: str, prompt: int) -> Estimate:
    """Peak bytes of greedy decoding `micro_batch` rows to `seq` tokens with a KV cache (the
    memorization scorer, generate_until): the weights, the cache of keys and values of every
    layer, the prompt pass's activations one layer at a time, and one position's logits."""
    elem = BYTES[precision]
    rows = shape.micro_batch
    cache = 2 * shape.layers * rows * shape.seq * shape.hidden * elem
    layer = elem * rows * prompt * shape.hidden * (2 + LAYER_SBH_SHARDED)
    logits = rows * shape.vocab * (elem + 4)
    return _with_margin(int(elem * shape.parameters), 0, 0, 0, int(cache + layer), int(logits))


def _with_margin(weights, gradients, optimizer, buckets, activations, loss) -> Estimate:
    body = weights + gradients + optimizer + buckets + activations + loss
    return Estimate(
        weights=weights,
        gradients=gradients,
        optimizer=optimizer,
        buckets=buckets,
        activations=activations,
        loss=loss,
        margin=int(MARGIN_FIXED + MARGIN_SHARE * body),
    )


# ------------------------------------------------------------------------------ a suite's jobs


def model_shape(suite, spec, rows: int, seq: int) -> Shape:
    """The Shape of `spec` (vocabulary padded as the embedding is) holding rows x seq tokens."""
    vocab = suite.padded_vocab(spec)
    return Shape(
        layers=spec.num_layers,
        hidden=spec.hidden_size,
        heads=spec.num_attention_heads,
        vocab=vocab,
        seq=seq,
        micro_batch=rows,
    )


def parallel_sizes(spec) -> tuple[int, int]:
    """(data-parallel, tensor-parallel) sizes of `spec`'s training job: gpus x nodes ranks (one
    on CPU), `model_parallel` of them per model replica (train/engine.tp_layout)."""
    ranks = max(1, spec.gpus * spec.nodes)
    tp = spec.model_parallel
    return max(1, ranks // tp), tp


def training_layout(suite, spec, **change) -> tuple[Layout, int]:
    """(Layout, micro-batch) of `spec`'s training job as train/engine.py runs it: gpus x nodes
    ranks, data-parallel x `model_parallel` tensor-parallel, the config's micro-batch capped by
    the rows a data-parallel rank gets, the training precision (the wider one where the
    variants differ), the savers and buckets the config sets. `change` overrides Layout fields
    (what-if questions)."""
    t = suite.training
    ranks = max(1, spec.gpus * spec.nodes)
    dp, tp = parallel_sizes(spec)
    micro = min(spec.micro_batch_size, max(1, t.global_batch_size // dp))
    precisions = {spec.for_variant(v).precision for v in suite.variants} or {spec.precision}
    bucket = spec.zero_bucket_size or t.zero_bucket_size
    layout = Layout(
        precision="fp32" if "fp32" in precisions else sorted(precisions)[0],
        zero_stage=0 if (ranks == 1 and "fp32" in precisions) else t.zero_stage,
        data_parallel=dp,
        tensor_parallel=tp,
        activation_checkpointing=t.activation_checkpointing,
        flash_attention=t.attention != "eager",
        loss_chunk_tokens=t.loss_chunk_tokens,
        reduce_bucket=bucket,
        allgather_bucket=bucket,
    )
    return dataclasses.replace(layout, **change), micro


def suite_training_memory(suite, spec) -> Estimate:
    """Peak GPU bytes of one rank of `spec`'s training job (and of its intervention arms)."""
    layout, micro = training_layout(suite, spec)
    return training_memory(model_shape(suite, spec, micro, suite.training.seq_length), layout)


def suite_forward_memory(suite, spec, rows: int, seq: int) -> Estimate:
    """Peak GPU bytes of a forward-only job scoring `rows` sequences of `seq` tokens at once."""
    precisions = {spec.for_variant(v).precision for v in suite.variants} or {spec.precision}
    precision = "fp32" if "fp32" in precisions else sorted(precisions)[0]
    return forward_memory(model_shape(suite, spec, rows, seq), precision)


def suite_decode_memory(suite, spec, rows: int, prompt: int, new_tokens: int) -> Estimate:
    """Peak GPU bytes of a greedy-decoding job: `rows` prompts of `prompt` tokens, each
    continued by `new_tokens`."""
    precisions = {spec.for_variant(v).precision for v in suite.variants} or {spec.precision}
    precision = "fp32" if "fp32" in precisions else sorted(precisions)[0]
    shape = model_shape(suite, spec, rows, prompt + new_tokens)
    return decode_memory(shape, precision, prompt)


def fit_hints(suite, spec, limit: float) -> list[str]:
    """What alone would make `spec`'s training rank fit `limit` bytes."""
    t = suite.training
    layout, micro = training_layout(suite, spec)
    shape = model_shape(suite, spec, micro, t.seq_length)
    hints = []
    checkpointing = _fits(shape, layout, limit, activation_checkpointing=True)
    if not t.activation_checkpointing and checkpointing:
        hints.append("training.activation_checkpointing: true")
    if not t.loss_chunk_tokens and _fits(shape, layout, limit, loss_chunk_tokens=4096):
        hints.append("training.loss_chunk_tokens: 4096")
    if layout.zero_stage < 2 and _fits(shape, layout, limit, zero_stage=2):
        hints.append("training.zero_stage: 2")
    ranks = max(1, spec.gpus * spec.nodes)
    for tp in (2, 4, 8):
        if tp <= layout.tensor_parallel or spec.num_attention_heads % tp or spec.gpus % tp:
            continue
        wider = dict(tensor_parallel=tp, data_parallel=max(1, ranks // tp))
        if _fits(shape, layout, limit, **wider):
            hints.append(f"models.{spec.name}.model_parallel: {tp}")
            break
    for smaller in (micro // 2, micro // 4, micro // 8):
        if smaller >= 1 and _fits(dataclasses.replace(shape, micro_batch=smaller), layout, limit):
            hints.append(f"models.{spec.name}.micro_batch_size: {smaller}")
            break
    return hints


def _fits(shape: Shape, layout: Layout, limit: float, **change) -> bool:
    return training_memory(shape, dataclasses.replace(layout, **change)).total <= limit


def forward_job_memory(suite, stage: str, spec) -> Estimate:
    """Peak GPU bytes of one of `spec`'s forward-only jobs of `stage`: lm-eval's loglikelihood
    batches (eval.batch_size or intervention.batch_size rows of seq_length tokens, every
    position's logits and their fp32 log-softmax), the memorization scorer's greedy decoding
    (memorization.batch_size prompts) and the term-frequency generation (term_frequency.batch_size
    prompts of up to (1 + shots) example lines of ~16 tokens)."""
    cfg = suite.raw
    seq = suite.training.seq_length
    if stage == "memorization":
        mem = cfg["memorization"]
        return suite_decode_memory(
            suite, spec, mem["batch_size"], mem["prompt_tokens"], mem["continuation_tokens"]
        )
    if stage == "term_frequency":
        tf = cfg["term_frequency"]
        prompt = min(seq, 16 * (1 + max(tf["shots"])))
        return suite_decode_memory(suite, spec, tf["batch_size"], prompt, tf["max_new_tokens"])
    section = "intervention" if stage == "intervention" else "eval"
    return suite_forward_memory(suite, spec, cfg[section]["batch_size"], seq)
