"""Real llama-server slots behind the router: deploy, promote, rollback, discard, failures, the gate."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from pathlib import Path

import httpx
import pytest
from server_helpers import SLOT_KEY, Server, easy_qa_set

from prefloop_core.contracts import ChatMessage, GateReport, GateVerdict, QARecord, ServerStatus, SlotName
from prefloop_core.settings import Settings
from prefloop_core.store import open_store
from prefloop_core.toolchain import LlamaCpp
from prefloop_server.qa.drift import measure
from prefloop_server.qa.runner import Endpoint
from prefloop_server.settings import ServerSettings
from prefloop_server.slots import Slot


def ask(server: Server, question: str = "What is the capital of France?") -> httpx.Response:
    return httpx.post(
        f"{server.url}/v1/chat/completions",
        timeout=120,
        json={"messages": [{"role": "user", "content": question}], "max_tokens": 16, "temperature": 0},
    )


def live(server: Server) -> str | None:
    return server.admin().get("/admin/status").json()["live_tag"]


def test_nothing_live_answers_503_and_admin_needs_its_token(server: Server) -> None:
    assert ask(server).status_code == 503
    assert httpx.get(f"{server.url}/health").status_code == 503
    assert httpx.post(f"{server.url}/admin/deploy", json={"tag": "good"}).status_code == 401
    wrong = httpx.post(f"{server.url}/admin/deploy", json={"tag": "good"}, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401


def test_deploy_promote_rollback_and_the_history(server: Server) -> None:
    admin = server.admin()
    deployed = admin.post("/admin/deploy", json={"tag": "good", "trigger": "test"})
    assert deployed.status_code == 200 and deployed.json()["status"] == "ready"
    assert ask(server).status_code == 503  # deployed is not live until promoted
    admin.post("/admin/promote", json={"tag": "good", "trigger": "test"}).raise_for_status()  # nothing live: no gate
    # Asked of the served model itself: SmolLM2 answers this one right on both llama.cpp builds (AVX2 and AVX-512),
    # where its spider answer flips between 8 and 12 (benchmarks/results/llama_cpp_build.md).
    answer = ask(server, "What is the capital of France? Answer in a few words.").json()
    assert live(server) == "good" and "Paris" in answer["choices"][0]["message"]["content"]
    assert httpx.get(f"{server.url}/v1/models").json()["data"][0]["id"] == "good"

    admin.post("/admin/deploy", json={"tag": "worse"}).raise_for_status()
    ungated = admin.post("/admin/promote", json={"tag": "worse"})
    assert ungated.status_code == 409 and "no QA gate report accepted worse" in ungated.json()["detail"]
    admin.post("/admin/promote", json={"tag": "worse", "force": True, "reason": "testing the swap"}).raise_for_status()
    assert live(server) == "worse"
    status = admin.get("/admin/status").json()
    assert {s["tag"] for s in status["slots"]} == {"good", "worse"}  # the old slot stays loaded

    back = admin.post("/admin/rollback", json={})
    assert back.status_code == 200 and back.json()["live_tag"] == "good"
    again = admin.post("/admin/rollback", json={"tag": "good-copy"})  # an older tag: deployed, then promoted
    assert again.status_code == 200 and again.json()["live_tag"] == "good-copy"

    history = admin.get("/admin/history").json()
    assert [(h["action"], h["tag"]) for h in history] == [
        ("deploy", "good"),
        ("promote", "good"),
        ("deploy", "worse"),
        ("promote", "worse"),
        ("rollback", "good"),
        ("deploy", "good-copy"),
        ("rollback", "good-copy"),
    ]
    assert history[1]["note"] == "first release: nothing was live to compare with" and history[1]["accuracy"] is None
    assert history[3]["previous_tag"] == "good" and history[3]["forced"] == "testing the swap"
    # It is in the bucket, where the flows and a restarted server read it.
    bucket = Settings(home=server.home, store_dir=server.home.parent / "bucket")
    assert len(open_store(bucket).history()) == 7


def test_a_broken_gguf_never_takes_traffic(server: Server) -> None:
    admin = server.admin()
    admin.post("/admin/deploy", json={"tag": "good"}).raise_for_status()
    admin.post("/admin/promote", json={"tag": "good"}).raise_for_status()
    failed = admin.post("/admin/deploy", json={"tag": "broken"})
    assert failed.status_code == 502
    detail = failed.json()["detail"]
    assert "exited" in detail["message"] or "healthy" in detail["message"]
    assert detail["log_tail"].strip()  # llama-server's own words
    assert admin.post("/admin/promote", json={"tag": "broken"}).status_code == 409  # nothing promotable
    assert live(server) == "good" and ask(server).status_code == 200
    slots = admin.get("/admin/status").json()["slots"]
    assert sorted(s["status"] for s in slots) == ["failed", "ready"]


def test_unknown_tags_and_paths_are_refused(server: Server) -> None:
    admin = server.admin()
    assert admin.post("/admin/deploy", json={"tag": "nope"}).status_code == 404
    bad = admin.post("/admin/deploy", json={"tag": "../../etc"})
    assert bad.status_code == 422 and "not a valid id" in bad.text
    assert admin.post("/admin/rollback", json={}).status_code == 409


def test_discard_unloads_the_candidate(server: Server) -> None:
    admin = server.admin()
    admin.post("/admin/deploy", json={"tag": "good"}).raise_for_status()
    admin.post("/admin/promote", json={"tag": "good"}).raise_for_status()
    admin.post("/admin/deploy", json={"tag": "worse"}).raise_for_status()
    status = admin.post("/admin/discard", json={}).json()
    assert sorted(s["status"] for s in status["slots"]) == ["empty", "ready"] and status["live_tag"] == "good"


def test_slots_sleep_at_openmp_barriers_unless_configured_otherwise(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two busy slots on the same cores share them only when their threads sleep at ggml's barriers
    (benchmarks/slot_contention.py); llama.cpp's OpenMP default spins."""
    admin = server.admin()
    admin.post("/admin/deploy", json={"tag": "good"}).raise_for_status()
    [slot] = [s for s in admin.get("/admin/status").json()["slots"] if s["tag"] == "good"]
    environ = Path(f"/proc/{slot['pid']}/environ").read_bytes().split(b"\0")
    assert b"OMP_WAIT_POLICY=passive" in environ

    monkeypatch.setenv("OMP_WAIT_POLICY", "active")
    for policy, seen in (("passive", "passive"), ("active", "active"), ("default", "active")):  # default: inherited
        settings = ServerSettings(omp_wait_policy=policy)
        assert Slot(SlotName.BLUE, LlamaCpp(tmp_path), settings, tmp_path).environment()["OMP_WAIT_POLICY"] == seen


def test_the_gate_refuses_a_worse_model_and_accepts_a_better_one(server: Server) -> None:
    admin = server.admin()
    qa_set = easy_qa_set().model_dump(mode="json")
    assert admin.post("/admin/qa", json={"qa_set": qa_set}).status_code == 409  # nothing live yet
    admin.post("/admin/deploy", json={"tag": "good"}).raise_for_status()
    admin.post("/admin/promote", json={"tag": "good"}).raise_for_status()
    baseline = admin.post("/admin/qa", json={"qa_set": qa_set}).json()  # the live model alone, as the daily QA does
    assert len(baseline["records"]) == 6 and {r["model"] for r in baseline["records"]} == {"good"}
    assert baseline["summary"]["asked"] == 6
    assert abs(baseline["summary"]["accuracy"] - sum(r["score"] for r in baseline["records"]) / 6) < 1e-9
    admin.post("/admin/deploy", json={"tag": "worse"}).raise_for_status()
    refused = admin.post("/admin/gate", json={"qa_set": qa_set}).json()
    verdict = refused["report"]["verdict"]
    assert not verdict["accepted"], refused["markdown"]
    assert verdict["regressions"] and "REFUSED" in refused["markdown"] and verdict["p_value"] == 1.0
    assert verdict["live_accuracy"] > verdict["candidate_accuracy"]
    assert (refused["report"]["live_tag"], refused["report"]["candidate_tag"]) == ("good", "worse")
    drift = verdict["drift"]  # Q2_K's distributions moved from Q4_1's on every question: measured on each
    assert drift["tokens"] > 0 and drift["mean_kl"] > 0.02 and all(q["kl"] is not None for q in verdict["questions"])
    assert "drift: mean per-token KL" in refused["markdown"]
    denied = admin.post("/admin/promote", json={"tag": "worse", "report_id": refused["report"]["report_id"]})
    assert denied.status_code == 409 and "the QA gate refused worse" in denied.json()["detail"]

    # Published: the report, both runs' records, the table and the chart, under qa/<report_id>/.
    store = open_store(Settings(home=server.home, store_dir=server.home.parent / "bucket"))
    report = store.require(GateReport, refused["report"]["report_id"])
    assert set(report.files) == {"live.jsonl", "candidate.jsonl", "comparison.md", "comparison.png"}
    assert report.verdict.model_dump() == GateVerdict.model_validate(verdict).model_dump()

    admin.post("/admin/promote", json={"tag": "worse", "force": True, "reason": "test"}).raise_for_status()
    admin.post("/admin/deploy", json={"tag": "good-copy"}).raise_for_status()
    # `worse` gets 4 of the 6 wrong; each asked twice, 8 fixed without a regression is better beyond chance (p = 0.004).
    accepted = admin.post("/admin/gate", json={"qa_set": easy_qa_set(2).model_dump(mode="json")}).json()
    assert accepted["report"]["verdict"]["accepted"], accepted["markdown"]
    assert len(accepted["live_records"]) == len(accepted["candidate_records"]) == 12
    admin.post("/admin/promote", json={"tag": "good-copy"}).raise_for_status()  # the server's last gate of the tag
    entry = admin.get("/admin/history").json()[-1]
    assert (entry["action"], entry["tag"], entry["report_id"]) == ("promote", "good-copy", accepted["report"]["report_id"])
    assert entry["accuracy"] == accepted["report"]["verdict"]["candidate_accuracy"]  # the report's, not a caller's

    # The same weights in the other slot: no drift (to rounding), against Q2_K's above.
    admin.post("/admin/deploy", json={"tag": "good"}).raise_for_status()
    same = admin.post("/admin/gate", json={"qa_set": qa_set}).json()["report"]["verdict"]["drift"]
    assert same["mean_kl"] < 0.001 < drift["mean_kl"] / 20, (same, drift)

    # Any answer can be followed, Korean split inside a character included (llama.cpp's grammar engine refused it).
    status = ServerStatus.model_validate(admin.get("/admin/status").json())
    live_slot = status.slot(status.live)  # type: ignore[arg-type]
    korean = QARecord(
        record_id="ko",
        asked_at=datetime.now(timezone.utc),
        question_id="ko-1",
        question="크리퍼는?",
        prompt=[ChatMessage(role="user", content="크리퍼는 무엇을 두려워하나요?")],
        answer="크리퍼는 고양이와 오셀롯을 두려워합니다.",
        score=1.0,
        model="good-copy",
    )
    measured = asyncio.run(
        measure(
            Endpoint(f"http://127.0.0.1:{live_slot.port}", "good-copy", api_key=SLOT_KEY),
            Endpoint(f"http://127.0.0.1:{status.idle.port}", "good", api_key=SLOT_KEY),
            [korean],
            max_tokens=32,
            concurrency=1,
        )
    )
    kl, tokens = measured.per_question["ko-1"]
    assert tokens > 5 and kl < 0.01  # the same weights in both slots


def _live_after_restart(server: Server, env: dict[str, str] | None = None) -> str:
    import time

    from server_helpers import start_server, stop_server

    stop_server(server)
    again = start_server(server.home, server.home.parent / "bucket", server.home.parent / "template.json", env=env)
    try:
        deadline = time.monotonic() + 60
        while httpx.get(f"{again.url}/health").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        return httpx.get(f"{again.url}/health").json()["tag"]
    finally:
        stop_server(again)


def test_the_last_live_release_is_restored_when_the_server_restarts(server: Server) -> None:
    admin = server.admin()
    admin.post("/admin/deploy", json={"tag": "good-copy"}).raise_for_status()
    admin.post("/admin/promote", json={"tag": "good-copy"}).raise_for_status()
    # The history wins over the initial release, which only fills an empty history.
    assert _live_after_restart(server, {"PREFLOOP_SERVER_INITIAL_RELEASE": "good"}) == "good-copy"


def test_a_new_bucket_serves_the_initial_release_and_without_one_nothing_is_live(server: Server) -> None:
    assert httpx.get(f"{server.url}/health").status_code == 503  # nothing live: a container is not healthy yet
    assert _live_after_restart(server, {"PREFLOOP_SERVER_INITIAL_RELEASE": "good"}) == "good"


def test_request_bodies_over_the_limit_are_refused_by_the_router(server: Server) -> None:
    big = {"messages": [{"role": "user", "content": "x" * (5 * 1024 * 1024)}]}
    response = httpx.post(f"{server.url}/v1/chat/completions", json=big, timeout=60)
    assert response.status_code == 413 and "PREFLOOP_SERVER_MAX_BODY_MB" in response.text


def test_prompts_are_not_logged_unless_configured(server: Server) -> None:
    admin = server.admin()
    admin.post("/admin/deploy", json={"tag": "good"}).raise_for_status()
    admin.post("/admin/promote", json={"tag": "good"}).raise_for_status()
    ask(server, "a very private question 7f3a").raise_for_status()
    assert "7f3a" not in server.log.read_text()
