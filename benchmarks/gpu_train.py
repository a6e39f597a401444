"""4-bit DPO + LoRA on a Qwen2.5-7B-shaped model on a CUDA GPU: peak VRAM, step time and the resolved settings, held
against the trainer's own pre-flight estimate and the source's claim that 7B trains in 16 GB (issue #4's GPU item).

    python benchmarks/gpu_train.py [--shape qwen2.5-7b|tiny] [--steps 6] [--pairs 32] [--set KEY=VALUE ...] [--out FILE]

The hub is unreachable, so the model is Qwen2.5-7B-Instruct's published shape (28 layers, hidden 3584, MLP 18944,
28 query / 4 key-value heads, vocabulary 152064) with random bf16 weights, saved as an HF folder and handed to the
trainer like any base: `prefloop_trainer.run.train`, the code behind `prefloop train`, with its defaults (on CUDA: NF4
4-bit base, bf16 where the GPU has it, the memory plan) plus `--set` overrides. The tokenizer is SmolLM2's (its ids fit
the larger vocabulary); the pairs are the bundled QA set's RAG prompts (99-336 tokens, as in the demo) with the
reference answer chosen and a wrong one rejected, so lengths are the loop's. Random weights train as fast and take as
much memory as trained ones; the losses mean nothing.

`--shape tiny` runs the same path on a 2-layer model of the same family on any machine (a check of this script).

On a GPU machine without a package index (the device tool's): `benchmarks/gpu_train.sh prepare` here puts the wheels
its image lacks and the tokenizer into .gpu/, `benchmarks/gpu_train.sh run` there installs them and runs this.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import random
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from report import emit  # the script's folder is on sys.path

REPO = Path(__file__).resolve().parents[1]
# Qwen2.5-7B-Instruct's config.json (the published shape); rope and norm constants as published.
SHAPES = {
    "qwen2.5-7b": dict(
        hidden_size=3584,
        intermediate_size=18944,
        num_hidden_layers=28,
        num_attention_heads=28,
        num_key_value_heads=4,
        vocab_size=152064,
        max_position_embeddings=32768,
        rope_theta=1e6,
        rms_norm_eps=1e-6,
        tie_word_embeddings=False,
        hidden_act="silu",
    ),
    "tiny": dict(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=49152,
        max_position_embeddings=2048,
        rope_theta=1e6,
        rms_norm_eps=1e-6,
        tie_word_embeddings=False,
        hidden_act="silu",
    ),
}
SOURCE_CLAIM_GIB = 16 * 10**9 / 2**30  # "fits in 16 GB": a 16 GB card, as nvidia-smi counts


def make_model(shape: str, tokenizer: Path, folder: Path) -> None:
    """Random weights of the shape, saved as an HF folder with the tokenizer and its parameter count."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, Qwen2Config

    config = Qwen2Config(**SHAPES[shape])
    torch.manual_seed(0)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with torch.device(device):  # initialised where it will train: seconds on a GPU for 7.6B parameters
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    tok = AutoTokenizer.from_pretrained(tokenizer)
    model.generation_config.eos_token_id = tok.eos_token_id
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    (folder / "parameters.json").write_text(json.dumps({"parameters": sum(p.numel() for p in model.parameters())}))
    del model
    if device == "cuda":
        torch.cuda.empty_cache()


def qa_pairs(n: int) -> list:
    """The bundled QA set's questions as the loop's training pairs: the RAG prompt, the reference chosen, the reference
    of another question rejected (a fluent wrong answer, as a small model gives)."""
    from prefloop_core.contracts import ChatMessage, PreferencePair
    from prefloop_core.prompts import PromptTemplate

    questions = json.loads((REPO / "flows/src/prefloop_flows/data/qa_set.json").read_text(encoding="utf-8"))["questions"]
    template, rng = PromptTemplate(), random.Random(0)
    pairs = []
    for i in range(n):
        q, other = questions[i % len(questions)], questions[rng.randrange(len(questions))]
        pairs.append(
            PreferencePair(
                prompt=template.render(q["question"], q.get("context")),
                chosen=[ChatMessage(role="assistant", content=q["reference"])],
                rejected=[ChatMessage(role="assistant", content=other["reference"])],
                item_id=i,
                game=q["game"],
            )
        )
    return pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default="qwen2.5-7b")
    parser.add_argument("--steps", type=int, default=6, help="optimizer steps (the first includes warm-up)")
    parser.add_argument("--pairs", type=int, default=32)
    parser.add_argument(
        "--tokenizer",
        type=Path,
        help="an HF tokenizer folder (default: SmolLM2's, from the bundled model package; on the device machine .gpu/tokenizer)",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="trainer config, e.g. training.batch_size=2 or quantization.load_in_4bit=off",
    )
    parser.add_argument("--work", type=Path, help="a folder that keeps the model for the next run (default: none)")
    parser.add_argument("--out", type=Path)
    ns = parser.parse_args()

    import torch

    from prefloop_core.contracts import TrainingRun
    from prefloop_core.settings import Settings
    from prefloop_core.store import ArtifactStore, LocalBackend
    from prefloop_trainer.config import load_config
    from prefloop_trainer.run import train

    sys.path.insert(0, str(REPO / "services/trainer/tests"))
    from trainer_helpers import publish_dataset

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(home=Path(tmp) / "home")
        store = ArtifactStore(LocalBackend(settings.bucket_dir))
        tokenizer = ns.tokenizer
        if tokenizer is None:  # the tokenizer alone: converting SmolLM2's weights here would count in a CPU peak RSS
            from prefloop_ml.base_model import load_tokenizer

            tokenizer = Path(tmp) / "tokenizer"
            load_tokenizer("smollm2", settings).save_pretrained(tokenizer)
        model_dir = (ns.work or Path(tmp)) / f"model-{ns.shape}"
        t0 = time.monotonic()
        reused = (model_dir / "parameters.json").is_file()  # made by an earlier run with the same --work
        if not reused:
            make_model(ns.shape, tokenizer, model_dir)
        made = time.monotonic() - t0
        params = json.loads((model_dir / "parameters.json").read_text())["parameters"]
        dataset = publish_dataset(store, qa_pairs(ns.pairs), "ds-gputrain00000001")
        config = load_config(
            None,
            [
                f"model.base={model_dir}",
                f"data.dataset_id={dataset}",
                f"training.max_steps={ns.steps}",
                "training.checkpoint_steps=100000",
                *ns.overrides,
            ],
        )
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        log = io.StringIO()

        class Tee(io.TextIOBase):
            def write(self, text: str) -> int:
                sys.stdout.write(text)
                return log.write(text)

        run = store.require(TrainingRun, train(config, settings, store, Tee()).run_id)
        metrics = json.loads(store.read_bytes(run, "metrics.json"))

    cuda = torch.cuda.is_available()
    allocated = torch.cuda.max_memory_allocated() / 2**30 if cuda else None
    plan, estimate, peak = run.plan, run.plan["memory_estimate_gib"], run.peak_memory_gib or 0.0
    # On CUDA the estimate counts the context as already in use and torch's counters do not: add what it counted.
    context = plan["memory_in_use_gib"] if cuda else 0.0
    measured = peak + context
    steps_done = metrics["steps"][-1]["step"] if metrics["steps"] else 0
    runtime = metrics["summary"].get("train_runtime", run.timings.get("train", 0.0))
    pairs_per_step = plan["batch_size"] * plan["grad_accumulation"]
    device = torch.cuda.get_device_name(0) if cuda else f"CPU ({os.cpu_count()} cores)"
    versions = " · ".join(f"{k} {v}" for k, v in run.versions.items())
    bnb = ""
    if plan["load_in_4bit"]:
        from importlib.metadata import version

        bnb = f" · bitsandbytes {version('bitsandbytes')}"
    lines = [
        f"machine: {platform.node()} · {device} · {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC · {versions}{bnb}",
        f"model: {ns.shape} shape, {params / 1e9:.2f}B parameters, random bf16 weights "
        f"({'reused from --work' if reused else f'made and saved in {made:.0f} s'}); "
        f"{ns.pairs} pairs of the bundled QA set's RAG prompts; {steps_done} steps"
        + (f"; overrides: {' '.join(ns.overrides)}" if ns.overrides else ""),
        "",
        "resolved: " + ", ".join(f"{k} {v}" for k, v in plan.items() if not k.startswith("memory_")),
        "",
        "| | GiB |",
        "| --- | ---: |",
        f"| trainer's pre-flight estimate{f' (incl. {context} GiB CUDA context)' if cuda else ''} | {estimate:.2f} |",
        f"| measured: {'torch max reserved + CUDA context' if cuda else 'peak RSS'} | {measured:.2f} |",
        *([f"| measured: torch max allocated | {allocated:.2f} |"] if cuda else []),
        f"| the source's claim (16 GB card) | {SOURCE_CLAIM_GIB:.2f} |",
        "",
        f"estimate / measured: {estimate / measured:.2f}x · "
        f"{'fits' if measured <= SOURCE_CLAIM_GIB else 'does NOT fit'} in 16 GB as measured",
        f"time: load {run.timings.get('load', 0):.0f} s · train {runtime:.1f} s for {steps_done} steps "
        f"({runtime / max(steps_done, 1):.2f} s/step, {pairs_per_step} pairs/step, "
        f"{steps_done * pairs_per_step / max(runtime, 1e-9):.2f} pairs/s) · planned {plan['estimated_seconds']:.0f} s",
        "",
        "plan as printed:",
        "```",
        *[
            row
            for row in log.getvalue().splitlines()
            if row.startswith("  ") or (row.startswith("run ") and "published" not in row)
        ],
        "```",
    ]
    emit(lines, ns.out)


if __name__ == "__main__":
    main()
