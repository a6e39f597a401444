"""On CPU, TRL's fused LM head scores only the labelled (answer) tokens inside `answer_only_lm_head`, with the same
log-probs and gradients; if the pinned TRL stops reading the switch this relies on, the first test fails."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from prefloop_trainer.lm_head import answer_only_lm_head


def test_the_log_probs_and_gradients_are_trls_from_the_answer_rows_only(
    tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM
    from trl.trainer import utils
    from trl.trainer.utils import add_fused_lm_head

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    add_fused_lm_head(model)
    model = get_peft_model(
        model, LoraConfig(r=8, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM", init_lora_weights=False)
    )
    ids = torch.randint(10, 1000, (2, 40))
    labels = ids.masked_fill(torch.arange(40) < 30, -100)  # a 30-token prompt, a 10-token answer
    scored: list[int] = []
    chunked = utils._ChunkedLogProbFunction

    class Recording:
        @staticmethod
        def apply(hidden: torch.Tensor, *args: Any) -> Any:
            scored.append(hidden.size(0))
            return chunked.apply(hidden, *args)

    monkeypatch.setattr(utils, "_ChunkedLogProbFunction", Recording)

    def run() -> tuple[torch.Tensor, list[torch.Tensor]]:
        model.zero_grad()
        log_probs = model(input_ids=ids, labels=labels, fused_lm_head=True).log_probs
        (log_probs.sum(dim=1) * torch.tensor([1.0, 2.0])).sum().backward()
        return log_probs.detach(), [p.grad.clone() for p in model.parameters() if p.requires_grad]

    everything, everything_grads = run()
    with answer_only_lm_head():
        answers, answer_grads = run()
    assert scored == [2 * 39, 2 * 10]  # every shifted position, then only those with a label
    assert run() is not None and scored[-1] == 2 * 39  # the switch is TRL's own again outside
    torch.testing.assert_close(answers, everything)
    for a, b in zip(answer_grads, everything_grads, strict=True):
        torch.testing.assert_close(a, b)
