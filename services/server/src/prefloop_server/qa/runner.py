"""The QA runner (the source's qa-test): ask every question of a QA set, concurrently, and score it.

Works against any OpenAI-compatible `/v1/chat/completions` (the router, one slot, llama-server,
a hosted API). Prompts come from the shared RAG template, so the QA sees what training saw.
Decoding is greedy (temperature 0, fixed seed) unless sampling is asked for (candidates).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Protocol

import httpx
from prefloop_core.contracts import ChatMessage, QAQuestion, QARecord, QASet, RunSummary
from prefloop_core.prompts import PromptTemplate
from prefloop_server.qa.scoring import JUDGE_PROMPT, cosine, key_fact_recall, parse_judge_score


@dataclass(frozen=True)
class Endpoint:
    """An OpenAI-compatible server: base URL without `/v1`, model name, optional key.

    `llama_server`: it is llama-server (a slot, or the router in front of one). Greedy requests then ask it not to
    reuse a cached prompt (`cache_prompt: false`): KV computed for an earlier request, in another batch, gives slightly
    different logits, and on a 4-slot server asked one question at a time that changed 37 of 72 answers between two
    identical QA runs (benchmarks/qa_noise.py). Other servers may reject the field, so it is only sent to llama-server.
    """

    url: str
    model: str = "default"
    api_key: str | None = None
    llama_server: bool = False
    transport: httpx.AsyncBaseTransport | None = None  # how to reach it (an ensemble's slot answers through one)

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}


@dataclass(frozen=True)
class Decoding:
    max_tokens: int = 256
    temperature: float = 0.0
    seed: int = 0


async def chat(client: httpx.AsyncClient, endpoint: Endpoint, messages: list[ChatMessage], decoding: Decoding) -> str:
    body = {
        "model": endpoint.model,
        "messages": [m.model_dump() for m in messages],
        "max_tokens": decoding.max_tokens,
        "temperature": decoding.temperature,
        "seed": decoding.seed,
    }
    if endpoint.llama_server and decoding.temperature == 0:
        body["cache_prompt"] = False
    response = await client.post(f"{endpoint.url.rstrip('/')}/v1/chat/completions", headers=endpoint.headers(), json=body)
    response.raise_for_status()
    return str(response.json()["choices"][0]["message"]["content"]).strip()


async def embed(client: httpx.AsyncClient, endpoint: Endpoint, texts: list[str]) -> list[list[float]]:
    """The texts' embeddings, in order, from an OpenAI-compatible `/v1/embeddings`."""
    response = await client.post(
        f"{endpoint.url.rstrip('/')}/v1/embeddings",
        headers=endpoint.headers(),
        json={"model": endpoint.model, "input": texts},
    )
    response.raise_for_status()
    return [item["embedding"] for item in sorted(response.json()["data"], key=lambda item: item["index"])]


class Scorer(Protocol):
    name: str

    async def score(self, client: httpx.AsyncClient, question: QAQuestion, answer: str) -> float: ...


class KeyFactScorer:
    name = "key_facts"

    async def score(self, client: httpx.AsyncClient, question: QAQuestion, answer: str) -> float:
        return key_fact_recall(answer, question.key_facts)


class EmbeddingScorer:
    """Cosine similarity of answer and reference through an OpenAI-compatible `/v1/embeddings`."""

    name = "embedding"

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint

    async def score(self, client: httpx.AsyncClient, question: QAQuestion, answer: str) -> float:
        reference = question.reference or " ".join(question.key_facts)
        vectors = await embed(client, self.endpoint, [answer, reference])
        return cosine(vectors[0], vectors[1])


class JudgeScorer:
    """An LLM grades the answer 0-10 against the reference and the key facts."""

    name = "judge"

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint

    async def score(self, client: httpx.AsyncClient, question: QAQuestion, answer: str) -> float:
        prompt = JUDGE_PROMPT.format(
            question=question.question,
            reference=question.reference or "(none)",
            facts="; ".join(question.key_facts),
            answer=answer,
        )
        reply = await chat(client, self.endpoint, [ChatMessage(role="user", content=prompt)], Decoding(max_tokens=96))
        score = parse_judge_score(reply)
        if score is None:
            raise ValueError(f"the judge gave no score: {reply[:200]!r}")
        return score


@dataclass
class QARun:
    records: list[QARecord]
    failures: list[tuple[str, str]] = field(default_factory=list)  # (question id, error)
    summary: RunSummary | None = None


def record_id(question_id: str, model: str, answer: str, asked_at: datetime) -> str:
    return hashlib.sha256(f"{question_id}\x1f{model}\x1f{answer}\x1f{asked_at.isoformat()}".encode()).hexdigest()[:20]


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def summarize(
    qa_set: QASet, run: QARun, endpoint: Endpoint, scorer: str, started: datetime, seconds: float, correct_at: float, model: str
) -> RunSummary:
    by_game: dict[str, list[float]] = {}
    by_split: dict[str, list[float]] = {}
    for r in run.records:
        by_game.setdefault(r.game or "other", []).append(r.score)
        by_split.setdefault(r.split or "all", []).append(r.score)
    scores = [r.score for r in run.records]
    return RunSummary(
        qa_set=qa_set.name,
        model=model,
        endpoint=endpoint.url,
        scorer=scorer,
        started_at=started,
        seconds=seconds,
        asked=len(qa_set.questions),
        answered=len(run.records),
        failed=len(run.failures),
        accuracy=_mean(scores),
        correct=sum(s >= correct_at for s in scores),
        correct_at=correct_at,
        per_game={g: _mean(v) for g, v in sorted(by_game.items())},
        per_split={s: _mean(v) for s, v in sorted(by_split.items())},
    )


async def run_qa_async(
    qa_set: QASet,
    endpoint: Endpoint,
    template: PromptTemplate,
    *,
    model: str,
    scorer: Scorer | None = None,
    concurrency: int = 4,
    decoding: Decoding = Decoding(),
    correct_at: float = 0.7,
    timeout_s: float = 300,
    on_answer: object = None,
) -> QARun:
    """Ask every question (at most `concurrency` at once), score each answer, summarise."""
    scorer = scorer or KeyFactScorer()
    gate = asyncio.Semaphore(concurrency)
    run = QARun(records=[])
    started_at = datetime.now(timezone.utc)
    started = time.perf_counter()

    async def one(client: httpx.AsyncClient, question: QAQuestion) -> None:
        async with gate:
            messages = template.render(question.question, question.context)
            asked_at = datetime.now(timezone.utc)
            t0 = time.perf_counter()
            try:
                answer = await chat(client, endpoint, messages, decoding)
                score = await scorer.score(client, question, answer)
            except (httpx.HTTPError, KeyError, ValueError) as exc:
                run.failures.append((question.id, f"{type(exc).__name__}: {exc}"))
                return
            run.records.append(
                QARecord(
                    record_id=record_id(question.id, model, answer, asked_at),
                    asked_at=asked_at,
                    question_id=question.id,
                    question=question.question,
                    game=question.game,
                    language=question.language,
                    context=question.context,
                    prompt=messages,
                    answer=answer,
                    reference=question.reference,
                    key_facts=question.key_facts,
                    score=score,
                    scorer=scorer.name,
                    model=model,
                    qa_set=qa_set.name,
                    split=question.split,
                    protected=question.protected,
                    latency_s=time.perf_counter() - t0,
                )
            )
            if callable(on_answer):
                on_answer(len(run.records) + len(run.failures), len(qa_set.questions))

    async with httpx.AsyncClient(timeout=timeout_s, transport=endpoint.transport) as client:
        await asyncio.gather(*(one(client, q) for q in qa_set.questions))
    order = {q.id: i for i, q in enumerate(qa_set.questions)}
    run.records.sort(key=lambda r: order[r.question_id])
    run.summary = summarize(qa_set, run, endpoint, scorer.name, started_at, time.perf_counter() - started, correct_at, model)
    return run


def run_qa(qa_set: QASet, endpoint: Endpoint, template: PromptTemplate, **options: object) -> QARun:
    return asyncio.run(run_qa_async(qa_set, endpoint, template, **options))  # type: ignore[arg-type]
