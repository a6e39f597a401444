"""Promote and rollback while 8 clients (half streaming) keep asking: no request fails or is cut short."""

from __future__ import annotations

import threading

from load import run_load, wait_for_requests
from server_helpers import Server


def test_promote_and_rollback_under_load_lose_no_request(server: Server) -> None:
    admin = server.admin()
    admin.post("/admin/deploy", json={"tag": "good"}).raise_for_status()
    admin.post("/admin/promote", json={}).raise_for_status()

    stop = threading.Event()
    result, threads = run_load(server.url, clients=8, stop=stop)
    try:
        wait_for_requests(result, 8)
        admin.post("/admin/deploy", json={"tag": "good-copy"}).raise_for_status()  # loads while `good` serves
        wait_for_requests(result, 8)
        admin.post("/admin/promote", json={}).raise_for_status()
        wait_for_requests(result, 8)
        admin.post("/admin/rollback", json={}).raise_for_status()
        wait_for_requests(result, 8)
        admin.post("/admin/promote", json={}).raise_for_status()  # forward again: instant, both loaded
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
