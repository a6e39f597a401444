"""One pass over the prompt a DPO pair's two answers share, instead of two.

TRL's DPO puts a pair's chosen and rejected sequence in one batch as two rows (`[chosen..., rejected...]`), so the
prompt they share goes through the model twice — in the loop's RAG prompts most of a pair's tokens. Here the
backbone gets each pair as one packed row instead: the shared prefix, the rest of the chosen answer, then the rest of
the rejected one, with its positions restarting where the prefix ends and an attention mask that keeps it from
seeing the chosen answer (the "tree" layout of prefix-sharing attention). The hidden states are gathered back into
TRL's two-row layout, so TRL's loss and fused LM head get what its own forward gives (equal within float rounding:
tests/test_shared_prompt.py), computed from P + C + R tokens instead of 2P + C + R, in one pass. TRL's loss, loop
and LM head are untouched.

Used for models whose attention takes a 4D mask (`sdpa`, `eager`); others (flash attention, mixture-of-experts
router losses) run TRL's own forward.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple

import torch


class Packed(NamedTuple):
    input_ids: torch.Tensor  # (pairs, N): prefix, chosen rest, rejected rest, padding
    position_ids: torch.Tensor  # (pairs, N): the positions each token has in its own sequence
    allowed: torch.Tensor  # (pairs, 1, N, N) bool: which packed token each may attend to
    gather: torch.Tensor  # (rows, L): where each token of TRL's rows sits in its pair's packed row


def pack_pairs(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> Packed | None:
    """TRL's `[chosen..., rejected...]` right-padded rows as one packed row per pair, or None if they are not that."""
    rows, width = input_ids.shape
    if rows % 2 or rows == 0:
        return None
    half, device = rows // 2, input_ids.device
    real = attention_mask.bool()
    lengths = real.sum(dim=1)
    if not torch.equal(real, torch.arange(width, device=device) < lengths[:, None]):
        return None  # not right-padded
    same = (input_ids[:half] == input_ids[half:]) & real[:half] & real[half:]
    shared = same.long().cumprod(dim=1).sum(dim=1)
    chosen, rejected = lengths[:half], lengths[half:]
    n = int((chosen + rejected - shared).max())
    ids = torch.zeros(half, n, dtype=input_ids.dtype, device=device)
    positions = torch.zeros(half, n, dtype=torch.long, device=device)
    part = torch.full((half, n), -1, dtype=torch.long, device=device)  # 0: prefix or chosen, 1: rejected rest
    gather = torch.zeros(rows, width, dtype=torch.long, device=device)
    span = torch.arange(max(n, width), device=device)
    for i in range(half):
        c, r, p = int(chosen[i]), int(rejected[i]), int(shared[i])
        ids[i, :c], ids[i, c : c + r - p] = input_ids[i, :c], input_ids[half + i, p:r]
        positions[i, :c], positions[i, c : c + r - p] = span[:c], span[p:r]
        part[i, :c], part[i, c : c + r - p] = 0, 1
        gather[i, :c] = span[:c]
        gather[half + i, :p], gather[half + i, p:r] = span[:p], span[c : c + r - p]
    q, k = span[:n, None], span[None, :n]
    causal = k <= q
    is_chosen_rest = (part == 0) & (span[None, :n] >= shared[:, None])
    hidden_from_rejected = (part[:, :, None] == 1) & is_chosen_rest[:, None, :]
    allowed = causal & (part[:, None, :] >= 0) & (part[:, :, None] >= 0) & ~hidden_from_rejected
    allowed |= torch.eye(n, dtype=torch.bool, device=device)  # padding attends to itself: no all-masked row (NaN)
    return Packed(ids, positions, allowed[:, None], gather)


def _backbone(model: Any) -> Any:
    from peft import PeftModel

    causal_lm = model.get_base_model() if isinstance(model, PeftModel) else model
    return causal_lm.base_model


@contextmanager
def sharing_prompts(model: Any) -> Iterator[None]:
    """While inside, `model`'s backbone runs each pair as one packed row (see the module's docstring)."""
    backbone = _backbone(model)
    implementation = getattr(backbone.config, "_attn_implementation", None)
    if "forward" in vars(backbone) or implementation not in ("sdpa", "eager"):
        yield
        return
    original = backbone.forward

    def forward(input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None, **kwargs: Any) -> Any:
        packed = None
        if (
            input_ids is not None
            and attention_mask is not None
            and kwargs.get("position_ids") is None
            and kwargs.get("past_key_values") is None
            and not kwargs.get("output_router_logits")
        ):
            packed = pack_pairs(input_ids, attention_mask)
        if packed is None:
            return original(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
        assert input_ids is not None  # packed from it
        mask: torch.Tensor = packed.allowed
        if implementation == "eager":
            dtype = backbone.get_input_embeddings().weight.dtype
            mask = torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(~mask, torch.finfo(dtype).min)
        out = original(input_ids=packed.input_ids, attention_mask=mask, position_ids=packed.position_ids, **kwargs)
        half = input_ids.size(0) // 2
        pair = torch.arange(half, device=input_ids.device).repeat(2)[:, None]
        return type(out)(last_hidden_state=out.last_hidden_state[pair, packed.gather])

    backbone.forward = forward
    try:
        yield
    finally:
        del backbone.forward


def sharing_prompts_in(trainer_cls: type) -> type:
    """`trainer_cls` (TRL's DPOTrainer) with its policy and reference forwards sharing each pair's prompt."""

    class SharedPrompt(trainer_cls):
        def _compute_loss(self, model: Any, inputs: Any, return_outputs: bool) -> Any:
            with sharing_prompts(self.model):
                return super()._compute_loss(model, inputs, return_outputs)

        def compute_ref_log_probs(self, model: Any, inputs: Any) -> Any:
            with sharing_prompts(self.model):
                return super().compute_ref_log_probs(model, inputs)

    return SharedPrompt
