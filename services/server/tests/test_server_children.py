"""`kill -9` of the server leaves no llama-server running and no partial download; a restart starts only its own; a
slot answers only its router."""

from __future__ import annotations

import shutil
import signal
import subprocess
from pathlib import Path

import httpx
from server_helpers import ADMIN, SLOT_KEY, Server, slot_headers, start_server, stop_server

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


def test_a_slot_answers_only_the_router_that_started_it(releases: dict[str, Path], tmp_path: Path) -> None:
    bucket = tmp_path / "bucket"
    subprocess.run(["cp", "-al", str(releases["bucket"]), str(bucket)], check=True)
    shutil.copy(releases["template"], tmp_path / "template.json")
    server = start_server(tmp_path / "home", bucket, tmp_path / "template.json")  # the default: a random key per slot
    try:
        admin = server.admin()
        admin.post("/admin/deploy", json={"tag": "good"}).raise_for_status()
        admin.post("/admin/promote", json={"tag": "good"}).raise_for_status()
        status = admin.get("/admin/status")
        [slot] = [s for s in status.json()["slots"] if s["pid"]]
        chat = {"messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 4}
        assert httpx.post(f"{server.url}/v1/chat/completions", json=chat, timeout=120).status_code == 200

        direct = f"http://127.0.0.1:{slot['port']}"
        assert httpx.get(f"{direct}/health").status_code == 200  # open, as llama-server keeps it
        for headers in ({}, slot_headers(), {"Authorization": f"Bearer {ADMIN}"}):  # no key, another key, a token
            refused = httpx.post(f"{direct}/v1/chat/completions", json=chat, headers=headers, timeout=120)
            assert refused.status_code == 401, (headers, refused.text)
        assert httpx.get(f"{direct}/v1/models", headers=slot_headers()).status_code == 401

        # The key is in the slot's environment (only this user can read it), not on the command line `ps` shows,
        # and it appears in no log and no status the server writes.
        cmdline = Path(f"/proc/{slot['pid']}/cmdline").read_bytes().split(b"\0")
        assert b"--api-key" not in cmdline and b"--api-key-file" not in cmdline
        environ = dict(v.split(b"=", 1) for v in Path(f"/proc/{slot['pid']}/environ").read_bytes().split(b"\0") if b"=" in v)
        key = environ[b"LLAMA_API_KEY"].decode()
        assert len(key) >= 32 and key != SLOT_KEY
        assert (
            httpx.post(
                f"{direct}/v1/chat/completions", json=chat, headers={"Authorization": f"Bearer {key}"}, timeout=120
            ).status_code
            == 200
        )  # (the key is what opens it)
        assert key not in status.text
        for log in [server.log, *(server.home / "server" / "logs").glob("*")]:
            assert key not in log.read_text(errors="replace"), log
    finally:
        stop_server(server)
