"""QA run: the same QA set with N requests in flight against one at a time, on any OpenAI-compatible URL (goal >= 2x).

    python benchmarks/qa_concurrency.py --url http://127.0.0.1:8080 [--levels 4,8] [--max-tokens 48]
                                        [--qa-set FILE] [--repeats 2] [--out FILE]

The QA set is the server tests' easy set repeated to 24 questions (distinct ids) with a "few words" prompt, or with
--qa-set a QA set file asked with the default RAG template (what `prefloop qa` sends); asked through prefloop's own
QA runner (`prefloop_server.qa.runner.run_qa`, what `prefloop qa` and the gate use). After an untimed warm-up, each
level runs --repeats times, interleaved with one-at-a-time runs, and the best of each is kept.

--llama-server: the URL is llama-server or prefloop's router in front of one. The runner then sends greedy requests
with `cache_prompt: false`, as the gate does, so every run processes its prompts. Without it llama-server keeps the
prompts of earlier runs (in its slots and its host-memory prompt cache, 8 GiB by default) and a repeated run only
decodes: on the bundled QA set a repeat processed 72 prompt tokens, where every run processes 13,432 with the switch.
`benchmarks/server_bench.py` runs the easy set through the router on CPU; `benchmarks/gpu_server.sh bench` the
bundled QA set straight against a CUDA llama-server.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "services" / "server" / "tests"))
from report import emit  # noqa: E402
from server_helpers import easy_qa_set  # noqa: E402

from prefloop_core.contracts import QASet  # noqa: E402
from prefloop_core.prompts import PromptTemplate  # noqa: E402
from prefloop_server.qa.qaset import load_qa_set  # noqa: E402
from prefloop_server.qa.runner import Decoding, Endpoint, run_qa  # noqa: E402


def easy_set_repeated() -> tuple[QASet, PromptTemplate]:
    base = easy_qa_set()
    questions = [q.model_copy(update={"id": f"{q.id}-{i}"}) for i, q in enumerate(base.questions * 4)]
    return (
        base.model_copy(update={"questions": questions}),
        PromptTemplate(system=None, without_context="{question} Answer in a few words."),
    )


def qa_concurrency(
    url: str,
    model: str = "good",
    levels: tuple[int, ...] = (4,),
    max_tokens: int = 48,
    qa: tuple[QASet, PromptTemplate] | None = None,
    repeats: int = 2,
    llama_server: bool = False,
) -> list[str]:
    """Markdown table rows: seconds for one at a time and each level in flight (best of the repeats), and speed-ups."""
    qa_set, template = qa or easy_set_repeated()
    questions = qa_set.questions
    # Untimed warm-up (the model's pages, the server's threads), so that no timed run is also the server's first.
    warm = qa_set.model_copy(update={"questions": questions[:8]})
    endpoint, decoding = Endpoint(url, model, llama_server=llama_server), Decoding(max_tokens=max_tokens)
    run_qa(warm, endpoint, template, model=model, concurrency=max(levels), decoding=decoding)
    times: dict[int, list[float]] = {}
    for _ in range(repeats):
        for level in (1, *levels):
            t0 = time.perf_counter()
            run_qa(qa_set, endpoint, template, model=model, concurrency=level, decoding=decoding)
            times.setdefault(level, []).append(time.perf_counter() - t0)
    best = {level: min(runs) for level, runs in times.items()}
    name = lambda level: "one at a time" if level == 1 else f"{level} in flight"  # noqa: E731
    return (
        [
            f"| QA run ({qa_set.name}, {len(questions)} questions, <= {max_tokens} tokens) | seconds (best of "
            f"{repeats}) | speed-up |",
            "| --- | ---: | ---: |",
        ]
        + [f"| {name(level)} | {best[level]:.2f} | {best[1] / best[level]:.2f}x |" for level in (1, *levels)]
        + ["", f"all runs (s): {json.dumps({name(level): [round(t, 2) for t in runs] for level, runs in times.items()})}"]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="base URL of the OpenAI-compatible server (without /v1)")
    parser.add_argument("--model", default="good", help="model name sent with each request")
    parser.add_argument("--levels", default="4", help="requests in flight to compare with one at a time, e.g. 4,8")
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument(
        "--qa-set",
        type=Path,
        help="a QA set file, asked with the default RAG template (default: the easy set repeated to 24 questions)",
    )
    parser.add_argument("--repeats", type=int, default=2, help="runs of each level; the best is kept")
    parser.add_argument(
        "--llama-server",
        action="store_true",
        help="the URL is llama-server (or prefloop's router): "
        "ask it not to reuse cached prompts, as the gate does, so every run processes its prompts",
    )
    parser.add_argument("--label", default="", help="what the server runs, for the report's first line")
    parser.add_argument("--out", type=Path, help="also append the table to this markdown file")
    ns = parser.parse_args()
    qa = (load_qa_set(ns.qa_set), PromptTemplate()) if ns.qa_set else None
    rows = qa_concurrency(
        ns.url, ns.model, tuple(int(x) for x in ns.levels.split(",")), ns.max_tokens, qa, ns.repeats, ns.llama_server
    )
    emit(
        [
            f"machine: {platform.node() or 'vm'} · {platform.machine()} · {os.cpu_count()} cores · "
            f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC · {ns.label}",
            "",
            *rows,
        ],
        ns.out,
    )


if __name__ == "__main__":
    main()
