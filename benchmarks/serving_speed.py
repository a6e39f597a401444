"""How fast a promoted model answers: the base release, the same base with the candidate's LoRA applied at run
time (an `adapter` release), and the candidate merged into the weights (a `merged` release), side by side.

    .venvs/server/bin/python benchmarks/serving_speed.py --home DIR --base TAG --adapter TAG --merged TAG [--out FILE]
    .venvs/server/bin/python benchmarks/serving_speed.py --synthetic 1b --work DIR [--out FILE]

Each variant is loaded the way the server loads a release (`prefloop_server.releases.materialize` and the slot's own
llama-server command line), one at a time, and asked the same prompts one request at a time for `--tokens` tokens
(greedy, end of text ignored so every answer is as long, no prompt cache); llama-server's own timings give the
generation speed. The variants take turns over `--rounds` rounds so that a drift of the machine's speed hits each
alike. The baseline is the base release: the speed the user had before the loop changed anything.

`--synthetic 1b` measures a 1B-shaped model instead (Llama-3.2-1B's shape: 16 layers, hidden 2048, SmolLM2's
tokenizer) with random weights and a random LoRA of the trainer's default shape (rank 16 on every linear layer):
speed does not depend on what the weights say. It is made once in `--work` by the exporter's environment with the
exporter's own conversion and quantization (a few minutes and ~12 GB of disk).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import httpx

from report import emit, machine  # the script's folder is on sys.path

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = [
    "How do I find diamonds in Minecraft?",
    "What is the best way to catch a Palworld pal?",
    "Explain what a support hero does in Overwatch.",
    "Write a short story about a robot that learns to cook.",
]


# -- the synthetic 1B-shaped model (runs in the exporter's environment) ---------------------------------------------


def make_synthetic(work: Path) -> None:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    from prefloop_core.contracts import Quantization
    from prefloop_core.settings import load_settings
    from prefloop_core.toolchain import llama_cpp
    from prefloop_exporter.gguf_tools import convert_lora, convert_to_f16, quantize

    from prefloop_ml.base_model import load_tokenizer

    settings = load_settings()
    tools = llama_cpp(settings)
    work.mkdir(parents=True, exist_ok=True)
    if (work / "done.json").exists():
        return
    torch.manual_seed(0)
    tokenizer = load_tokenizer("smollm2", settings)  # SmolLM2's (vocabulary 49152)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=2048,
        intermediate_size=8192,
        num_hidden_layers=16,
        num_attention_heads=32,
        num_key_value_heads=8,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        rms_norm_eps=1e-5,
        rope_theta=500000.0,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    model = LlamaForCausalLM(config).to(torch.float16)
    print(f"synthetic model: {sum(p.numel() for p in model.parameters()) / 1e9:.2f} B parameters", flush=True)
    base_dir = work / "base-hf"
    model.save_pretrained(base_dir)
    tokenizer.save_pretrained(base_dir)
    lora = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", init_lora_weights=False))
    lora.save_pretrained(work / "lora-hf")
    merged = lora.merge_and_unload()
    merged.save_pretrained(work / "merged-hf")
    tokenizer.save_pretrained(work / "merged-hf")
    del model, lora, merged
    for name in ("base", "merged"):
        f16 = convert_to_f16(tools, work / f"{name}-hf", work / f"{name}-f16.gguf")
        quantize(tools, f16, work / f"{name}-Q4_K_M.gguf", Quantization.Q4_K_M)
        f16.unlink()
    convert_lora(tools, work / "lora-hf", base_dir, work / "lora.gguf")
    (work / "done.json").write_text(
        json.dumps({"base": "base-Q4_K_M.gguf", "adapter": ["base-Q4_K_M.gguf", "lora.gguf"], "merged": "merged-Q4_K_M.gguf"})
    )


# -- measuring (runs in the server's environment) ------------------------------------------------------------------


def variants(args: argparse.Namespace, settings: object) -> dict[str, object]:
    from prefloop_core.store import open_store
    from prefloop_server.releases import materialize
    from prefloop_server.slots import Model

    if args.synthetic:
        work = args.work.resolve()
        exporter_python = Path(os.environ.get("PREFLOOP_VENVS_DIR", ROOT / ".venvs")) / "exporter" / "bin" / "python"
        subprocess.run([str(exporter_python), __file__, "--make-synthetic", str(work)], check=True)
        return {
            "base": Model("base", work / "base-Q4_K_M.gguf"),
            "adapter": Model("adapter", work / "base-Q4_K_M.gguf", (work / "lora.gguf",)),
            "merged": Model("merged", work / "merged-Q4_K_M.gguf"),
        }
    store = open_store(settings)  # type: ignore[arg-type]
    return {
        name: materialize(store, tag, settings)
        for name, tag in (("base", args.base), ("adapter", args.adapter), ("merged", args.merged))  # type: ignore[arg-type]
    }


async def speeds(slot: object, model: object, tokens: int) -> list[float]:
    """Generated tokens/s of each prompt (llama-server's own timing), after one warm-up request."""
    await slot.start(model)  # type: ignore[attr-defined]
    try:
        async with httpx.AsyncClient(timeout=600, headers=slot.headers()) as client:  # type: ignore[attr-defined]
            out = []
            for i, prompt in enumerate([PROMPTS[0], *PROMPTS]):
                body = {"prompt": prompt, "n_predict": tokens, "temperature": 0, "ignore_eos": True, "cache_prompt": False}
                reply = (await client.post(f"{slot.url}/completion", json=body)).raise_for_status().json()  # type: ignore[attr-defined]
                if i and reply["timings"]["predicted_n"] == tokens:
                    out.append(float(reply["timings"]["predicted_per_second"]))
            return out
    finally:
        await slot.stop(drain=False)  # type: ignore[attr-defined]


def measure(args: argparse.Namespace) -> None:
    from prefloop_core.settings import load_settings
    from prefloop_core.toolchain import llama_cpp
    from prefloop_server.settings import ServerSettings
    from prefloop_core.contracts import SlotName
    from prefloop_server.slots import Slot

    if args.home:
        os.environ["PREFLOOP_HOME"] = str(args.home.resolve())
    settings = load_settings(ServerSettings)
    models = variants(args, settings)
    results: dict[str, list[float]] = {name: [] for name in models}
    with tempfile.TemporaryDirectory() as logs:
        slot = Slot(SlotName.BLUE, llama_cpp(settings), settings, Path(logs))
        names = list(models)
        for round_no in range(args.rounds):
            order = names[round_no % len(names) :] + names[: round_no % len(names)]
            for name in order:
                got = asyncio.run(speeds(slot, models[name], args.tokens))
                results[name] += got
                print(f"  round {round_no + 1}: {name:8} {statistics.fmean(got):6.1f} tokens/s", flush=True)
    base = statistics.median(results["base"])
    what = (
        "synthetic 1B-shaped (random weights, LoRA r16 all-linear)"
        if args.synthetic
        else f"{args.base} / {args.adapter} / {args.merged}"
    )
    lines = [
        f"### Serving speed: {what}",
        "",
        f"machine: {machine()} · {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC · llama.cpp "
        f"{llama_cpp(settings).version} · {args.tokens}-token answers, one request at a time, "
        f"{args.rounds} rounds x {len(PROMPTS)} prompts",
        "",
        "| served as | tokens/s median | min | max | vs base |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, got in results.items():
        lines.append(
            f"| {name} | {statistics.median(got):.1f} | {min(got):.1f} | {max(got):.1f} | {statistics.median(got) / base:.2f}x |"
        )
    emit(lines, args.out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, help="PREFLOOP_HOME whose bucket holds the three releases")
    parser.add_argument("--base", help="the base release's tag")
    parser.add_argument("--adapter", help="an adapter release over that base")
    parser.add_argument("--merged", help="the same training exported merged")
    parser.add_argument("--synthetic", choices=["1b"], help="a 1B-shaped model with random weights instead")
    parser.add_argument("--work", type=Path, help="with --synthetic: where its files are made (kept for re-runs)")
    parser.add_argument("--make-synthetic", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, default=3, help="turns each variant takes (default: %(default)s)")
    parser.add_argument("--tokens", type=int, default=128, help="tokens per answer (default: %(default)s)")
    parser.add_argument("--out", type=Path, help="append the table to this file")
    args = parser.parse_args()
    if args.make_synthetic:
        make_synthetic(args.make_synthetic)
        return
    if args.synthetic and not args.work:
        parser.error("--synthetic needs --work")
    if not args.synthetic and not (args.base and args.adapter and args.merged):
        parser.error("give --base, --adapter and --merged release tags (or --synthetic 1b)")
    measure(args)


if __name__ == "__main__":
    main()
