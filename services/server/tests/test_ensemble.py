"""Ensemble releases on a real server: members are real GGUF LoRAs over SmolLM2 on one llama-server, applied per
request; the router answers with the rule's pick (streaming too), the QA gate compares an ensemble with the live
model, promote and rollback work on it, and the judge rule asks a real judge or falls back to consensus."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import httpx
import pytest
from server_helpers import (
    Server,
    easy_qa_set,
    publish_adapters,
    slot_env,
    slot_headers,
    start_server,
    stop_server,
)

from prefloop_core.contracts import EnsembleRule, ExportMode, Quantization, Release
from prefloop_core.net import free_port, stop_process, wait_until_ready
from prefloop_core.settings import Settings
from prefloop_core.store import ArtifactStore, LocalBackend
from prefloop_core.toolchain import base_gguf, llama_cpp
from prefloop_server.ensemble import Ensemble, consensus, parse_choice, similarity
from prefloop_server.slots import Member, Model

# Two identical mild LoRAs and a strong one: the mild pair agree, so consensus keeps their answer.
MEMBERS = {"mild": (1, 0.02), "mild-twin": (1, 0.02), "wild": (7, 0.15)}
QUESTIONS = ["How many legs does a spider have?", "What do bees make?"]


def base() -> Path:
    return base_gguf(Settings(llama_cpp_dir=Path(os.environ["PREFLOOP_LLAMA_CPP_DIR"])))


def publish_ensemble(server: Server, tag: str, members: list[str], rule: EnsembleRule = EnsembleRule.CONSENSUS) -> None:
    bucket = server.home.parent / "bucket"
    publish_adapters(
        bucket, base(), {m: MEMBERS[m] for m in members if ArtifactStore(LocalBackend(bucket)).get(Release, m) is None}
    )
    ensemble = Release(
        tag=tag,
        base_model="SmolLM2-135M-Instruct",
        mode=ExportMode.ENSEMBLE,
        base_release="good",
        quantizations=[Quantization.Q4_1],
        created_at=datetime.now(timezone.utc),
        members=members,
        rule=rule,
    )
    ArtifactStore(LocalBackend(bucket)).publish(ensemble, {})


def ask(url: str, question: str, **extra: object) -> httpx.Response:
    body = {"messages": [{"role": "user", "content": question}], "max_tokens": 24, "temperature": 0, "cache_prompt": False}
    body.update(extra)
    return httpx.post(f"{url}/v1/chat/completions", json=body, timeout=300, headers=slot_headers())


def slot_url(server: Server) -> str:
    status = server.admin().get("/admin/status").json()
    (live,) = [s for s in status["slots"] if s["name"] == status["live"]]
    return f"http://127.0.0.1:{live['port']}"


def test_similarity_and_consensus_and_the_judges_pick() -> None:
    assert similarity("크리퍼는 고양이를 무서워합니다", "크리퍼는 고양이를 싫어합니다") == pytest.approx(2 / 3)
    # "고양이" is found in "고양이를" (a particle does not count against it); none of the longer answer's words is whole
    # in the shorter one.
    assert similarity("크리퍼는 고양이를 무서워합니다", "고양이") == pytest.approx(0.5)
    assert similarity("Cats.", "cats") == 1.0 and similarity("cat", "category") == 0.0
    assert consensus(["Paris.", "It is Paris", "London"]) == pytest.approx([1 / 3, 1 / 3, 0.0])
    # An empty answer agrees with nothing said (else it would win when the others disagree), and with another empty one.
    assert similarity("", "Paris") == similarity("Paris", "...") == 0.0 and similarity("", " ") == 1.0
    assert consensus(["Paris", "London", ""]) == pytest.approx([0.0, 0.0, 0.0])
    assert parse_choice("Answer 3 is the best", 3) == 2 and parse_choice("5", 3) is None and parse_choice("none", 2) is None


def test_a_member_is_asked_again_on_a_dropped_connection_and_one_that_fails_stops_the_others() -> None:
    """Members go out like the router's requests (once more when llama-server dropped a kept-alive connection); when
    one still fails, the others are cancelled rather than left generating on a slot the router will count idle."""
    model = Model(
        tag="pair", gguf=Path("base.gguf"), loras=(Path("a"), Path("b")), members=(Member("a", (0,)), Member("b", (1,)))
    )
    tries: dict[int, int] = {0: 0, 1: 0}
    slow_member_cancelled = asyncio.Event()

    async def llama_server(request: httpx.Request) -> httpx.Response:
        member = [lora["scale"] for lora in json.loads(request.content)["lora"]].index(1.0)
        tries[member] += 1
        if member == 0 and (failing or tries[0] == 1):
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.")
        if member == 1 and failing:
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                slow_member_cancelled.set()
                raise
        return httpx.Response(200, json={"choices": [{"message": {"role": "assistant", "content": f"answer {member}"}}]})

    async def ask() -> dict[str, object]:
        async with httpx.AsyncClient(transport=httpx.MockTransport(llama_server)) as client:
            return await Ensemble(model, "http://slot", {}, None).complete(client, {"messages": []})

    failing = False
    assert asyncio.run(ask())["ensemble"]["chosen"] == "a" and tries == {0: 2, 1: 1}  # type: ignore[index]
    failing = True
    with pytest.raises(httpx.RemoteProtocolError):
        asyncio.run(asyncio.wait_for(ask(), 30))
    assert slow_member_cancelled.is_set()


def test_an_ensemble_answers_with_the_consensus_of_its_members_streams_and_lists_itself(server: Server) -> None:
    publish_ensemble(server, "trio", ["mild", "wild", "mild-twin"])
    admin = server.admin()
    deployed = admin.post("/admin/deploy", json={"tag": "trio"})
    assert deployed.status_code == 200, deployed.text
    admin.post("/admin/promote", json={"tag": "trio"}).raise_for_status()  # nothing was live: no gate
    slot = slot_url(server)
    lora = httpx.get(f"{slot}/lora-adapters", headers=slot_headers(), timeout=60).json()
    assert [a["scale"] for a in lora] == [0.0, 0.0, 0.0]  # none applied unless a request names it

    differs = 0
    for question in QUESTIONS:
        answer = ask(server.url, question).json()
        assert answer["model"] == "trio"
        assert answer["ensemble"]["rule"] == "consensus" and answer["ensemble"]["chosen"] == "mild"
        members = {}
        for index, tag in enumerate(["mild", "wild", "mild-twin"]):
            own = [{"id": i, "scale": 1.0 if i == index else 0.0} for i in range(3)]
            members[tag] = ask(slot, question, lora=own).json()
        assert answer["choices"][0]["message"]["content"] == members["mild"]["choices"][0]["message"]["content"]
        assert members["mild"]["choices"][0]["message"] == members["mild-twin"]["choices"][0]["message"]
        differs += members["wild"]["choices"][0]["message"] != members["mild"]["choices"][0]["message"]
        assert answer["usage"]["completion_tokens"] == sum(m["usage"]["completion_tokens"] for m in members.values())
        assert answer["ensemble"]["answer_tokens"] == members["mild"]["usage"]["completion_tokens"]
        scores = {m["tag"]: m["score"] for m in answer["ensemble"]["members"]}
        assert scores["mild"] == scores["mild-twin"] >= scores["wild"]
    assert differs, "the wild member answered as the mild ones: the test would not tell a pick from a copy"

    streamed = httpx.post(
        f"{server.url}/v1/chat/completions",
        json={
            "messages": [{"role": "user", "content": QUESTIONS[0]}],
            "max_tokens": 24,
            "temperature": 0,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
        timeout=300,
    )
    assert streamed.headers["content-type"].startswith("text/event-stream")
    events = [line.removeprefix("data: ") for line in streamed.text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == ask(server.url, QUESTIONS[0]).json()["choices"][0]["message"]["content"]
    assert chunks[-1]["usage"]["completion_tokens"] > 0

    assert httpx.get(f"{server.url}/v1/models", timeout=60).json()["data"][0]["id"] == "trio"
    legacy = httpx.post(f"{server.url}/v1/completions", json={"prompt": "Hi", "max_tokens": 4}, timeout=60)
    assert legacy.status_code == 400 and "is an ensemble" in legacy.json()["error"]["message"]


def test_the_gate_compares_an_ensemble_with_the_live_model_and_rollback_puts_the_single_model_back(server: Server) -> None:
    publish_ensemble(server, "pair", ["mild", "wild"])
    admin = server.admin()
    admin.post("/admin/deploy", json={"tag": "good"}).raise_for_status()
    admin.post("/admin/promote", json={"tag": "good"}).raise_for_status()
    admin.post("/admin/deploy", json={"tag": "pair"}).raise_for_status()
    gated = admin.post("/admin/gate", json={"qa_set": easy_qa_set().model_dump(mode="json")})
    assert gated.status_code == 200, gated.text
    result = gated.json()
    assert result["report"]["candidate_tag"] == "pair" and result["report"]["live_tag"] == "good"
    assert result["report"]["verdict"]["drift"] is None  # an ensemble has no token distribution of its own
    assert {r["model"] for r in result["candidate_records"]} == {"pair"}
    answered = [r["answer"] for r in result["candidate_records"]]
    promoted = admin.post("/admin/promote", json={"tag": "pair", "force": True, "reason": "testing an ensemble"})
    assert promoted.status_code == 200, promoted.text
    assert httpx.get(f"{server.url}/health", timeout=60).json()["tag"] == "pair"
    qa = admin.post("/admin/qa", json={"qa_set": easy_qa_set().model_dump(mode="json")}).json()
    assert [r["answer"] for r in qa["records"]] == answered  # the daily QA asks the ensemble as the gate did

    admin.post("/admin/rollback", json={}).raise_for_status()
    assert httpx.get(f"{server.url}/health", timeout=60).json()["tag"] == "good"
    assert "ensemble" not in ask(server.url, QUESTIONS[0]).json()


def test_a_judge_picks_the_answer_or_consensus_does_when_it_cannot(releases: dict[str, Path], tmp_path: Path) -> None:
    judge_port = free_port()
    judge_log = open(tmp_path / "judge.log", "wb")
    judge = subprocess.Popen(
        [str(llama_cpp(Settings(llama_cpp_dir=Path(os.environ["PREFLOOP_LLAMA_CPP_DIR"]))).server), "-m", str(base())]
        + ["--host", "127.0.0.1", "--port", str(judge_port), "-c", "2048", "--no-webui"],
        stdout=judge_log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until_ready(f"http://127.0.0.1:{judge_port}/health", 60, judge)
        for name, url in (("judged", f"http://127.0.0.1:{judge_port}"), ("unjudged", f"http://127.0.0.1:{free_port()}")):
            bucket = tmp_path / name / "bucket"
            bucket.parent.mkdir()
            subprocess.run(["cp", "-al", str(releases["bucket"]), str(bucket)], check=True)
            # Without its judge, consensus picks; its embeddings endpoint is down too, so key facts do.
            dead = {"PREFLOOP_SERVER_ENSEMBLE_EMBEDDINGS_URL": f"http://127.0.0.1:{free_port()}"} if name == "unjudged" else {}
            server = start_server(
                tmp_path / name / "home",
                bucket,
                releases["template"],
                env={**slot_env(), "PREFLOOP_SERVER_ENSEMBLE_JUDGE_URL": url, **dead},
            )
            try:
                publish_ensemble(server, "judged-pair", ["mild", "wild"], EnsembleRule.JUDGE)
                admin = server.admin()
                admin.post("/admin/deploy", json={"tag": "judged-pair"}).raise_for_status()
                admin.post("/admin/promote", json={"tag": "judged-pair"}).raise_for_status()
                for question in QUESTIONS:
                    picked = ask(server.url, question).json()["ensemble"]
                    if name == "unjudged":
                        assert picked["fallback"] == "consensus (the judge failed: ConnectError)"
                        assert picked["similarity"] == "key facts (the embeddings endpoint failed: ConnectError)"
                        assert picked["chosen"] == "mild"  # consensus of two: a tie, the earlier member
                    elif (pick := parse_choice(picked.get("judge", ""), 2)) is not None:
                        assert picked["chosen"] == ["mild", "wild"][pick] and "fallback" not in picked
                    else:
                        assert picked["fallback"].startswith("consensus (the judge replied ")
            finally:
                stop_server(server)
    finally:
        stop_process(judge)
        judge_log.close()


def test_a_judged_ensemble_needs_a_judge_and_members_must_be_adapters(server: Server) -> None:
    publish_ensemble(server, "no-judge", ["mild", "wild"], EnsembleRule.JUDGE)
    refused = server.admin().post("/admin/deploy", json={"tag": "no-judge"})
    assert refused.status_code == 409 and "PREFLOOP_SERVER_ENSEMBLE_JUDGE_URL" in refused.json()["detail"]
    store = ArtifactStore(LocalBackend(server.home.parent / "bucket"))
    mixed = Release(
        tag="mixed",
        base_model="SmolLM2-135M-Instruct",
        mode=ExportMode.ENSEMBLE,
        base_release="good",
        created_at=datetime.now(timezone.utc),
        members=["mild", "good-copy"],
        rule=EnsembleRule.CONSENSUS,
    )
    store.publish(mixed, {})
    refused = server.admin().post("/admin/deploy", json={"tag": "mixed"})
    assert refused.status_code == 409 and "member good-copy is not an adapter release" in refused.json()["detail"]


def test_consensus_by_embedding_similarity_asks_the_embeddings_endpoint(releases: dict[str, Path], tmp_path: Path) -> None:
    port = free_port()
    embedder_url = f"http://127.0.0.1:{port}"
    log = open(tmp_path / "embedder.log", "wb")
    embedder = subprocess.Popen(
        [str(llama_cpp(Settings(llama_cpp_dir=Path(os.environ["PREFLOOP_LLAMA_CPP_DIR"]))).server), "-m", str(base())]
        + ["--host", "127.0.0.1", "--port", str(port), "-c", "2048", "--embeddings", "--pooling", "mean", "--no-webui"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    bucket = tmp_path / "bucket"
    subprocess.run(["cp", "-al", str(releases["bucket"]), str(bucket)], check=True)
    try:
        wait_until_ready(f"{embedder_url}/health", 60, embedder)
        server = start_server(
            tmp_path / "home",
            bucket,
            releases["template"],
            env={**slot_env(), "PREFLOOP_SERVER_ENSEMBLE_EMBEDDINGS_URL": embedder_url},
        )
        try:
            publish_ensemble(server, "trio", ["wild", "mild", "mild-twin"])
            admin = server.admin()
            admin.post("/admin/deploy", json={"tag": "trio"}).raise_for_status()
            admin.post("/admin/promote", json={"tag": "trio"}).raise_for_status()
            slot = slot_url(server)
            for question in QUESTIONS:
                picked = ask(server.url, question).json()["ensemble"]
                answers = [
                    ask(slot, question, lora=[{"id": i, "scale": 1.0 if i == m else 0.0} for i in range(3)]).json()["choices"][0][
                        "message"
                    ]["content"]
                    for m in range(3)
                ]
                vectors = [
                    e["embedding"]
                    for e in httpx.post(f"{embedder_url}/v1/embeddings", json={"input": answers}, timeout=120).json()["data"]
                ]
                expected = consensus(answers, vectors)
                assert [m["score"] for m in picked["members"]] == pytest.approx(expected, abs=1e-3)
                assert picked["chosen"] == ["wild", "mild", "mild-twin"][max(range(3), key=lambda i: (round(expected[i], 6), -i))]
                if answers[0] != answers[1]:
                    assert picked["chosen"] == "mild"  # the twins agree exactly: cosine 1 between them
        finally:
            stop_server(server)
    finally:
        stop_process(embedder)
        log.close()
