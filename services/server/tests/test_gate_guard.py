"""What the gate accepted is exactly what goes live: promotions name their tag and report, the slots hold still while a
gate runs, and a gate whose slots changed or stopped answering ends without a verdict. Real llama-server slots."""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any

import httpx
from server_helpers import Server, easy_qa_set

from prefloop_core.contracts import GateReport
from prefloop_core.settings import Settings
from prefloop_core.store import open_store

FORCE = {"force": True, "reason": "test setup"}


def gated(server: Server, live: str, candidate: str) -> httpx.Client:
    """`live` in service (promoted as the first release) and `candidate` deployed in the idle slot."""
    admin = server.admin()
    admin.post("/admin/deploy", json={"tag": live}).raise_for_status()
    admin.post("/admin/promote", json={"tag": live}).raise_for_status()
    admin.post("/admin/deploy", json={"tag": candidate}).raise_for_status()
    return admin


def test_a_release_deployed_after_the_gate_cannot_be_promoted_on_its_verdict_but_can_be_forced(server: Server) -> None:
    admin = gated(server, "worse", "good")
    result = admin.post(
        "/admin/gate", json={"qa_set": easy_qa_set().model_dump(mode="json"), "rule": {"method": "count", "min_delta": 0.0}}
    ).json()
    report_id = result["report"]["report_id"]
    assert result["report"]["verdict"]["accepted"], result["markdown"]
    lax = admin.post("/admin/promote", json={"tag": "good", "report_id": report_id})  # the caller's rule, not the server's
    assert lax.status_code == 409 and "was decided by a rule other than this server's (count" in lax.json()["detail"]

    admin.post("/admin/deploy", json={"tag": "good-copy"}).raise_for_status()  # another release into the idle slot
    wrong_slot = admin.post("/admin/promote", json={"tag": "good", "report_id": report_id})
    assert wrong_slot.status_code == 409 and "holds good-copy, not good" in wrong_slot.json()["detail"]
    wrong_report = admin.post("/admin/promote", json={"tag": "good-copy", "report_id": report_id})
    assert wrong_report.status_code == 409 and f"report {report_id} is about good, not good-copy" in wrong_report.json()["detail"]
    no_report = admin.post("/admin/promote", json={"tag": "good-copy"})
    assert no_report.status_code == 409 and "no QA gate report accepted good-copy" in no_report.json()["detail"]
    assert admin.post("/admin/promote", json={"tag": "good-copy", "accuracy": 0.99}).status_code == 422  # not a caller's
    assert admin.post("/admin/promote", json={"tag": "good-copy", "force": True}).status_code == 422  # needs a reason
    assert admin.get("/admin/status").json()["live_tag"] == "worse"

    forced = admin.post(
        "/admin/promote",
        json={"tag": "good-copy", "force": True, "trigger": "cli:alice", "reason": "same weights as the gated release"},
    )
    assert forced.status_code == 200 and forced.json()["live_tag"] == "good-copy"
    entry = admin.get("/admin/history").json()[-1]
    assert (entry["action"], entry["tag"], entry["trigger"]) == ("promote", "good-copy", "cli:alice")
    assert entry["forced"] == "same weights as the gated release" and entry["accuracy"] is None


def test_a_report_about_another_live_model_does_not_promote(server: Server) -> None:
    admin = gated(server, "worse", "good")
    result = admin.post(
        "/admin/gate", json={"qa_set": easy_qa_set().model_dump(mode="json"), "rule": {"method": "count", "min_delta": 0.0}}
    ).json()
    admin.post("/admin/rollback", json={"tag": "good-copy"}).raise_for_status()  # live changes; `worse` stays idle
    admin.post("/admin/deploy", json={"tag": "good"}).raise_for_status()
    stale = admin.post("/admin/promote", json={"tag": "good", "report_id": result["report"]["report_id"]})
    assert stale.status_code == 409 and "but good-copy is live now: run the QA gate again" in stale.json()["detail"]
    unknown = admin.post("/admin/promote", json={"tag": "good", "report_id": "gate-20260101-000000-abcdef"})
    assert unknown.status_code == 404


def start_gate(server: Server, qa_set: dict[str, Any]) -> tuple[threading.Thread, list[httpx.Response]]:
    answer: list[httpx.Response] = []
    thread = threading.Thread(target=lambda: answer.append(server.admin().post("/admin/gate", json={"qa_set": qa_set})))
    thread.start()
    deadline = time.monotonic() + 60
    while not server.admin().get("/admin/status").json()["gate_running"]:
        assert time.monotonic() < deadline and thread.is_alive(), "the gate did not start"
        time.sleep(0.05)
    return thread, answer


def test_deploy_discard_and_promote_are_refused_while_a_gate_runs(server: Server) -> None:
    admin = gated(server, "good", "good-copy")
    thread, answer = start_gate(server, easy_qa_set(4).model_dump(mode="json"))
    for call, body in (("deploy", {"tag": "worse"}), ("discard", {}), ("promote", {"tag": "good-copy", **FORCE})):
        refused = admin.post(f"/admin/{call}", json=body)
        assert refused.status_code == 409, (call, refused.text)
        assert "a QA gate is comparing good-copy with good" in refused.json()["detail"]
    thread.join(timeout=600)
    assert answer[0].status_code == 200, answer[0].text  # the gate itself was not disturbed: a verdict
    assert len(answer[0].json()["candidate_records"]) == 24
    assert not admin.get("/admin/status").json()["gate_running"]
    admin.post("/admin/deploy", json={"tag": "worse"}).raise_for_status()  # free again


def reports(server: Server) -> list[str]:
    return open_store(Settings(home=server.home, store_dir=server.home.parent / "bucket")).ids(GateReport)


def test_a_candidate_that_stops_answering_ends_the_gate_with_an_error_not_a_verdict(server: Server) -> None:
    admin = gated(server, "good", "good-copy")
    [candidate] = [s for s in admin.get("/admin/status").json()["slots"] if s["tag"] == "good-copy"]
    thread, answer = start_gate(server, easy_qa_set(4).model_dump(mode="json"))
    os.kill(candidate["pid"], signal.SIGKILL)
    thread.join(timeout=600)
    failed = answer[0]
    assert failed.status_code == 502, failed.text
    assert "good-copy" in failed.json()["detail"]["message"] and "no verdict" in failed.json()["detail"]["message"]
    assert reports(server) == []  # nothing published, nothing a promotion could name


def test_a_rollback_during_a_gate_goes_through_and_the_gate_ends_with_an_error(server: Server) -> None:
    admin = gated(server, "good", "good-copy")
    thread, answer = start_gate(server, easy_qa_set(4).model_dump(mode="json"))
    back = admin.post("/admin/rollback", json={"tag": "worse"})  # an emergency does not wait for the gate
    assert back.status_code == 200 and back.json()["live_tag"] == "worse"
    thread.join(timeout=600)
    assert answer[0].status_code in (409, 502), answer[0].text
    assert "no verdict" in answer[0].text and reports(server) == []
