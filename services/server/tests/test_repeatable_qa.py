"""Greedy QA against llama-server repeats exactly: the runner asks it not to reuse cached prompts.

On a llama-server with several slots, a prompt whose prefix is cached from an earlier request is finished on KV
computed in another batch, which moves the logits enough to change greedy answers (37 of 72 between two identical
runs of the bundled QA set on SmolLM2, benchmarks/qa_noise.py). The gate asks the live model after the daily QA has
filled its slots, so without this the live model's score depended on what it had been asked before.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from prefloop_core.contracts import QAQuestion, QASet
from prefloop_core.net import free_port, stop_process, wait_until_ready
from prefloop_core.prompts import load_template
from prefloop_core.settings import Settings
from prefloop_core.toolchain import base_gguf, llama_cpp
from prefloop_server.qa.runner import Decoding, Endpoint, run_qa

TOPICS = [
    "a torch",
    "a bed",
    "a bucket",
    "a shield",
    "a compass",
    "a clock",
    "a map",
    "a boat",
    "a bow",
    "a chest",
    "an anvil",
    "a furnace",
]
QA_SET = QASet(
    name="crafting",
    questions=[
        QAQuestion(id=f"q{i}", question=f"How do I craft {topic} in Minecraft? Explain step by step.", key_facts=["craft"])
        for i, topic in enumerate(TOPICS)
    ],
)


@pytest.fixture(scope="module")
def four_slots(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """llama-server on SmolLM2 as a server slot starts it: 4 slots, one context shared between them."""
    settings = Settings(llama_cpp_dir=Path(os.environ["PREFLOOP_LLAMA_CPP_DIR"]))
    port = free_port()
    with open(tmp_path_factory.mktemp("slots") / "llama.log", "wb") as log:
        proc = subprocess.Popen(
            [
                str(llama_cpp(settings).server),
                "-m",
                str(base_gguf(settings)),
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
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        try:
            wait_until_ready(f"http://127.0.0.1:{port}/health", 120, proc)
            yield f"http://127.0.0.1:{port}"
        finally:
            stop_process(proc)


def answers(url: str, llama_server: bool) -> dict[str, str]:
    run = run_qa(
        QA_SET,
        Endpoint(url, "smollm2", llama_server=llama_server),
        load_template(None),
        model="smollm2",
        concurrency=1,
        decoding=Decoding(max_tokens=48),
    )
    return {r.question_id: r.answer for r in run.records}


def test_one_question_at_a_time_on_four_slots_gives_the_same_answers_every_run(four_slots: str) -> None:
    first = answers(four_slots, llama_server=True)
    assert answers(four_slots, llama_server=True) == first
