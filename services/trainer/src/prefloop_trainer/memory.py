"""The pre-flight memory estimate, from the model's shape, LoRA rank, sequence length, batch and dtype.

Counted: base weights (4-bit: ~0.56 byte per linear weight, embeddings in the compute dtype);
LoRA weights with their fp32 gradients and Adam moments; activations of the policy forward
(DPO and ORPO run chosen and rejected together: 2 sequences per pair, which DPO packs into one row
that holds their prompt once; KTO and SFT one sequence), which gradient checkpointing cuts to the
layer inputs plus one layer; fp32 logits over the vocabulary for the log-probabilities; and what is
already in use before weights load (the process itself on CPU, the CUDA context on a GPU). A config
that does not fit is adjusted — checkpointing on, then a smaller micro-batch with more accumulation
— or refused with the numbers; on a GPU, a step's micro-batches are packed into fewer, larger ones
where there is room (`pack`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from prefloop_trainer.hardware import Resolved

GiB = 2**30
BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


@dataclass(frozen=True)
class Shape:
    """What the estimate needs of a model's config."""

    params: int
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    vocab: int
    head_dim: int = 0  # 0: hidden // heads, as in most models; Gemma 3 sets its own (270M: 256 at hidden 640, 4 heads)

    @property
    def per_head(self) -> int:
        return self.head_dim or self.hidden // self.heads

    @classmethod
    def of(cls, config: object) -> Shape:
        def get(name: str, default: Any = None) -> Any:
            return getattr(config, name, default)

        hidden, layers, vocab = get("hidden_size"), get("num_hidden_layers"), get("vocab_size")
        intermediate = get("intermediate_size") or 4 * hidden
        heads = get("num_attention_heads")
        kv_heads = get("num_key_value_heads") or heads
        head_dim = get("head_dim") or hidden // heads
        per_layer = 2 * hidden * heads * head_dim + 2 * hidden * kv_heads * head_dim + 3 * hidden * intermediate
        embeddings = vocab * hidden * (1 if get("tie_word_embeddings", False) else 2)
        return cls(per_layer * layers + embeddings, hidden, intermediate, layers, heads, kv_heads, vocab, head_dim)

    def lora_params(self, r: int) -> int:
        """Trainable parameters of LoRA on every linear layer (q, k, v, o, gate, up, down)."""
        q, kv = self.heads * self.per_head, self.kv_heads * self.per_head
        pairs = [
            (self.hidden, q),
            (self.hidden, kv),
            (self.hidden, kv),
            (q, self.hidden),
            (self.hidden, self.intermediate),
            (self.hidden, self.intermediate),
            (self.intermediate, self.hidden),
        ]
        return self.layers * sum(r * (a + b) for a, b in pairs)


@dataclass(frozen=True)
class Estimate:
    baseline: float
    weights: float
    trainable: float
    activations: float
    logits: float

    @property
    def total(self) -> float:
        return self.baseline + self.weights + self.trainable + self.activations + self.logits

    def lines(self) -> list[str]:
        return [
            f"  already in use        {self.baseline / GiB:7.2f} GiB",
            f"  base weights          {self.weights / GiB:7.2f} GiB",
            f"  LoRA + grads + Adam   {self.trainable / GiB:7.2f} GiB",
            f"  activations           {self.activations / GiB:7.2f} GiB",
            f"  logits                {self.logits / GiB:7.2f} GiB",
            f"  total                 {self.total / GiB:7.2f} GiB",
        ]


def estimate(
    shape: Shape,
    resolved: Resolved,
    r: int,
    seq_len: int,
    sequences_per_example: int,
    baseline: float,
    pair_tokens: int = 0,
    scored_tokens: int = 0,
) -> Estimate:
    """`pair_tokens`: the most tokens a DPO pair runs when its prompt runs once (shared_prompt.py); 0: its sequences
    run whole. `scored_tokens`: the most tokens of an example the LM head scores (TRL's fused head scores answers
    only: lm_head.py); 0: all."""
    compute = BYTES[resolved.dtype]
    embeddings = shape.vocab * shape.hidden
    linear = shape.params - embeddings
    weights = linear * 0.5625 + embeddings * compute if resolved.load_in_4bit else shape.params * compute
    trainable = shape.lora_params(r) * (4 + 4 + 8 + (0 if compute == 4 else 4))  # weights, grads, Adam, fp32 copy
    tokens = resolved.batch_size * (pair_tokens or sequences_per_example * seq_len)
    # What autograd keeps per token and layer of a Llama-style layer with LoRA on every linear module: 14
    # hidden-sized values (the two residual inputs and their normed copies, q before and after rotary, the attention
    # output and o's, the LoRA dropout copies of the inputs of q, k, v, o, gate and up), 4 k/v-sized (k before and
    # after rotary, v, one spare), 5 MLP-sized (gate, up, silu(gate), their product, down's dropout copy), and a byte
    # per dropout-mask element. On CPU this tally with the logits is ~90% of the growth of peak RSS per token
    # measured for SmolLM2 at 120-640 tokens (benchmarks/results/trainer.md). With gradient checkpointing: the layer
    # inputs, plus one layer recomputed at a time.
    kv = shape.kv_heads * shape.per_head
    per_layer = tokens * ((14 * shape.hidden + 4 * kv + 5 * shape.intermediate) * compute + 6 * shape.hidden + shape.intermediate)
    activations = (
        tokens * shape.hidden * compute * shape.layers + per_layer
        if resolved.gradient_checkpointing
        else per_layer * shape.layers
    )
    # fp32 logits over the vocabulary: the output, its log-softmax, the softmax autograd keeps, and two
    # gradients — 5 copies, as measured on CPU (peak RSS, SmolLM2's 49k vocabulary, 64-256 tokens).
    logits = resolved.batch_size * (scored_tokens or sequences_per_example * seq_len) * shape.vocab * 4 * 5
    return Estimate(baseline, weights, trainable, activations, logits)


PACK_HEADROOM = 0.75  # pack only into this share of the budget: the estimate is within 30% of measured memory


def pack(
    shape: Shape,
    resolved: Resolved,
    r: int,
    seq_len: int,
    sequences: int,
    baseline: float,
    budget_gb: float,
    pair_tokens: int = 0,
    scored_tokens: int = 0,
) -> Resolved:
    """The step's pairs in as few micro-batches as fit 75% of the budget without gradient checkpointing.

    The optimizer sees the same pairs per step; what changes is how many forward/backward passes carry them. On a GPU
    one short pair per pass leaves most of the device idle, so fewer, larger passes should train faster (not measured
    here: no GPU was lent; benchmarks/results/trainer.md). Packing never turns checkpointing on: that costs more
    compute than packing saves.
    """
    pairs = resolved.batch_size * resolved.grad_accumulation
    for micro in range(pairs, resolved.batch_size, -1):
        if pairs % micro:
            continue
        packed = replace(resolved, batch_size=micro, grad_accumulation=pairs // micro)
        est = estimate(shape, packed, r, seq_len, sequences, baseline, pair_tokens, scored_tokens)
        if est.total <= PACK_HEADROOM * budget_gb * GiB:
            return replace(
                packed,
                notes=[
                    *resolved.notes,
                    f"micro-batch {micro} x accumulation {pairs // micro}: the step's {pairs} pairs packed, as memory allows",
                ],
            )
    return resolved


class DoesNotFit(RuntimeError):
    def __init__(self, message: str, estimate: Estimate) -> None:
        super().__init__(message)
        self.estimate = estimate


def fit(
    shape: Shape,
    resolved: Resolved,
    r: int,
    seq_len: int,
    sequences: int,
    baseline: float,
    budget_gb: float,
    checkpointing_fixed: bool,
    packing: str = "off",
    pair_tokens: int = 0,
    scored_tokens: int = 0,
) -> tuple[Resolved, Estimate]:
    """The resolved settings adjusted until the estimate fits the budget, or DoesNotFit with the numbers.

    `packing` is `training.pack_micro_batches`: auto packs a step's pairs as far as they fit (`pack`), on a GPU only
    (on a 2-core CPU one packed micro-batch of 4 pairs trained no faster than 4 accumulated ones and took 1.7x the
    memory: benchmarks/results/trainer.md); on starts from one micro-batch per step and lets the loop below shrink it.
    """
    budget = budget_gb * GiB
    current = resolved
    if packing == "auto" and resolved.device != "cpu":
        current = pack(shape, resolved, r, seq_len, sequences, baseline, budget_gb, pair_tokens, scored_tokens)
    elif packing == "on":
        current = replace(resolved, batch_size=resolved.batch_size * resolved.grad_accumulation, grad_accumulation=1)
    est = estimate(shape, current, r, seq_len, sequences, baseline, pair_tokens, scored_tokens)
    while est.total > budget:
        if not current.gradient_checkpointing and not checkpointing_fixed:
            current = replace(
                current, gradient_checkpointing=True, notes=[*current.notes, "gradient checkpointing on to fit memory"]
            )
        elif current.batch_size > 1:
            batch = current.batch_size // 2
            accumulation = current.grad_accumulation * (current.batch_size // batch)
            current = replace(
                current,
                batch_size=batch,
                grad_accumulation=accumulation,
                notes=[*current.notes, f"micro-batch {batch} x accumulation {accumulation} to fit memory"],
            )
        else:
            raise DoesNotFit(
                f"estimated {est.total / GiB:.2f} GiB does not fit the {budget_gb:.2f} GiB available, even with "
                f"micro-batch 1 and gradient checkpointing. Try: data.max_length={max(64, seq_len // 2)}, a smaller "
                "lora.r, 4-bit on a CUDA GPU, or a machine with more memory.",
                est,
            )
        est = estimate(shape, current, r, seq_len, sequences, baseline, pair_tokens, scored_tokens)
    return current, est
