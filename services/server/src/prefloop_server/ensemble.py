"""Serving an ensemble release: every member answers, one answer is kept.

The slot's llama-server holds the base and every member's LoRA, none applied; a member's request names its own LoRAs
at scale 1 and the others at 0 (llama-server's per-request `lora`), so the members answer side by side on one server
without loading the base twice. The rule then keeps one answer:

- `consensus`: minimum Bayes risk, the answer with the highest mean similarity to the other members' answers. The
  similarity is the key-fact one the QA scorer uses, both ways: the share of one answer's words the other contains
  as key facts (Korean words as substrings, so particles do not count against them; Latin words whole), averaged
  over the two directions (an empty answer agrees with no other); or, with an embeddings endpoint configured, the
  cosine of the answers' embeddings (key facts when that endpoint fails, and the answer says so). Ties go to the
  earlier member.
- `judge`: an OpenAI-compatible model is shown the question and the numbered answers and names the best (its reply
  is kept in the answer); a reply without a number in range, or a judge that fails, falls back to consensus, and the
  answer says so.

The answer is the chosen member's own response, with the ensemble's tag as `model`, the usage of all members (what
the answer cost) and an `ensemble` field naming the rule, the chosen member, its answer's tokens and every member's
score.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx

from prefloop_core.contracts import ChatMessage, EnsembleRule
from prefloop_server.qa.runner import Decoding, Endpoint, chat, embed
from prefloop_server.qa.scoring import cosine, fact_found, normalize
from prefloop_server.settings import ServerSettings
from prefloop_server.slots import Model, Slot
from prefloop_server.upstream import send

log = logging.getLogger("prefloop.ensemble")

JUDGE_PROMPT = (
    "Several assistants answered the same question. Pick the answer that is most correct and most helpful.\n\n"
    "Question: {question}\n\n{answers}\n\nReply with the number of the best answer only."
)


class UpstreamError(Exception):
    """A member's request failed: its response is passed on as it is (a 400 for a bad request stays a 400)."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"a member answered {response.status_code}")
        self.response = response


def _recall(answer: str, words: set[str]) -> float:
    return sum(fact_found(answer, word) for word in words) / len(words)


def similarity(a: str, b: str) -> float:
    """Key-fact similarity in [0, 1], symmetric: how much of each answer the other contains. Two empty answers are
    alike; an empty one shares nothing with one that says something (else it would agree with everyone by half)."""
    words_a, words_b = set(normalize(a).split()), set(normalize(b).split())
    if not words_a or not words_b:
        return 1.0 if words_a == words_b else 0.0
    return (_recall(a, words_b) + _recall(b, words_a)) / 2


def consensus(answers: Sequence[str], vectors: Sequence[list[float]] | None = None) -> list[float]:
    """Each answer's mean similarity to the others (minimum Bayes risk with 1 - similarity as the loss): key-fact
    similarity, or the cosine of `vectors` (the answers' embeddings) when given."""
    if len(answers) < 2:
        return [1.0] * len(answers)

    def sim(i: int, j: int) -> float:
        return cosine(vectors[i], vectors[j]) if vectors is not None else similarity(answers[i], answers[j])

    n = len(answers)
    return [sum(sim(i, j) for j in range(n) if j != i) / (n - 1) for i in range(n)]


def parse_choice(reply: str, count: int) -> int | None:
    """The judge's pick (0-based) from its reply: the first number from 1 to `count`, or None."""
    for match in re.finditer(r"\d+", reply):
        number = int(match.group())
        if 1 <= number <= count:
            return number - 1
    return None


def _question(messages: Any) -> str:
    if isinstance(messages, list):
        for message in reversed(messages):
            if isinstance(message, dict) and message.get("role") == "user" and isinstance(message.get("content"), str):
                return str(message["content"])
    return ""


class Ensemble:
    def __init__(
        self, model: Model, slot_url: str, headers: dict[str, str], judge: Endpoint | None, embeddings: Endpoint | None = None
    ) -> None:
        self.model = model
        self.url = f"{slot_url}/v1/chat/completions"
        self.headers = headers
        self.judge = judge
        self.embeddings = embeddings

    def member_body(self, body: dict[str, Any], index: int) -> dict[str, Any]:
        own = set(self.model.members[index].loras)
        request = {k: v for k, v in body.items() if k not in ("stream", "stream_options", "lora")}
        # Never a prompt cached by another request: its KV may have been computed under another member's LoRA.
        return {
            **request,
            "cache_prompt": False,
            "lora": [{"id": i, "scale": 1.0 if i in own else 0.0} for i in range(len(self.model.loras))],
        }

    async def complete(self, client: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
        """Ask every member with `body` (a chat completion request, never streamed to them) and answer as the rule
        picks; raises UpstreamError with the first member response that is not a 200."""
        asking = [
            asyncio.create_task(
                send(client, client.build_request("POST", self.url, json=self.member_body(body, i), headers=self.headers))
            )
            for i in range(len(self.model.members))
        ]
        try:
            responses = await asyncio.gather(*asking)
        finally:
            # When one member fails, the others stop too: the router counts the request done on this slot, and a
            # drain must not find it idle while members still generate on it.
            for task in asking:
                task.cancel()
            await asyncio.gather(*asking, return_exceptions=True)
        for response in responses:
            if response.status_code != 200:
                raise UpstreamError(response)
        answers_json = [response.json() for response in responses]
        answers = [str(a["choices"][0]["message"].get("content") or "") for a in answers_json]
        chosen, scores, note = await self.choose(client, _question(body.get("messages")), answers)
        result = answers_json[chosen]
        result["model"] = self.model.tag
        usage = [a.get("usage") or {} for a in answers_json]
        result["usage"] = {
            key: sum(int(u.get(key, 0)) for u in usage) for key in ("prompt_tokens", "completion_tokens", "total_tokens")
        }
        result["ensemble"] = {
            "rule": self.model.rule.value if self.model.rule else None,
            "chosen": self.model.members[chosen].tag,
            "answer_tokens": int(usage[chosen].get("completion_tokens", 0)),
            "members": [{"tag": m.tag, "score": round(s, 4)} for m, s in zip(self.model.members, scores, strict=True)],
            **note,
        }
        return result

    async def choose(
        self, client: httpx.AsyncClient, question: str, answers: list[str]
    ) -> tuple[int, list[float], dict[str, str]]:
        """The index of the answer kept, each answer's score, and a note when the judge's pick was not used."""
        if self.model.rule is not EnsembleRule.JUDGE or self.judge is None:
            return await self.by_consensus(client, answers)
        listed = "\n\n".join(f"Answer {i + 1}:\n{answer}" for i, answer in enumerate(answers))
        prompt = JUDGE_PROMPT.format(question=question, answers=listed)
        try:
            reply = await chat(client, self.judge, [ChatMessage(role="user", content=prompt)], Decoding(max_tokens=16))
        except (httpx.HTTPError, KeyError, IndexError, TypeError, ValueError) as exc:
            log.warning("the ensemble's judge failed (%s): consensus picked the answer", exc)
            reason = f"consensus (the judge failed: {type(exc).__name__})"
        else:
            pick = parse_choice(reply, len(answers))
            if pick is not None:
                return pick, [1.0 if i == pick else 0.0 for i in range(len(answers))], {"judge": reply[:80]}
            reason = f"consensus (the judge replied {reply[:80]!r})"
        chosen, scores, note = await self.by_consensus(client, answers)
        return chosen, scores, {**note, "fallback": reason}

    async def by_consensus(self, client: httpx.AsyncClient, answers: list[str]) -> tuple[int, list[float], dict[str, str]]:
        """The consensus pick, every answer's score and a note when the embeddings were wanted but not had: by
        embeddings when an endpoint is set (an empty answer embeds as a space), else, or when it fails, by key facts."""
        scores, note = None, {}
        if self.embeddings:
            try:
                vectors = await embed(client, self.embeddings, [a or " " for a in answers])
                if len(vectors) != len(answers):
                    raise ValueError(f"{len(vectors)} embeddings for {len(answers)} answers")
                scores = consensus(answers, vectors)
            except (httpx.HTTPError, KeyError, IndexError, TypeError, ValueError) as exc:
                log.warning("the ensemble's embeddings endpoint failed (%s): key-fact similarity picked the answer", exc)
                note = {"similarity": f"key facts (the embeddings endpoint failed: {type(exc).__name__})"}
        if scores is None:
            scores = consensus(answers)
        # Scores equal to 6 places are a tie (embeddings of one text differ in the last bits across a batch): the
        # earlier member answers.
        return max(range(len(answers)), key=lambda i: (round(scores[i], 6), -i)), scores, note


async def stream(result: dict[str, Any], include_usage: bool) -> AsyncIterator[bytes]:
    """A finished ensemble answer as OpenAI's chat completion stream: the answer, the finish reason, [DONE]. An
    ensemble can only answer once every member has, so the answer comes as one chunk."""
    choice = result["choices"][0]
    base = {"id": result.get("id", "chatcmpl-ensemble"), "object": "chat.completion.chunk", "model": result["model"]}
    base["created"] = result.get("created", int(time.time()))
    chunks = [
        {
            **base,
            "choices": [
                {
                    "index": 0,
                    "delta": {"role": "assistant", "content": choice["message"].get("content") or ""},
                    "finish_reason": None,
                }
            ],
        },
        {
            **base,
            "choices": [{"index": 0, "delta": {}, "finish_reason": choice.get("finish_reason", "stop")}],
            "ensemble": result["ensemble"],
        },
    ]
    if include_usage:
        chunks.append({**base, "choices": [], "usage": result["usage"]})
    for chunk in chunks:
        yield f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n".encode()
    yield b"data: [DONE]\n\n"


class EnsembleTransport(httpx.AsyncBaseTransport):
    """An httpx transport for the QA runner: chat completions sent to the ensemble's slot are answered by the
    ensemble, as the router answers them; every other request goes out as usual."""

    def __init__(self, ensemble: Ensemble, timeout_s: float = 300) -> None:
        self.ensemble = ensemble
        self.inner = httpx.AsyncHTTPTransport()
        self.client = httpx.AsyncClient(transport=self.inner, timeout=timeout_s)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and str(request.url) == self.ensemble.url:
            body = json.loads(await request.aread())
            try:
                result = await self.ensemble.complete(self.client, body)
            except UpstreamError as exc:
                return httpx.Response(exc.response.status_code, content=exc.response.content, request=request)
            return httpx.Response(200, json=result, request=request)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.client.aclose()


def embeddings_endpoint(settings: ServerSettings) -> Endpoint | None:
    url = settings.server_ensemble_embeddings_url
    return Endpoint(url, settings.server_ensemble_embeddings_model) if url else None


def judge_endpoint(settings: ServerSettings) -> Endpoint | None:
    if not settings.server_ensemble_judge_url:
        return None
    key = settings.server_ensemble_judge_api_key
    return Endpoint(
        settings.server_ensemble_judge_url, settings.server_ensemble_judge_model, key.get_secret_value() if key else None
    )


def ensemble_of(slot: Slot, settings: ServerSettings) -> Ensemble | None:
    """The ensemble the slot serves, or None when it serves a single model."""
    if slot.model is None or not slot.model.members:
        return None
    return Ensemble(slot.model, slot.url, slot.headers(), judge_endpoint(settings), embeddings_endpoint(settings))
