"""Export speed: `prefloop export` vs merge + convert + quantize by hand, and adapter mode vs merged mode.

    .venvs/exporter/bin/python benchmarks/export_bench.py [--repeats 3] [--out FILE]

Same run (a LoRA r8 on all linear layers of SmolLM2-135M-Instruct), same base checkpoint (warm
cache), Q4_K_M, CPU. "By hand" is what the source's workflow does: a Python merge (PEFT
merge_and_unload in fp32, save with the tokenizer), llama.cpp's convert_hf_to_gguf.py to f16,
llama-quantize; it starts from the adapter already on local disk. Ours is the `prefloop-exporter`
command: it also fetches from and publishes to the bucket and runs the four verification checks,
so its time is also split at the "[export 4/4] verifying" line. Each run is its own process, and
runs alternate (ours, by hand, adapter, ...) because timings on a shared VM swing between identical
runs. Goals: ours <= 1.15x by hand; adapter mode vs merged mode: report the ratio (expect >= 10x).
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from report import emit  # the script's folder is on sys.path

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parents[1] / "services" / "exporter" / "tests"))
BIN = Path(sys.executable).parent

MERGE = """
import sys, torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer
base, adapter, out = sys.argv[1:4]
model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
PeftModel.from_pretrained(model, adapter).merge_and_unload().save_pretrained(out)
AutoTokenizer.from_pretrained(base).save_pretrained(out)
"""


def cpu_seconds() -> float:
    """CPU time (user + system) of this process's finished children and theirs (llama-server, llama-quantize...)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def ours(run_id: str, env: dict[str, str], mode: str) -> dict[str, float]:
    """Wall time of `prefloop-exporter export`, the part after it starts verifying, and its CPU time."""
    started, cpu = time.monotonic(), cpu_seconds()
    verifying_at = None
    with subprocess.Popen(
        [str(BIN / "prefloop-exporter"), "export", run_id, "--mode", mode],
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("[export 4/4] verifying"):
                verifying_at = time.monotonic()
    if proc.returncode != 0:
        raise SystemExit(f"prefloop-exporter export failed (exit {proc.returncode})")
    ended = time.monotonic()
    return {"seconds": ended - started, "verify_seconds": ended - (verifying_at or ended), "cpu_seconds": cpu_seconds() - cpu}


def by_hand(checkpoint: Path, adapter: Path, tools_root: Path, work: Path) -> dict[str, float]:
    started, cpu = time.monotonic(), cpu_seconds()
    merged, f16, q4 = work / "merged", work / "model-F16.gguf", work / "model-Q4_K_M.gguf"
    subprocess.run([sys.executable, "-c", MERGE, str(checkpoint), str(adapter), str(merged)], check=True, capture_output=True)
    subprocess.run(
        [
            sys.executable,
            str(tools_root / "src" / "convert_hf_to_gguf.py"),
            str(merged),
            "--outtype",
            "f16",
            "--outfile",
            str(f16),
        ],
        check=True,
        capture_output=True,
        env={**os.environ, "PYTHONPATH": str(tools_root / "src" / "gguf-py")},
    )
    subprocess.run([str(tools_root / "bin" / "llama-quantize"), str(f16), str(q4), "Q4_K_M"], check=True, capture_output=True)
    seconds, cpu = time.monotonic() - started, cpu_seconds() - cpu
    subprocess.run(["rm", "-rf", str(merged), str(f16), str(q4)], check=True)
    return {"seconds": seconds, "cpu_seconds": cpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    from exporter_helpers import publish_run

    from prefloop_core.settings import Settings
    from prefloop_core.store import ArtifactStore, LocalBackend
    from prefloop_ml.base_model import hf_checkpoint, load_tokenizer

    root = Path(tempfile.mkdtemp(prefix="export-bench-"))
    tools_root = Path(os.environ["PREFLOOP_LLAMA_CPP_DIR"])
    settings = Settings(home=root / "home", llama_cpp_dir=tools_root)
    store = ArtifactStore(LocalBackend(settings.bucket_dir))
    checkpoint = hf_checkpoint("smollm2", settings)  # warm the cache for both sides
    load_tokenizer("smollm2", settings)
    run = publish_run(store, settings, "smollm2", root / "adapters")
    adapter = root / "adapters" / run.run_id / "adapter"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PREFLOOP_")},
        "PREFLOOP_HOME": str(settings.home),
        "PREFLOOP_LLAMA_CPP_DIR": str(tools_root),
    }

    results: dict[str, list[dict[str, float]]] = {"ours": [], "by_hand": [], "adapter": []}
    first_adapter = ours(run.run_id, env, "adapter")  # exports the base release once
    for i in range(args.repeats):
        results["ours"].append(ours(run.run_id, env, "merged"))
        results["by_hand"].append(by_hand(checkpoint, adapter, tools_root, root))
        results["adapter"].append(ours(run.run_id, env, "adapter"))
        print(
            f"repeat {i + 1}/{args.repeats}: " + ", ".join(f"{k} {v[-1]['seconds']:.1f} s" for k, v in results.items()),
            file=sys.stderr,
        )

    def median(name: str, key: str = "seconds") -> float:
        return statistics.median(r[key] for r in results[name])

    merged_s, hand_s, adapter_s = median("ours"), median("by_hand"), median("adapter")
    verify_s, adapter_verify_s = median("ours", "verify_seconds"), median("adapter", "verify_seconds")
    now = datetime.now(timezone.utc)
    emit(
        [
            f"machine: {platform.node() or 'vm'} · {platform.machine()} · {os.cpu_count()} cores · {now:%Y-%m-%d %H:%M} UTC · "
            f"SmolLM2-135M-Instruct + LoRA r8 all-linear, Q4_K_M, {args.repeats} runs each (median)",
            "",
            "| | wall s | of which verification s | without verification s | CPU core-s |",
            "| --- | ---: | ---: | ---: | ---: |",
            f"| prefloop export, merged | {merged_s:.1f} | {verify_s:.1f} | {merged_s - verify_s:.1f} | "
            f"{median('ours', 'cpu_seconds'):.1f} |",
            f"| by hand: merge + convert_hf_to_gguf + llama-quantize | {hand_s:.1f} | - | {hand_s:.1f} | "
            f"{median('by_hand', 'cpu_seconds'):.1f} |",
            f"| prefloop export, adapter (base release reused) | {adapter_s:.1f} | {adapter_verify_s:.1f} | "
            f"{adapter_s - adapter_verify_s:.1f} | {median('adapter', 'cpu_seconds'):.1f} |",
            f"| prefloop export, adapter (first: exports the base) | {first_adapter['seconds']:.1f} | "
            f"{first_adapter['verify_seconds']:.1f} | {first_adapter['seconds'] - first_adapter['verify_seconds']:.1f} | "
            f"{first_adapter['cpu_seconds']:.1f} |",
            "",
            f"ours merged / by hand: **{merged_s / hand_s:.2f}x** with verification, "
            f"**{(merged_s - verify_s) / hand_s:.2f}x** without (goal <= 1.15x)",
            f"merged / adapter: **{merged_s / adapter_s:.2f}x** with verification, "
            f"**{(merged_s - verify_s) / (adapter_s - adapter_verify_s):.2f}x** without (expected >= 10x)",
            "",
            f"all runs: {results}",
        ],
        args.out,
    )


if __name__ == "__main__":
    main()
