"""The shared-prompt forward gives TRL's DPO the log-probs and gradients its own forward gives, on the tiny model."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
import torch
from trainer_helpers import synthetic_pairs

from prefloop_trainer.shared_prompt import pack_pairs, sharing_prompts


def test_each_pair_packs_into_one_row_whose_rejected_rest_cannot_see_the_chosen_rest() -> None:
    # pair 0: prompt 1 2 3, chosen 4 6, rejected 5; pair 1: prompt 1 2, chosen 9, rejected 9 (identical rows)
    ids = torch.tensor([[1, 2, 3, 4, 6], [1, 2, 9, 0, 0], [1, 2, 3, 5, 0], [1, 2, 9, 0, 0]])
    packed = pack_pairs(ids, (ids != 0).long())
    assert packed is not None
    assert packed.input_ids.tolist() == [[1, 2, 3, 4, 6, 5], [1, 2, 9, 0, 0, 0]]
    assert packed.position_ids.tolist() == [[0, 1, 2, 3, 4, 3], [0, 1, 2, 0, 0, 0]]
    assert packed.gather.tolist() == [[0, 1, 2, 3, 4], [0, 1, 2, 0, 0], [0, 1, 2, 5, 0], [0, 1, 2, 0, 0]]
    allowed = packed.allowed[0, 0].int().tolist()
    assert allowed[5] == [1, 1, 1, 0, 0, 1]  # the rejected answer sees the prompt and itself, not 4 6
    assert allowed[4] == [1, 1, 1, 1, 1, 0]  # the chosen answer: causal, as in its own row
    assert packed.allowed[1, 0, 3:].int().tolist() == [[0, 0, 0, 1, 0, 0], [0, 0, 0, 0, 1, 0], [0, 0, 0, 0, 0, 1]]
    assert pack_pairs(ids, (ids != 0).long().flip(1)) is None  # left padding: not TRL's layout, left alone


def _policy_and_batch(tiny_model: Path, out: Path, dtype: torch.dtype, attention: str) -> tuple[object, dict[str, torch.Tensor]]:
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=dtype, attn_implementation=attention)
    pairs = [p.model_dump(mode="json", include={"prompt", "chosen", "rejected"}) for p in synthetic_pairs(6)]
    for i, pair in enumerate(pairs):  # answers of different lengths, and one pair whose answers start alike
        pair["chosen"][0]["content"] += " More." * i
    pairs[1]["rejected"] = pairs[1]["chosen"][:1]
    pairs[1]["rejected"][0] = {**pairs[1]["rejected"][0], "content": pairs[1]["chosen"][0]["content"] + " No."}
    trainer = DPOTrainer(
        model=model,
        args=DPOConfig(output_dir=str(out), use_cpu=True, report_to="none", per_device_train_batch_size=3),
        train_dataset=Dataset.from_list(pairs),
        processing_class=AutoTokenizer.from_pretrained(tiny_model),
        peft_config=LoraConfig(
            r=8, lora_alpha=16, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM", init_lora_weights=False
        ),
    )
    batch = next(iter(trainer.get_train_dataloader()))
    return trainer, batch


@pytest.mark.parametrize(
    ("dtype", "attention", "checkpointing"),
    [
        (torch.float32, "sdpa", False),
        (torch.float32, "eager", False),
        (torch.bfloat16, "sdpa", False),
        (torch.float32, "sdpa", True),
    ],
)
def test_log_probs_and_gradients_equal_trls_own_forward(
    tiny_model: Path, tmp_path: Path, dtype: torch.dtype, attention: str, checkpointing: bool
) -> None:
    trainer, batch = _policy_and_batch(tiny_model, tmp_path, dtype, attention)
    model = trainer.model
    if checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    packed = pack_pairs(batch["input_ids"], batch["attention_mask"])
    assert packed is not None and packed.input_ids.numel() < 0.7 * batch["input_ids"].numel()  # the prompts, once

    def run(shared: bool) -> tuple[torch.Tensor, list[torch.Tensor], list[tuple[int, ...]]]:
        """Log-probs per row, LoRA gradients, and the shape of each backbone pass."""
        model.zero_grad()
        labels = batch["input_ids"].masked_fill(batch["completion_mask"] == 0, -100)
        passes: list[tuple[int, ...]] = []
        embed = model.get_base_model().base_model.embed_tokens  # called once per backbone pass
        hook = embed.register_forward_pre_hook(lambda module, args: passes.append(tuple(args[0].shape)))
        try:
            with sharing_prompts(model) if shared else contextlib.nullcontext():
                out = model(
                    input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=labels, fused_lm_head=True
                )
        finally:
            hook.remove()
        (out.log_probs.sum(dim=1) * torch.arange(1, 7)).sum().backward()  # a different weight per row
        grads = [p.grad.detach().clone() for p in model.parameters() if p.requires_grad]
        return out.log_probs.sum(dim=1).detach(), grads, passes

    plain, plain_grads, passes = run(shared=False)
    assert passes == [tuple(batch["input_ids"].shape)]
    shared, shared_grads, passes = run(shared=True)
    assert passes == [tuple(packed.input_ids.shape)]  # one pass, each prompt once
    tolerance = 1e-4 if dtype is torch.float32 else 5e-2
    torch.testing.assert_close(shared, plain, rtol=tolerance, atol=tolerance * 10)
    for a, b in zip(shared_grads, plain_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=tolerance * 10, atol=tolerance)
