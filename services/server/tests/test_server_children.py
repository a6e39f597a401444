"""`kill -9` of the server leaves no llama-server running and no partial download; a restart starts only its own."""

from __future__ import annotations

import signal

from server_helpers import Server, start_server, stop_server

from prefloop_core.testing import process_gone as gone


def slot_pids(server: Server) -> list[int]:
    return [s["pid"] for s in server.admin().get("/admin/status").json()["slots"] if s["pid"]]


def test_slots_die_with_a_server_killed_hard_and_a_restart_serves_alone(server: Server) -> None:
    admin = server.admin()
    admin.post("/admin/deploy", json={"tag": "good"}).raise_for_status()
    admin.post("/admin/promote", json={"tag": "good"}).raise_for_status()
    admin.post("/admin/deploy", json={"tag": "good-copy"}).raise_for_status()
    first = slot_pids(server)
    assert len(first) == 2

    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait()
    assert all(gone(pid) for pid in first), "a llama-server outlived the server"

    # What a kill during a download leaves in the models folder goes at the next start.
    stale = server.home / "server" / "models" / "good" / ".model-Q4_1.gguf.0123abcd.part"
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_bytes(b"half a model")
    again = start_server(server.home, server.home.parent / "bucket", server.home.parent / "template.json")
    try:
        assert not stale.exists()
        second = slot_pids(again)  # the last live release restored, in one slot: nothing beside it
        assert len(second) == 1 and not set(second) & set(first)
        assert len(list((server.home / "server" / "logs").glob("*.pid.json"))) == 1  # the killed server's are gone
    finally:
        stop_server(again)
    assert all(gone(pid) for pid in second)
    assert not list((server.home / "server" / "logs").glob("*.pid.json"))  # a clean stop forgets its records
