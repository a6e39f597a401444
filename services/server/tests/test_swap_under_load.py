"""Promote and rollback while 8 clients (half streaming) keep asking: no request fails or is cut short."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import httpx
from load import run_load, wait_for_requests
from server_helpers import Server

FORCED = {"force": True, "reason": "swapping under load, not a model change"}  # the same weights: no gate to run


def test_promote_and_rollback_under_load_lose_no_request(server: Server) -> None:
    admin = server.admin()
    admin.post("/admin/deploy", json={"tag": "good"}).raise_for_status()
    admin.post("/admin/promote", json={"tag": "good"}).raise_for_status()

    stop = threading.Event()
    result, threads = run_load(server.url, clients=8, stop=stop)
    try:
        wait_for_requests(result, 8)
        admin.post("/admin/deploy", json={"tag": "good-copy"}).raise_for_status()  # loads while `good` serves
        wait_for_requests(result, 8)
        admin.post("/admin/promote", json=FORCED | {"tag": "good-copy"}).raise_for_status()
        wait_for_requests(result, 8)
        admin.post("/admin/rollback", json={}).raise_for_status()
        wait_for_requests(result, 8)
        admin.post("/admin/promote", json=FORCED | {"tag": "good-copy"}).raise_for_status()  # forward again: instant
        wait_for_requests(result, 8)
        admin.post("/admin/deploy", json={"tag": "worse"}).raise_for_status()  # replaces the idle slot after it drains
        wait_for_requests(result, 8)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=120)

    assert result.failed == [], result.failed[:5]
    assert result.ok >= 48
    assert result.models == {"good", "good-copy"}  # both served during the run


def test_a_request_whose_body_arrives_during_rollback_and_deploy_goes_to_the_slot_live_when_it_is_complete(
    server: Server,
) -> None:
    """The router picks the live slot once the body is in: a slot chosen earlier could be demoted, drained (the
    request not yet counted on it) and replaced while the body was still arriving, and the request got a 502."""
    admin = server.admin()
    for step in (
        ("deploy", {"tag": "good"}),
        ("promote", {"tag": "good"}),
        ("deploy", {"tag": "good-copy"}),
        ("promote", FORCED | {"tag": "good-copy"}),
    ):
        admin.post(f"/admin/{step[0]}", json=step[1]).raise_for_status()
    first_part_sent, rest = threading.Event(), threading.Event()
    body = json.dumps({"messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 4, "temperature": 0}).encode()

    def slow_body() -> Iterator[bytes]:
        yield body[:10]
        first_part_sent.set()
        rest.wait(120)
        yield body[10:]

    answer: list[httpx.Response] = []
    sender = threading.Thread(
        target=lambda: answer.append(
            httpx.post(
                f"{server.url}/v1/chat/completions",
                content=slow_body(),
                headers={"content-type": "application/json"},
                timeout=120,
            )
        )
    )
    sender.start()
    assert first_part_sent.wait(30)
    admin.post("/admin/rollback", json={}).raise_for_status()  # `good` live again, `good-copy` idle
    admin.post("/admin/deploy", json={"tag": "worse"}).raise_for_status()  # the idle slot drained and replaced
    rest.set()
    sender.join(120)
    assert answer and answer[0].status_code == 200, answer[0].text if answer else "no answer"
    assert answer[0].json()["model"] == "good"
