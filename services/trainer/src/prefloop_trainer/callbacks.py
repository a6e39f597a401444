"""What the trainer shows and guards while it runs, as transformers callbacks.

- progress: a bar with ETA and `step i/N loss ...` lines for people, and one
  `PREFLOOP_PROGRESS {json}` line per log for machines (the Prefect flow shows them);
- metrics: every logged step kept for metrics.json and the plots;
- NaN guard: a NaN or infinite loss stops the run with a message instead of training on garbage.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any

from transformers import TrainerCallback

from prefloop_core.contracts import TrainingProgress

SHOWN = ("loss", "rewards/accuracies", "rewards/margins", "learning_rate")


class NonFiniteLoss(RuntimeError):
    pass


def _eta(seconds: float) -> str:
    minutes, sec = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{sec:02d}" if hours else f"{minutes:02d}:{sec:02d}"


class Progress(TrainerCallback):
    def __init__(self, stage: str, stream: Any = None) -> None:
        self.stage = stage
        self.stream = stream or sys.stdout
        self.started = time.monotonic()
        self.first_step_at: float | None = None

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.started = time.monotonic()

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None, **kwargs: Any) -> None:
        if not logs or state.global_step == 0:
            return
        total = max(state.max_steps, 1)
        step = state.global_step
        elapsed = time.monotonic() - self.started
        if "train_runtime" in logs:  # the trainer's closing summary
            print(f"[{self.stage}] done: {step} steps in {elapsed:.0f}s", file=self.stream, flush=True)
            return
        eta = elapsed / step * (total - step)
        width = 24
        filled = int(width * step / total)
        bar = "#" * filled + "." * (width - filled)
        values = " ".join(f"{k.split('/')[-1]} {logs[k]:.4g}" for k in SHOWN if k in logs)
        print(
            f"[{self.stage}] [{bar}] step {step}/{total} {values} | {elapsed:.0f}s elapsed, {_eta(eta)} left",
            file=self.stream,
            flush=True,
        )
        progress = TrainingProgress(
            stage=self.stage,
            step=step,
            total=total,
            eta_s=round(eta, 1),
            **{k: v for k, v in logs.items() if isinstance(v, (int, float))},
        )
        print(progress.line(), file=self.stream, flush=True)


class Metrics(TrainerCallback):
    def __init__(self) -> None:
        self.steps: list[dict[str, float]] = []
        self.eval: list[dict[str, float]] = []
        self.summary: dict[str, float] = {}

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None, **kwargs: Any) -> None:
        if not logs:
            return
        row = {"step": state.global_step, **{k: v for k, v in logs.items() if isinstance(v, (int, float))}}
        if "train_runtime" in logs:
            self.summary = row  # the trainer's closing line: runtime, samples/s
        elif any(k.startswith("eval_") for k in logs):
            self.eval.append(row)
        else:
            self.steps.append(row)


class NaNGuard(TrainerCallback):
    def __init__(self) -> None:
        self.bad_step: int | None = None

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None, **kwargs: Any) -> None:
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            self.bad_step = state.global_step
            control.should_training_stop = True

    def check(self) -> None:
        if self.bad_step is not None:
            raise NonFiniteLoss(
                f"the loss became NaN/inf at step {self.bad_step}; training stopped. Lower training.learning_rate "
                "(e.g. by 10x), or raise method.beta; with fp16 try a GPU with bf16"
            )
