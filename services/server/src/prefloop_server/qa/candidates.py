"""Candidate generation (the DPO guide's method 3): sample several answers per question, score them,
and hand the collector the bad ones as rejected answers with the best one as a suggested answer.

Sampling needs temperature > 0 and a different seed per sample, or every sample is the same.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

import httpx

from prefloop_core.contracts import CandidateRecord, QAQuestion, QARecord, QASet
from prefloop_core.prompts import PromptTemplate
from prefloop_server.qa.runner import Decoding, Endpoint, KeyFactScorer, Scorer, chat, record_id


async def sample_question(
    client: httpx.AsyncClient,
    endpoint: Endpoint,
    template: PromptTemplate,
    question: QAQuestion,
    qa_set: str,
    model: str,
    scorer: Scorer,
    samples: int,
    temperature: float,
    max_tokens: int,
    correct_at: float,
) -> list[CandidateRecord]:
    messages = template.render(question.question, question.context)
    answers: dict[str, float] = {}
    for seed in range(1, samples + 1):
        answer = await chat(client, endpoint, messages, Decoding(max_tokens=max_tokens, temperature=temperature, seed=seed))
        if answer and answer not in answers:
            answers[answer] = await scorer.score(client, question, answer)
    if not answers:
        return []
    best, best_score = max(answers.items(), key=lambda item: item[1])
    suggestion = best if best_score >= correct_at else None
    now = datetime.now(timezone.utc)
    return [
        CandidateRecord(
            record=QARecord(
                record_id=record_id(question.id, model, answer, now),
                asked_at=now,
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
                qa_set=qa_set,
                split=question.split,
            ),
            suggestion=suggestion,
            suggestion_score=best_score if suggestion else None,
        )
        for answer, score in answers.items()
        if score < correct_at
    ]


async def generate_async(
    qa_set: QASet,
    endpoint: Endpoint,
    template: PromptTemplate,
    *,
    model: str,
    samples: int = 4,
    temperature: float = 0.8,
    max_tokens: int = 256,
    correct_at: float = 0.7,
    concurrency: int = 4,
    scorer: Scorer | None = None,
) -> list[CandidateRecord]:
    scorer = scorer or KeyFactScorer()
    gate = asyncio.Semaphore(concurrency)

    async def one(client: httpx.AsyncClient, question: QAQuestion) -> list[CandidateRecord]:
        async with gate:
            return await sample_question(
                client, endpoint, template, question, qa_set.name, model, scorer, samples, temperature, max_tokens, correct_at
            )

    async with httpx.AsyncClient(timeout=300, transport=endpoint.transport) as client:
        groups = await asyncio.gather(*(one(client, q) for q in qa_set.questions))
    return [candidate for group in groups for candidate in group]


def generate(qa_set: QASet, endpoint: Endpoint, template: PromptTemplate, **options: object) -> list[CandidateRecord]:
    return asyncio.run(generate_async(qa_set, endpoint, template, **options))  # type: ignore[arg-type]
