"""Drift: how far the candidate's next-token distributions moved from the live model's on the gate's questions.

Answers change only once a distribution has moved past a tie; KL measures the move itself, so it shows forgetting
coming while the scores still hold. Both slots are teacher-forced along the live model's own answer (its first
`max_tokens` tokens): for each position, one llama-server `/completion` of one token after the prompt and the answer
so far (token ids, the prompt cached between positions, so each costs about one decoding step), asking for the
`top_k` most likely next tokens with their log-probabilities from the raw logits (`n_probs`). (A grammar forcing the
whole answer in one request is faster, but llama.cpp's grammar engine rejects some token sequences, e.g. Korean
text split inside a character.) llama-server lists no more than `top_k`, so KL is taken between the two
distributions restricted to the union of both lists: a token one side does not list gets that side's smallest listed
probability (no unlisted token is more likely), then both are renormalized. With a peaked small model's top 20 this
misses little mass; it ignores the tails, so read it as an estimate that moves with forgetting, not an exact figure.
Log-probabilities are floored at `LOGPROB_FLOOR` (llama-server sends a probability of 0 as the lowest float) and the
sums are taken in log space. The answer forced is the live model's as its QA record holds it (its content, trimmed of
surrounding whitespace), tokenized by the live slot; the two slots must tokenize alike (they do over one base, merged
or not), else the drift is not measured (`NotComparable`).
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from typing import Any

import httpx
from scipy.special import logsumexp

from prefloop_core.contracts import Drift, GateVerdict, QARecord
from prefloop_server.qa.runner import Endpoint

TOP_K = 20
LOGPROB_FLOOR = -100.0  # e^-100: nothing llama-server lists is less likely, and exp() of it is still a number


class NotComparable(ValueError):
    """The two slots render or tokenize the same text differently: their distributions are over different tokens."""


@dataclass(frozen=True)
class Measured:
    """Per question id: (sum of per-token KL(live || candidate), tokens compared); each answer's first `max_tokens`."""

    per_question: dict[str, tuple[float, int]]
    max_tokens: int


def kl_top_k(p: dict[int, float], q: dict[int, float]) -> float:
    """KL(P || Q), nats, from each side's listed token log-probabilities (see the module's docstring)."""
    support = sorted(p.keys() | q.keys())
    p_floor, q_floor = min(p.values()), min(q.values())
    lp = [max(p.get(t, p_floor), LOGPROB_FLOOR) for t in support]
    lq = [max(q.get(t, q_floor), LOGPROB_FLOOR) for t in support]
    p_norm, q_norm = float(logsumexp(lp)), float(logsumexp(lq))
    return max(0.0, sum(math.exp(a - p_norm) * ((a - p_norm) - (b - q_norm)) for a, b in zip(lp, lq, strict=True)))


async def _post(client: httpx.AsyncClient, endpoint: Endpoint, path: str, body: dict[str, object]) -> dict[str, Any]:
    """llama-server's answer to one of its own endpoints, as JSON (a shape it lacks ends the measurement: KeyError)."""
    response = await client.post(f"{endpoint.url}{path}", headers=endpoint.headers(), json=body)
    if response.is_error:
        raise ValueError(f"{endpoint.model}'s {path} answered {response.status_code}: {response.text[:300]}")
    result: dict[str, Any] = response.json()
    return result


async def _next(client: httpx.AsyncClient, endpoint: Endpoint, prompt: list[int]) -> dict[int, float] | None:
    """`endpoint`'s top next tokens after `prompt`. A token that is part of a character (one byte of a Korean syllable)
    is held back by llama-server until the character is complete, with its probabilities: then it is asked for a few
    tokens more and the first position's list is taken. None if even that gives none."""
    for n_predict in (1, 4):
        answer = await _post(
            client,
            endpoint,
            "/completion",
            {"prompt": prompt, "n_predict": n_predict, "n_probs": TOP_K, "temperature": 0, "cache_prompt": True},
        )
        steps = answer.get("completion_probabilities")
        if isinstance(steps, list) and steps:
            listed = {t["id"]: float(t["logprob"]) for t in steps[0]["top_logprobs"] if t.get("logprob") is not None}
            return listed or None
    return None


async def _positions(
    client: httpx.AsyncClient, endpoint: Endpoint, prompt: list[int], ids: list[int]
) -> list[dict[int, float] | None]:
    """`endpoint`'s top tokens at each position of `ids` after `prompt`, teacher-forced."""
    return [await _next(client, endpoint, prompt + ids[:k]) for k in range(len(ids))]


async def _tokens(client: httpx.AsyncClient, endpoint: Endpoint, record: QARecord) -> tuple[list[int], list[int]]:
    """`record`'s prompt (through `endpoint`'s chat template) and answer, as `endpoint` tokenizes them."""
    messages = [m.model_dump() for m in record.prompt]
    rendered = await _post(client, endpoint, "/apply-template", {"messages": messages})
    prompt = (
        await _post(client, endpoint, "/tokenize", {"content": rendered["prompt"], "add_special": True, "parse_special": True})
    )["tokens"]
    if len(prompt) > 1 and prompt[0] == prompt[1]:  # a template that writes the BOS itself, and the BOS added
        prompt = prompt[1:]
    answer = await _post(client, endpoint, "/tokenize", {"content": record.answer, "add_special": False, "parse_special": False})
    return list(prompt), list(answer["tokens"])


async def _question_kl(
    client: httpx.AsyncClient, live: Endpoint, candidate: Endpoint, record: QARecord, max_tokens: int
) -> tuple[float, int]:
    """(sum of per-token KL, tokens) on `record`'s answer: the live model's."""
    prompt, answer = await _tokens(client, live, record)
    ids = answer[:max_tokens]
    if not ids:
        return 0.0, 0
    async with asyncio.TaskGroup() as group:  # one side failing stops the other
        live_side = group.create_task(_positions(client, live, prompt, ids))
        candidate_side = group.create_task(_positions(client, candidate, prompt, ids))
    p, q = live_side.result(), candidate_side.result()
    compared = [(a, b) for a, b in zip(p, q, strict=True) if a and b]
    return sum(kl_top_k(a, b) for a, b in compared), len(compared)


async def measure(
    live: Endpoint,
    candidate: Endpoint,
    live_records: list[QARecord],
    *,
    max_tokens: int,
    concurrency: int,
    timeout_s: float = 300,
) -> Measured:
    """KL(live || candidate) per token on the live model's answers (`live_records`), per question; NotComparable when
    the two slots render or tokenize the first question differently."""
    gate = asyncio.Semaphore(concurrency)

    async def one(client: httpx.AsyncClient, record: QARecord) -> tuple[str, tuple[float, int]]:
        async with gate:
            return record.question_id, await _question_kl(client, live, candidate, record, max_tokens)

    async with httpx.AsyncClient(timeout=timeout_s) as client:
        if live_records:
            probe = live_records[0]
            if await _tokens(client, live, probe) != await _tokens(client, candidate, probe):
                raise NotComparable(
                    f"{live.model} and {candidate.model} render or tokenize {probe.question_id} differently "
                    "(another base model?): their next-token distributions cannot be compared"
                )
        async with asyncio.TaskGroup() as group:  # one question failing stops the others
            tasks = [group.create_task(one(client, r)) for r in live_records]
        return Measured(dict(task.result() for task in tasks), max_tokens)


def with_drift(verdict: GateVerdict, measured: Measured) -> GateVerdict:
    """The verdict with each question's KL and the summary: means per token, overall, per split, on live-correct; as it
    was when no token was compared (every answer empty), rather than a drift of 0 that nothing measured."""
    per_question = measured.per_question
    if not sum(n for _, n in per_question.values()):
        return verdict

    def mean(ids: list[str]) -> float | None:
        tokens = sum(per_question[q][1] for q in ids if q in per_question)
        return sum(per_question[q][0] for q in ids if q in per_question) / tokens if tokens else None

    questions = [q.model_copy(update={"kl": mean([q.question_id])}) for q in verdict.questions]
    splits: dict[str, list[str]] = {}
    for q in verdict.questions:
        splits.setdefault(q.split or "other", []).append(q.question_id)
    right = [q.question_id for q in verdict.questions if (q.live or 0) >= verdict.rule.correct_at]
    everything = [q.question_id for q in verdict.questions]
    drift = Drift(
        mean_kl=mean(everything) or 0.0,  # not None: some token was compared
        per_split={s: k for s, ids in sorted(splits.items()) if (k := mean(ids)) is not None},
        live_correct_kl=mean(right),
        tokens=sum(n for _, n in per_question.values()),
        max_tokens=measured.max_tokens,
        top_k=TOP_K,
    )
    return verdict.model_copy(update={"questions": questions, "drift": drift})
