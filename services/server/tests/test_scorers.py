"""The optional scorers over real HTTP: embeddings from llama-server itself, a judge endpoint."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from prefloop_core.contracts import QAQuestion
from prefloop_core.net import free_port, wait_until_ready
from prefloop_core.settings import Settings
from prefloop_core.toolchain import base_gguf, llama_cpp
from prefloop_server.qa.runner import EmbeddingScorer, Endpoint, JudgeScorer

QUESTION = QAQuestion(id="q", question="What do bees make?", reference="Bees make honey.", key_facts=["honey"])


@pytest.fixture(scope="module")
def embedding_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = Settings(llama_cpp_dir=Path(os.environ["PREFLOOP_LLAMA_CPP_DIR"]))
    port = free_port()
    log = open(tmp_path_factory.mktemp("emb") / "llama.log", "wb")
    proc = subprocess.Popen(
        [
            str(llama_cpp(settings).server),
            "-m",
            str(base_gguf(settings)),
            "--port",
            str(port),
            "--host",
            "127.0.0.1",
            "--embeddings",
            "--pooling",
            "mean",
            "-c",
            "512",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    wait_until_ready(f"{url}/health", 60, proc)
    yield url
    proc.terminate()
    proc.wait(timeout=10)
    log.close()


async def score(scorer: EmbeddingScorer | JudgeScorer, answer: str) -> float:
    async with httpx.AsyncClient(timeout=60) as client:
        return await scorer.score(client, QUESTION, answer)


def test_embedding_similarity_prefers_the_right_answer(embedding_server: str) -> None:
    scorer = EmbeddingScorer(Endpoint(embedding_server))
    right = asyncio.run(score(scorer, "Bees produce honey."))
    wrong = asyncio.run(score(scorer, "The Eiffel Tower is in Paris."))
    assert 0 <= wrong < right <= 1


class Judge:
    """An OpenAI-compatible endpoint standing in for a judge model (none can run here); it answers
    with a fixed reply and records what it was asked."""

    def __init__(self, reply: str) -> None:
        self.reply, self.prompts = reply, []
        judge = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                judge.prompts.append(body["messages"][0]["content"])
                data = json.dumps({"choices": [{"message": {"role": "assistant", "content": judge.reply}}]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def test_the_judge_is_asked_with_the_reference_and_facts_and_its_score_read() -> None:
    judge = Judge('{"score": 8, "reason": "mentions honey"}')
    assert asyncio.run(score(JudgeScorer(Endpoint(judge.url)), "They make honey.")) == pytest.approx(0.8)
    assert "Reference answer: Bees make honey." in judge.prompts[0] and "honey" in judge.prompts[0]
    judge.server.shutdown()


def test_a_judge_without_a_score_is_an_error_not_a_zero() -> None:
    judge = Judge("I cannot grade this.")
    with pytest.raises(ValueError, match="the judge gave no score"):
        asyncio.run(score(JudgeScorer(Endpoint(judge.url)), "They make honey."))
    judge.server.shutdown()
