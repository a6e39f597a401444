"""QA noise: the same QA set on the same model several times, asked in the ways the server asks, and across
quantizations of that model.

    .venvs/exporter/bin/python benchmarks/qa_noise.py [--repeats 3] [--out FILE]

The bundled QA set (72 questions: 48 train, 24 held out), the QA runner of `prefloop qa` (key-fact recall, greedy,
the demo's 64-token answers, the server's prompt template), against llama-server started the way a server slot
starts it (`-c 4096`, `-ngl 0`). The served model is SmolLM2-135M-Instruct as the demo serves it: the Q4_K_M base
release, made by llama.cpp's converter and quantizer from the checkpoint the trainer and exporter use.

Each way of asking keeps one llama-server for all its runs, as a server slot lives across the daily QA and the
gate, so later runs meet the prompts the earlier ones left in the slots' caches:
- 1 slot, one at a time: `-np 1`, one request in flight.
- 4 slots, one at a time, prompts reused: `-np 4` (a slot's default), one request in flight, llama-server reusing
  cached prompts (its default; how the gate asked before 2026-11-24).
- 4 slots, one at a time, no prompt reuse: the same with `cache_prompt: false` (`--llama-server`; how the gate and
  the daily QA ask now).
- 4 slots, 4 in flight: four sequences decoded in one batch (live traffic).

Then every other quantization of the same weights is asked once (1 slot, one at a time): how far a change that
teaches nothing moves accuracy, in total and on the held-out questions, and how many answers it changes. The gate's
defaults and the demo's held-out criterion are read against these numbers (benchmarks/results/effectiveness.md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from report import emit  # the script's folder is on sys.path

ROOT = Path(__file__).resolve().parents[1]
QA_SET = ROOT / "flows" / "src" / "prefloop_flows" / "data" / "qa_set.json"
# name -> (llama-server slots, requests in flight, ask without prompt reuse)
WAYS = {
    "1 slot, one at a time": (1, 1, False),
    "4 slots, one at a time, prompts reused": (4, 1, False),
    "4 slots, one at a time, no prompt reuse": (4, 1, True),
    "4 slots, 4 in flight": (4, 4, True),
}
SERVED = "Q4_K_M"
OTHERS = ["f16", "Q8_0", "Q6_K", "Q5_K_M", "Q4_1"]
CORRECT_AT = 0.7

Scores = dict[str, float]


def qa_runs(server_bin: Path, gguf: Path, way: tuple[int, int, bool], runs: int, out: Path, name: str) -> list[Scores]:
    """One llama-server on the model, `runs` QA runs against it one after the other; per-question scores of each."""
    from prefloop_core.net import free_port, stop_process, wait_until_ready

    parallel, concurrency, no_reuse = way
    port = free_port()
    found: list[Scores] = []
    with open(out / f"{name}.llama-server.log", "wb") as log:
        proc = subprocess.Popen(
            [
                str(server_bin),
                "-m",
                str(gguf),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "-c",
                "4096",
                "-np",
                str(parallel),
                "-ngl",
                "0",
                "--alias",
                name,
                "--no-webui",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        try:
            wait_until_ready(f"http://127.0.0.1:{port}/health", 120, proc)
            for i in range(runs):
                folder = out / f"{name}-{i}"
                subprocess.run(
                    [
                        os.environ["PREFLOOP_VENVS_DIR"] + "/server/bin/prefloop-server",
                        "qa",
                        "--set",
                        str(QA_SET),
                        "--endpoint",
                        f"http://127.0.0.1:{port}",
                        "--model",
                        name,
                        "--concurrency",
                        str(concurrency),
                        "--max-tokens",
                        "64",
                        "--out",
                        str(folder),
                        *(["--llama-server"] if no_reuse else []),
                    ],
                    check=True,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                [records] = folder.glob("*.records.jsonl")
                found.append({r["question_id"]: r["score"] for r in map(json.loads, records.read_text().splitlines())})
                print(f"  {name} run {i + 1}: {accuracy(found[-1]):.1%}", flush=True)
        finally:
            stop_process(proc)
    return found


def accuracy(scores: Scores, ids: list[str] | None = None) -> float:
    ids = ids if ids is not None else list(scores)
    return sum(scores[i] for i in ids) / len(ids)


def spread(values: list[float]) -> str:
    return f"{(max(values) - min(values)) * 100:.1f}"


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
    models = {"f16": f16, "Q4_1": base_gguf(settings)}
    for name in [SERVED, *OTHERS]:
        if name not in models:
            models[name] = quantize(tools, f16, work / f"model-{name}.gguf", Quantization(name))
    qa = json.loads(QA_SET.read_text(encoding="utf-8"))["questions"]
    split = {s: [q["id"] for q in qa if q["split"] == s] for s in ("train", "heldout")}

    repeated = {
        way: qa_runs(tools.server, models[SERVED], spec, args.repeats, work, f"{SERVED}-{i}")
        for i, (way, spec) in enumerate(WAYS.items())
    }
    reference = repeated["1 slot, one at a time"][0]
    once = {name: qa_runs(tools.server, models[name], WAYS["1 slot, one at a time"], 1, work, name)[0] for name in OTHERS}

    lines = [
        f"machine: {platform.node() or 'vm'} · {platform.machine()} · {os.cpu_count()} cores · "
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC · SmolLM2-135M-Instruct, {len(qa)} questions "
        f"({len(split['train'])} train, {len(split['heldout'])} held out), 64-token greedy answers, accuracy = mean score",
        "",
        f"The served model ({SERVED}) asked {args.repeats} times in each way, on one llama-server per way:",
        "",
        "| way | accuracy per run | spread, pts | held out per run | held-out spread, pts | answers changed | scores changed |",
        "| --- | --- | ---: | --- | ---: | ---: | ---: |",
    ]
    for way, runs in repeated.items():
        accs, held = [accuracy(s) for s in runs], [accuracy(s, split["heldout"]) for s in runs]
        changed = sum(len({s[q] for s in runs}) > 1 for q in runs[0])
        answers = _answers_changed(work, [f"{SERVED}-{list(WAYS).index(way)}-{i}" for i in range(len(runs))])
        lines.append(
            f"| {way} | {', '.join(f'{a:.1%}' for a in accs)} | {spread(accs)} | "
            f"{', '.join(f'{h:.1%}' for h in held)} | {spread(held)} | {answers} | {changed} |"
        )
    lines += [
        "",
        f"Other quantizations of the same weights, once each (1 slot, one at a time), against {SERVED}'s first run:",
        "",
        "| model | accuracy | train | held out | delta, pts | held-out delta, pts | scores changed | "
        "held-out scores changed | correct -> wrong | wrong -> correct |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, s in {SERVED: reference, **once}.items():
        lost = sum(reference[q] >= CORRECT_AT > s[q] for q in s)
        won = sum(s[q] >= CORRECT_AT > reference[q] for q in s)
        lines.append(
            f"| {name} | {accuracy(s):.1%} | {accuracy(s, split['train']):.1%} | {accuracy(s, split['heldout']):.1%} | "
            f"{(accuracy(s) - accuracy(reference)) * 100:+.1f} | "
            f"{(accuracy(s, split['heldout']) - accuracy(reference, split['heldout'])) * 100:+.1f} | "
            f"{sum(s[q] != reference[q] for q in s)} | {sum(s[q] != reference[q] for q in split['heldout'])} | "
            f"{lost} | {won} |"
        )
    held = [accuracy(s, split["heldout"]) - accuracy(reference, split["heldout"]) for s in once.values()]
    lines += ["", f"held-out delta across the other quantizations: {min(held) * 100:+.1f} to {max(held) * 100:+.1f} pts"]
    emit(lines, args.out)


def _answers_changed(work: Path, folders: list[str]) -> int:
    """Questions whose answer text was not the same in every run."""
    texts: dict[str, set[str]] = {}
    for folder in folders:
        [records] = (work / folder).glob("*.records.jsonl")
        for r in map(json.loads, records.read_text().splitlines()):
            texts.setdefault(r["question_id"], set()).add(r["answer"])
    return sum(len(t) > 1 for t in texts.values())


if __name__ == "__main__":
    main()
