"""Train in this process (its own, so the peak RSS is this run's); print the estimate and the measured peak that the
run's `run.json` records (`plan.memory_estimate_gib`, `peak_memory_gib`).

    python memprobe.py HOME MODEL BATCH MAX_LENGTH WORDS [PROMPT_WORDS]   -> JSON {"estimated_gib", "peak_gib", "plan"}

WORDS sizes the answers; PROMPT_WORDS (default 0) puts a retrieved-context-like passage of that many words in the
prompt, the loop's RAG shape (long prompt, short answers).
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

from trainer_helpers import publish_dataset, synthetic_pairs

from prefloop_core.contracts import ChatMessage, TrainingRun
from prefloop_core.settings import Settings
from prefloop_core.store import ArtifactStore, LocalBackend
from prefloop_trainer.config import load_config
from prefloop_trainer.run import train


def main() -> None:
    home, model, batch, length, words = Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
    context = "wiki context " * int(sys.argv[6]) if len(sys.argv) > 6 else ""
    settings = Settings(home=home)
    store = ArtifactStore(LocalBackend(settings.bucket_dir))
    pairs = [
        p.model_copy(
            update={
                "prompt": [ChatMessage(role="user", content=context + p.prompt[0].content)],
                "chosen": [ChatMessage(role="assistant", content="wiki fact " * words)],
                "rejected": [ChatMessage(role="assistant", content="no idea " * words)],
            }
        )
        for p in synthetic_pairs(16)
    ]
    dataset = publish_dataset(store, pairs, "ds-memprobe0000001")
    config = load_config(
        None,
        [
            f"model.base={model}",
            f"data.dataset_id={dataset}",
            f"training.batch_size={batch}",
            "training.grad_accumulation=1",
            f"data.max_length={length}",
            "training.max_steps=2",
            "training.gradient_checkpointing=off",
            "training.checkpoint_steps=1000",
        ],
    )
    run = store.require(TrainingRun, train(config, settings, store, io.StringIO()).run_id)
    print(json.dumps({"estimated_gib": run.plan["memory_estimate_gib"], "peak_gib": run.peak_memory_gib, "plan": run.plan}))


if __name__ == "__main__":
    main()
