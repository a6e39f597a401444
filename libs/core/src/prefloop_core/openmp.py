"""How the OpenMP threads of prefloop's CPU work wait for each other: llama-server slots, the trainer's torch, the
exporter's torch and llama.cpp tools.

ggml (llama.cpp) and torch run their CPU threads under GNU OpenMP, which spins at every barrier (300,000 iterations)
before it sleeps; there are hundreds of barriers per token or training step. One busy process loses nothing by it.
Two busy processes on the same cores preempt each other's spinning threads, and a barrier then waits out a scheduler
time slice. On 2 cores: the live slot fell to a fifth of its speed while a candidate answered the QA gate
(benchmarks/results/server.md); 3 DPO steps beside a busy live slot took 154 s spinning and 13 s passive, and the
exporter's log-likelihood pass 27.6 s against 11.5 s (benchmarks/results/trainer.md). `passive` sleeps at once.
"""

from __future__ import annotations

import os
from typing import Literal

WaitPolicy = Literal["passive", "active", "default"]


def wait_policy_environment(policy: WaitPolicy) -> dict[str, str]:
    """The variables that give an OpenMP runtime `policy` (none for `default`: OpenMP's own, spin then sleep)."""
    return {} if policy == "default" else {"OMP_WAIT_POLICY": policy}


def use_wait_policy(policy: WaitPolicy) -> None:
    """This process and its children wait at OpenMP barriers as `policy` says. Call it before torch or a llama.cpp
    tool starts: an OpenMP runtime reads `OMP_WAIT_POLICY` once, when it loads."""
    os.environ.update(wait_policy_environment(policy))
