"""TRL's fused LM head scoring only the tokens that have a label, on CPU as it already does on CUDA.

TRL's fused head (`add_fused_lm_head`) projects every position through the LM head and zeroes the prompt positions
afterwards, unless the device runs Triton: elsewhere (its comment names Neuron) a changing number of scored positions
would change tile shapes and recompile. Eager CPU compiles nothing, so here it scores only the answer tokens, as on
CUDA. For SmolLM2 the head (49k x 576) is about a fifth of the model's compute per token, and in the loop's RAG pairs
most tokens are prompt. The switch TRL reads is the private `trl.trainer.utils._use_triton`; TRL is pinned, and
tests/test_lm_head.py fails if the pinned TRL stops reading it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def answer_only_lm_head() -> Iterator[None]:
    from trl.trainer import utils

    triton = utils._use_triton
    utils._use_triton = lambda device: torch.device(device).type == "cpu" or triton(device)
    try:
        yield
    finally:
        utils._use_triton = triton
