"""The trainer's pre-flight memory estimate against the peak RSS its runs measure, SmolLM2-135M on CPU.

    .venvs/trainer/bin/python benchmarks/memory_estimate.py [--words 40,150,300] [--rag 120:10,250:10] [--out FILE]

Each row is one training run in its own process (`services/trainer/tests/memprobe.py`: 16 synthetic pairs whose
answers repeat a phrase WORDS times, micro-batch 1, 2 steps, no checkpointing; `--rag` rows put a passage of
PROMPT_WORDS in the prompt and answers of ANSWER_WORDS, the loop's shape), read back from its `run.json`: the
plan's estimate and longest example, and the measured `peak_memory_gib` (ru_maxrss). The tests check the same on the
tiny model at two lengths (within 30%); this shows how the estimate holds as examples grow to demo-like lengths. Not a
speed benchmark: nothing is timed.
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

HERE = Path(__file__).resolve()
PROBE = HERE.parents[1] / "services" / "trainer" / "tests" / "memprobe.py"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--words", default="40,150,300", help="answer lengths to try (phrase repeats), comma-separated")
    parser.add_argument("--rag", default="120:10,250:10", help="PROMPT_WORDS:ANSWER_WORDS rows, comma-separated ('' for none)")
    parser.add_argument("--out", type=Path, help="also append the table to this markdown file")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="prefloop-memory-") as tmp:
        cache = Path(tmp) / "cache"  # one converted SmolLM2 checkpoint for every run
        cache.mkdir()
        shapes = [(0, int(w)) for w in args.words.split(",")]
        shapes += [(int(p), int(a)) for p, a in (s.split(":") for s in args.rag.split(",") if s)]
        for prompt_words, words in shapes:
            home = Path(tmp) / f"home-{prompt_words}-{words}"
            home.mkdir()
            (home / "cache").symlink_to(cache, target_is_directory=True)
            done = subprocess.run(
                [sys.executable, str(PROBE), str(home), "smollm2", "1", "1024", str(words), str(prompt_words)],
                cwd=PROBE.parent,
                capture_output=True,
                text=True,
                env={**os.environ, "PREFLOOP_HOME": str(home)},
            )
            if done.returncode:
                sys.exit(f"memprobe failed for {prompt_words}:{words} words:\n{done.stderr[-3000:]}")
            result = json.loads(done.stdout.strip().splitlines()[-1])
            rows.append(
                (
                    "long prompt (RAG)" if prompt_words else "long answers",
                    result["plan"]["longest_tokens"],
                    result["estimated_gib"],
                    result["peak_gib"],
                )
            )
    lines = [
        f"machine: {platform.node() or 'vm'} · {platform.machine()} · {os.cpu_count()} cores · "
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC · SmolLM2-135M-Instruct, fp32, LoRA r16 all-linear, "
        "micro-batch 1, no checkpointing, DPO (each pair one packed row, its prompt once)",
        "",
        "| pairs | longest example, tokens | estimate GiB | peak RSS GiB | estimate / peak |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    lines += [f"| {kind} | {tokens} | {est:.2f} | {peak:.2f} | {est / peak:.2f} |" for kind, tokens, est, peak in rows]
    emit(lines, args.out)


if __name__ == "__main__":
    main()
