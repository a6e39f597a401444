"""QA noise: the same QA set on the same model several times, and across quantizations of that model.

    .venvs/exporter/bin/python benchmarks/qa_noise.py [--repeats 3] [--out FILE]

The bundled QA set (72 questions), the QA runner of `prefloop qa` (key-fact recall, greedy, the
demo's 64-token answers, the server's prompt template), against llama-server started the way a
server slot starts it (`-c 4096`, `-ngl 0`). Models: SmolLM2-135M-Instruct as the demo serves it
(the Q4_1 GGUF), and the f16 / Q4_K_M GGUFs llama.cpp's own converter and quantizer make from its
checkpoint (what every exported candidate is made of). Two ways of asking: one request at a time
on a one-sequence server (`-np 1`, concurrency 1), and the server's defaults (`-np 4`, 4 in flight),
where llama.cpp decodes several sequences in one batch. Repeats run on the served Q4_1; each other model
is asked once, one request at a time.

It prints, per model and way: accuracy of each run, the spread (max - min), and how many questions
changed score between runs; then, one request at a time, how far each quantization moves accuracy
and how many questions it flips across the gate's "correct" line. The gate's default margin comes
from these numbers (benchmarks/results/effectiveness.md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from report import emit  # the script's folder is on sys.path

ROOT = Path(__file__).resolve().parents[1]
QA_SET = ROOT / "flows" / "src" / "prefloop_flows" / "data" / "qa_set.json"
WAYS = {"one at a time": (1, 1), "server defaults": (4, 4)}
CORRECT_AT = 0.7


def qa_run(server_bin: Path, gguf: Path, parallel: int, concurrency: int, out: Path, name: str) -> dict[str, float]:
    """Start llama-server on the model, run `prefloop-server qa` against it, return per-question scores."""
    from prefloop_core.net import free_port, stop_process, wait_until_ready

    port = free_port()
    log = open(out / f"{name}.llama-server.log", "wb")
    proc = subprocess.Popen([str(server_bin), "-m", str(gguf), "--host", "127.0.0.1", "--port", str(port), "-c", "4096",
                             "-np", str(parallel), "-ngl", "0", "--alias", name, "--no-webui"],
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        wait_until_ready(f"http://127.0.0.1:{port}/health", 120, proc)
        subprocess.run([os.environ["PREFLOOP_VENVS_DIR"] + "/server/bin/prefloop-server", "qa", "--set", str(QA_SET),
                        "--endpoint", f"http://127.0.0.1:{port}", "--model", name, "--concurrency", str(concurrency),
                        "--max-tokens", "64", "--out", str(out / name)], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    finally:
        stop_process(proc)
        log.close()
    [records_file] = (out / name).glob("*.records.jsonl")
    records = records_file.read_text(encoding="utf-8").splitlines()
    return {r["question_id"]: r["score"] for r in map(json.loads, records)}


def accuracy(scores: dict[str, float], ids: list[str] | None = None) -> float:
    ids = ids if ids is not None else list(scores)
    return sum(scores[i] for i in ids) / len(ids)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    from prefloop_core.contracts import Quantization
    from prefloop_core.settings import Settings
    from prefloop_core.toolchain import base_gguf, llama_cpp
    from prefloop_exporter.gguf_tools import convert_to_f16, quantize
    from prefloop_ml.base_model import hf_checkpoint

    work = Path(tempfile.mkdtemp(prefix="qa-noise-"))
    settings = Settings()
    tools = llama_cpp(settings)
    f16 = convert_to_f16(tools, Path(hf_checkpoint("smollm2", settings)), work / "model-F16.gguf")
    models = {"Q4_1": base_gguf(settings), "f16": f16,
              "Q4_K_M": quantize(tools, f16, work / "model-Q4_K_M.gguf", Quantization.Q4_K_M)}
    qa = json.loads(QA_SET.read_text(encoding="utf-8"))["questions"]
    split = {s: [q["id"] for q in qa if q["split"] == s] for s in ("train", "heldout")}

    runs: dict[tuple[str, str], list[dict[str, float]]] = {}
    for model, gguf in models.items():
        for way, (parallel, concurrency) in WAYS.items():
            repeats = args.repeats if model == "Q4_1" else 1 if way == "one at a time" else 0
            for i in range(repeats):
                name = f"{model}-np{parallel}-{i}"
                runs.setdefault((model, way), []).append(qa_run(tools.server, gguf, parallel, concurrency, work, name))
                print(f"  {name}: {accuracy(runs[(model, way)][-1]):.1%}", file=sys.stderr, flush=True)

    lines = [f"## QA noise, {datetime.now(timezone.utc):%Y-%m-%d} ({platform.machine()}, {os.cpu_count()} CPUs)", "",
             f"Bundled QA set ({len(qa)} questions: {len(split['train'])} train, {len(split['heldout'])} held out), "
             "key-fact recall, greedy, 64-token answers; accuracy = mean score.", "",
             "| model | way | runs | accuracy per run | spread | questions whose score changed |",
             "| --- | --- | ---: | --- | ---: | ---: |"]
    for (model, way), scores in runs.items():
        if len(scores) < 2:
            continue
        accs = [accuracy(s) for s in scores]
        changed = sum(len({s[q] for s in scores}) > 1 for q in scores[0])
        lines.append(f"| {model} | {way} | {len(scores)} | {', '.join(f'{a:.1%}' for a in accs)} | "
                     f"{(max(accs) - min(accs)) * 100:.1f} pts | {changed} |")
    reference = runs[("Q4_1", "one at a time")][0]
    lines += ["", "Across quantizations (one at a time, first run each), against the served Q4_1:", "",
              "| model | accuracy | train | held out | delta | questions changed | correct -> wrong | wrong -> correct |",
              "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for model in models:
        s = runs[(model, "one at a time")][0]
        lost = sum(reference[q] >= CORRECT_AT > s[q] for q in s)
        won = sum(s[q] >= CORRECT_AT > reference[q] for q in s)
        lines.append(f"| {model} | {accuracy(s):.1%} | {accuracy(s, split['train']):.1%} | "
                     f"{accuracy(s, split['heldout']):.1%} | {(accuracy(s) - accuracy(reference)) * 100:+.1f} pts | "
                     f"{sum(s[q] != reference[q] for q in s)} | {lost} | {won} |")
    emit(lines, args.out)


if __name__ == "__main__":
    main()
