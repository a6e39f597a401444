"""Train in this process while sampling its resident memory; print the estimate and the measured peak.

    python memprobe.py HOME MODEL BATCH MAX_LENGTH WORDS   -> JSON {"estimated_gib", "peak_gib"}
"""

from __future__ import annotations

import io
import json
import re
import sys
import threading
from pathlib import Path

import psutil
from trainer_helpers import publish_dataset, synthetic_pairs

from prefloop_core.contracts import ChatMessage
from prefloop_core.settings import Settings
from prefloop_core.store import ArtifactStore, LocalBackend
from prefloop_trainer.config import load_config
from prefloop_trainer.run import train


def main() -> None:
    home, model, batch, length, words = Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
    settings = Settings(home=home)
    store = ArtifactStore(LocalBackend(settings.bucket_dir))
    pairs = [p.model_copy(update={"chosen": [ChatMessage(role="assistant", content="wiki fact " * words)],
                                  "rejected": [ChatMessage(role="assistant", content="no idea " * words)]})
             for p in synthetic_pairs(16)]
    dataset = publish_dataset(store, pairs, "ds-memprobe0000001")
    peak = [0]
    stop = threading.Event()

    def sample() -> None:
        process = psutil.Process()
        while not stop.wait(0.01):
            peak[0] = max(peak[0], process.memory_info().rss)

    threading.Thread(target=sample, daemon=True).start()
    out = io.StringIO()
    config = load_config(None, [f"model.base={model}", f"data.dataset_id={dataset}", f"training.batch_size={batch}",
                                "training.grad_accumulation=1", f"data.max_length={length}", "training.max_steps=2",
                                "training.gradient_checkpointing=off", "training.checkpoint_steps=1000"])
    train(config, settings, store, out)
    stop.set()
    estimated = float(re.search(r"estimated ([\d.]+) GiB", out.getvalue()).group(1))  # type: ignore[union-attr]
    print(json.dumps({"estimated_gib": estimated, "peak_gib": peak[0] / 2**30}))


if __name__ == "__main__":
    main()
