"""llama.cpp build flags: the build in use ($PREFLOOP_LLAMA_CPP_DIR) against the portable AVX2 build.

    .venvs/server/bin/python benchmarks/llama_cpp_build.py --baseline DIR [--repeats 3] [--out FILE]

DIR is a build of the same version with portable flags (`infra/llama_cpp/build.sh` prints it); the build under test
is $PREFLOOP_LLAMA_CPP_DIR, e.g. after `LLAMA_CPP_VARIANT=cpu-avx512 make setup`. Same SmolLM2-135M-Instruct GGUFs
for both (f16 and Q4_K_M, made from the packaged model with the baseline's llama-quantize), runs interleaved:
`llama-perplexity` over the exporter's fixed text (the quantization-loss check), and llama-server's own timings for a
~400-token prompt processed and 64 tokens decoded (`cache_prompt: false`, as the QA gate asks). Prints seconds and
tokens/s per build, and the ratios.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
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
from prefloop_core.toolchain import base_gguf

TEXT = Path(__file__).resolve().parents[1] / "services" / "exporter" / "src" / "prefloop_exporter" / "data" / "loglik_text.txt"
PPL = re.compile(r"Final estimate: PPL = ([0-9.]+)")


def perplexity(build: Path, model: Path) -> tuple[float, float]:
    started = time.monotonic()
    out = subprocess.run([str(build / "bin" / "llama-perplexity"), "-m", str(model), "-f", str(TEXT), "-c", "128",
                          "-b", "128"], capture_output=True, text=True, check=True)
    found = PPL.search(out.stdout + out.stderr)
    assert found, (out.stdout + out.stderr)[-500:]
    return time.monotonic() - started, float(found.group(1))


def server_rates(build: Path, model: Path, log: Path) -> tuple[float, float]:
    """(prompt tokens/s, decoded tokens/s), llama-server's own timings, best of 3 requests."""
    port = free_port()
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(build / "bin" / "llama-server"), "-m", str(model), "--host", "127.0.0.1", "--port",
                                 str(port), "-c", "4096", "-np", "4", "--no-webui"], stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until_ready(f"http://127.0.0.1:{port}/health", 60, proc)
        prompt, decode = [], []
        for _ in range(3):
            reply = httpx.post(f"http://127.0.0.1:{port}/completion", timeout=300, json={
                "prompt": TEXT.read_text()[:1600], "n_predict": 64, "temperature": 0, "cache_prompt": False,
                "ignore_eos": True}).json()
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
    ours = Path(os.environ["PREFLOOP_LLAMA_CPP_DIR"])
    builds = {"build under test": ours, "portable baseline": ns.baseline}
    work = Path(tempfile.mkdtemp(prefix="llama-build-bench-"))
    packaged = base_gguf(Settings(home=work / "home"))
    models = {}
    for quant in ("F16", "Q4_K_M"):
        models[quant] = work / f"smollm2-{quant}.gguf"
        subprocess.run([str(ns.baseline / "bin" / "llama-quantize"), "--allow-requantize", str(packaged),
                        str(models[quant]), quant], capture_output=True, check=True)
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

    def med(values: list[float]) -> float:
        return statistics.median(values)

    rows = []
    for name in builds:
        pp = med([r[0] for r in rates[name]])
        tg = med([r[1] for r in rates[name]])
        rows.append((name, med(ppl[name, "F16"]), med(ppl[name, "Q4_K_M"]), pp, tg))
    (_, f16_a, q4_a, pp_a, tg_a), (_, f16_b, q4_b, pp_b, tg_b) = rows
    emit([
        f"machine: {platform.node() or 'vm'} · {platform.machine()} · {os.cpu_count()} cores · "
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC · SmolLM2-135M-Instruct, {ns.repeats} runs each (median) · "
        f"build under test: {ours.name}, baseline: {ns.baseline.name}",
        "",
        "| build | llama-perplexity f16 s | llama-perplexity Q4_K_M s | llama-server Q4_K_M prompt tok/s | decode tok/s |",
        "| --- | ---: | ---: | ---: | ---: |",
        *[f"| {n} | {a:.2f} | {b:.2f} | {c:.0f} | {d:.1f} |" for n, a, b, c, d in rows],
        f"| ratio (baseline / this build for seconds, this / baseline for tok/s) | {f16_b / f16_a:.2f}x | "
        f"{q4_b / q4_a:.2f}x | {pp_a / pp_b:.2f}x | {tg_a / tg_b:.2f}x |",
        "",
        "perplexity of the fixed text: " + ", ".join(f"{n} {q} {v:.4f}" for (n, q), v in ppl_value.items()),
    ], ns.out)


if __name__ == "__main__":
    main()
