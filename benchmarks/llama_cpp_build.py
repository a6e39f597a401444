"""llama.cpp build flags: the build in use ($PREFLOOP_LLAMA_CPP_DIR) against the portable AVX2 build.

    .venvs/exporter/bin/python benchmarks/llama_cpp_build.py --baseline DIR [--repeats 3] [--out FILE]

DIR is a build of the same version with portable flags (`infra/llama_cpp/build.sh` prints it); the build under test
is $PREFLOOP_LLAMA_CPP_DIR, e.g. after `LLAMA_CPP_VARIANT=cpu-avx512 make setup`. Same SmolLM2-135M-Instruct GGUFs
for both (f16 and Q4_K_M, made from the packaged model with the baseline's llama-quantize), runs interleaved: the
exporter's quantization-loss measurement (`mean_nll`: `llama-perplexity` over its fixed text), and llama-server's own
timings for a ~400-token prompt processed and 64 tokens decoded (`cache_prompt: false`, as the QA gate asks). Prints
seconds and tokens/s per build, and the ratios.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import httpx

from report import emit  # the script's folder is on sys.path

from prefloop_core.net import free_port, stop_process, wait_until_ready
from prefloop_core.settings import Settings
from prefloop_core.toolchain import LlamaCpp, base_gguf
from prefloop_exporter.gguf_tools import mean_nll
from prefloop_exporter.verify import LOGLIK_TEXT


def perplexity(build: LlamaCpp, model: Path) -> tuple[float, float]:
    """(seconds, perplexity) of the exporter's quantization-loss measurement of `model` with `build`."""
    started = time.monotonic()
    nll = mean_nll(build, model, [], LOGLIK_TEXT)
    return time.monotonic() - started, math.exp(nll)


def server_rates(build: LlamaCpp, model: Path, log: Path) -> tuple[float, float]:
    """(prompt tokens/s, decoded tokens/s), llama-server's own timings, best of 3 requests."""
    port = free_port()
    prompt_text = LOGLIK_TEXT.read_text()[:1600]
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                str(build.server),
                "-m",
                str(model),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "-c",
                "4096",
                "-np",
                "4",
                "--no-webui",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until_ready(f"http://127.0.0.1:{port}/health", 60, proc)
        prompt, decode = [], []
        for _ in range(3):
            reply = httpx.post(
                f"http://127.0.0.1:{port}/completion",
                timeout=300,
                json={"prompt": prompt_text, "n_predict": 64, "temperature": 0, "cache_prompt": False, "ignore_eos": True},
            ).json()
            prompt.append(reply["timings"]["prompt_per_second"])
            decode.append(reply["timings"]["predicted_per_second"])
        return max(prompt), max(decode)
    finally:
        stop_process(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", type=Path, required=True, help="a portable (AVX2) llama.cpp build of this version")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path)
    ns = parser.parse_args()
    ours = LlamaCpp(Path(os.environ["PREFLOOP_LLAMA_CPP_DIR"]))
    builds = {"build under test": ours, "portable baseline": LlamaCpp(ns.baseline)}
    work = Path(tempfile.mkdtemp(prefix="llama-build-bench-"))
    packaged = base_gguf(Settings(home=work / "home"))
    models = {}
    for quant in ("F16", "Q4_K_M"):
        models[quant] = work / f"smollm2-{quant}.gguf"
        subprocess.run(
            [str(builds["portable baseline"].quantize), "--allow-requantize", str(packaged), str(models[quant]), quant],
            capture_output=True,
            check=True,
        )
    ppl: dict[tuple[str, str], list[float]] = {}
    ppl_value: dict[tuple[str, str], float] = {}
    rates: dict[str, list[tuple[float, float]]] = {}
    for i in range(ns.repeats):
        for name, build in builds.items():
            for quant, model in models.items():
                seconds, ppl_value[name, quant] = perplexity(build, model)
                ppl.setdefault((name, quant), []).append(seconds)
            rates.setdefault(name, []).append(server_rates(build, models["Q4_K_M"], work / "server.log"))
        print(f"repeat {i + 1}/{ns.repeats} done", file=sys.stderr)

    rows = []
    for name in builds:
        pp = statistics.median(r[0] for r in rates[name])
        tg = statistics.median(r[1] for r in rates[name])
        rows.append((name, statistics.median(ppl[name, "F16"]), statistics.median(ppl[name, "Q4_K_M"]), pp, tg))
    (_, f16_a, q4_a, pp_a, tg_a), (_, f16_b, q4_b, pp_b, tg_b) = rows
    emit(
        [
            f"machine: {platform.node() or 'vm'} · {platform.machine()} · {os.cpu_count()} cores · "
            f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC · SmolLM2-135M-Instruct, {ns.repeats} runs each (median) · "
            f"build under test: {ours.root.name}, baseline: {ns.baseline.name}",
            "",
            "| build | llama-perplexity f16 s | llama-perplexity Q4_K_M s | llama-server Q4_K_M prompt tok/s | decode tok/s |",
            "| --- | ---: | ---: | ---: | ---: |",
            *[f"| {n} | {a:.2f} | {b:.2f} | {c:.0f} | {d:.1f} |" for n, a, b, c, d in rows],
            f"| ratio (baseline / this build for seconds, this / baseline for tok/s) | {f16_b / f16_a:.2f}x | "
            f"{q4_b / q4_a:.2f}x | {pp_a / pp_b:.2f}x | {tg_a / tg_b:.2f}x |",
            "",
            "perplexity of the fixed text: " + ", ".join(f"{n} {q} {v:.4f}" for (n, q), v in ppl_value.items()),
        ],
        ns.out,
    )


if __name__ == "__main__":
    main()
