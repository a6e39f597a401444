"""Trainer speed: this trainer vs a plain TRL DPOTrainer script with TRL's defaults, same data, model, steps.

    .venvs/trainer/bin/python benchmarks/train_bench.py [--batch defaults|same] [--pairs 16] [--steps 12]
        [--repeats 3] [--set KEY=VALUE ...] [--out FILE]

Model: SmolLM2-135M-Instruct (from the bundled GGUF, as an HF checkpoint), LoRA r16 on all linear
layers, CPU, the same number of optimizer steps on each side. The baseline is TRL's defaults plus
`use_cpu=True` (they refuse to start on CPU otherwise). `--batch defaults` (the default): each side
batches as its defaults say (ours: 1 pair per micro-batch x 4 accumulated; TRL: 8 x 1), so a step is
4 pairs against 8 and pairs/s compares throughput. `--batch same`: both 2 pairs per step, 2 per
micro-batch (like for like on the batch shape). The defaults (16 pairs, 12 steps) make our side 3 epochs
of the trainer's defaults (the source's epochs; the trainer's default is 5 since 2026-11-30); TRL's side sees each pair 6 times
(a multiple of 8 pairs keeps every batch full, so pairs trained = steps x pairs per step on both sides).
Runs alternate (ours, baseline, ours, ...) because timings on a shared VM swing between identical runs;
each run is its own process so peak RSS is its own. Goals: >= 1.3x pairs/s, <= 1.0x peak memory,
reward accuracy no worse.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
from datetime import datetime, timezone
from pathlib import Path

from report import emit  # the script's folder is on sys.path

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parents[1] / "services" / "trainer" / "tests"))


class Peak:
    def __init__(self) -> None:
        import psutil

        self.process, self.peak, self.stop = psutil.Process(), 0, threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while not self.stop.wait(0.02):
            self.peak = max(self.peak, self.process.memory_info().rss)


# Per side and --batch mode: (pairs per micro-batch, micro-batches per step); None = that side's default.
BATCH = {"defaults": {"ours": None, "baseline": None}, "same": {"ours": (2, 1), "baseline": (2, 1)}}


def ours(home: Path, dataset: str, steps: int, extra: list[str], batch: tuple[int, int] | None) -> dict[str, float]:
    from prefloop_core.settings import Settings
    from prefloop_core.store import ArtifactStore, LocalBackend
    from prefloop_trainer.config import load_config
    from prefloop_trainer.run import train

    settings = Settings(home=home)
    store = ArtifactStore(LocalBackend(settings.bucket_dir))
    peak = Peak()
    shape = [f"training.batch_size={batch[0]}", f"training.grad_accumulation={batch[1]}"] if batch else []
    config = load_config(
        None,
        [
            f"data.dataset_id={dataset}",
            *shape,
            f"training.max_steps={steps}",
            "training.checkpoint_steps=1000",
            "data.max_length=256",
            *extra,
        ],
    )
    run = train(config, settings, store, io.StringIO())
    metrics = json.loads(store.read_bytes(run, "metrics.json"))
    return {
        "seconds": metrics["summary"]["train_runtime"],
        "rss_gib": peak.peak / 2**30,
        "reward_accuracy": metrics["steps"][-1]["rewards/accuracies"],
        "pairs": steps * config.training.batch_size * config.training.grad_accumulation,
    }


def baseline(home: Path, dataset: str, steps: int, extra: list[str], batch: tuple[int, int] | None) -> dict[str, float]:
    """The plain script a user would write: TRL defaults, LoRA, use_cpu."""
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    from prefloop_core.settings import Settings
    from prefloop_core.store import ArtifactStore, LocalBackend
    from prefloop_trainer.data import load_pairs
    from prefloop_ml.base_model import hf_checkpoint

    settings = Settings(home=home)
    store = ArtifactStore(LocalBackend(settings.bucket_dir))
    _, pairs = load_pairs(store, dataset, home / "baseline")
    peak = Peak()
    checkpoint = hf_checkpoint("smollm2", settings)
    model = AutoModelForCausalLM.from_pretrained(checkpoint)
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    shape = {"per_device_train_batch_size": batch[0], "gradient_accumulation_steps": batch[1]} if batch else {}
    args = DPOConfig(
        output_dir=str(home / "baseline-out"),
        use_cpu=True,
        max_steps=steps,
        logging_steps=1,
        report_to="none",
        save_strategy="no",
        max_length=256,
        **shape,
    )
    trainer = DPOTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(pairs.train),
        processing_class=tokenizer,
        peft_config=LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", task_type="CAUSAL_LM"),
    )
    result = trainer.train()
    accuracy = [log["rewards/accuracies"] for log in trainer.state.log_history if "rewards/accuracies" in log][-1]
    return {
        "seconds": result.metrics["train_runtime"],
        "rss_gib": peak.peak / 2**30,
        "reward_accuracy": accuracy,
        "pairs": steps * args.per_device_train_batch_size * args.gradient_accumulation_steps,
    }


def child(kind: str, home: str, dataset: str, steps: str, extra: str, mode: str) -> None:
    result = (ours if kind == "ours" else baseline)(Path(home), dataset, int(steps), json.loads(extra), BATCH[mode][kind])
    print("RESULT " + json.dumps(result))


def prepare(home: Path, n: int) -> str:
    from trainer_helpers import TOPICS, publish_dataset

    from prefloop_core.contracts import ChatMessage, PreferencePair
    from prefloop_core.settings import Settings
    from prefloop_core.store import ArtifactStore, LocalBackend
    from prefloop_ml.base_model import hf_checkpoint

    settings = Settings(home=home)
    hf_checkpoint("smollm2", settings)  # convert the GGUF once, outside the timings
    pairs = [
        PreferencePair(
            prompt=[ChatMessage(role="user", content=f"In one sentence, what is {TOPICS[i % len(TOPICS)]} known for?")],
            chosen=[ChatMessage(role="assistant", content=f"{TOPICS[i % len(TOPICS)]} is a well-known part of its game's wiki.")],
            rejected=[ChatMessage(role="assistant", content="I'm sorry, I don't have any information about that at all.")],
        )
        for i in range(n)
    ]
    return publish_dataset(ArtifactStore(LocalBackend(settings.bucket_dir)), pairs, "ds-trainbench000001")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--batch",
        choices=sorted(BATCH),
        default="defaults",
        help="defaults: each side's own batch defaults (ours 1x4, TRL 8x1); same: both 2x1",
    )
    parser.add_argument("--pairs", type=int, default=16, help="size of the synthetic dataset: a multiple of 8")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path)
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra trainer config for our side, e.g. training.gradient_checkpointing=on",
    )
    parser.add_argument("--child", nargs=6, help=argparse.SUPPRESS)
    ns = parser.parse_args()
    if ns.pairs % 8:
        parser.error("--pairs must be a multiple of 8, so that every batch is full on both sides")
    if ns.child:
        child(*ns.child)
        return
    results: dict[str, list[dict[str, float]]] = {"ours": [], "baseline": []}
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        dataset = prepare(home, ns.pairs)
        for i in range(ns.repeats):
            for kind in ("ours", "baseline") if i % 2 == 0 else ("baseline", "ours"):
                done = subprocess.run(
                    [
                        sys.executable,
                        str(HERE),
                        "--child",
                        kind,
                        str(home),
                        dataset,
                        str(ns.steps),
                        json.dumps(ns.overrides),
                        ns.batch,
                    ],
                    capture_output=True,
                    text=True,
                    env={**os.environ, "PYTHONWARNINGS": "ignore"},
                )
                line = next((row for row in done.stdout.splitlines() if row.startswith("RESULT ")), None)
                if line is None:
                    raise SystemExit(f"{kind} failed:\n{done.stderr[-3000:]}")
                results[kind].append(json.loads(line[7:]))
                print(kind, results[kind][-1], flush=True)

    def med(kind: str, key: str) -> float:
        return statistics.median(r[key] for r in results[kind])

    speed = {k: results[k][0]["pairs"] / med(k, "seconds") for k in results}
    shape = {
        "defaults": "each side's default batch (ours 1 pair x 4 accumulated, TRL 8 x 1)",
        "same": "both 2 pairs per micro-batch x 1",
    }[ns.batch]
    lines = [
        f"machine: {platform.node()} · {platform.machine()} · {os.cpu_count()} cores · "
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC · SmolLM2-135M-Instruct, LoRA r16 all-linear, "
        f"{shape}, {ns.pairs} pairs, {ns.steps} steps, {ns.repeats} runs each (median)"
        + (f"; our overrides: {' '.join(ns.overrides)}" if ns.overrides else ""),
        "",
        "| | pairs/s | peak RSS GiB | final reward accuracy |",
        "| --- | ---: | ---: | ---: |",
        f"| prefloop trainer | {speed['ours']:.2f} | {med('ours', 'rss_gib'):.2f} | {med('ours', 'reward_accuracy'):.2f} |",
        f"| plain TRL DPOTrainer (defaults + use_cpu) | {speed['baseline']:.2f} | {med('baseline', 'rss_gib'):.2f} | "
        f"{med('baseline', 'reward_accuracy'):.2f} |",
        f"| ratio | {speed['ours'] / speed['baseline']:.2f}x | {med('ours', 'rss_gib') / med('baseline', 'rss_gib'):.2f}x | |",
        "",
        "all runs: " + json.dumps(results),
    ]
    emit(lines, ns.out)


if __name__ == "__main__":
    main()
