"""A slot: one llama-server process on a loopback port, loaded with one release.

Two slots (blue and green) let a new model load while the old one keeps answering. A slot
counts its in-flight requests so that replacing it waits for them to finish.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shlex
import subprocess
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import httpx
from prefloop_core.children import ChildRecord, die_with_parent
from prefloop_core.contracts import EnsembleRule, SlotName, SlotState, SlotStatus
from prefloop_core.net import free_port
from prefloop_core.openmp import wait_policy_environment
from prefloop_core.toolchain import LlamaCpp
from prefloop_server.settings import ServerSettings


class SlotFailed(RuntimeError):
    def __init__(self, message: str, log_tail: str) -> None:
        super().__init__(message)
        self.log_tail = log_tail


@dataclass(frozen=True)
class Member:
    """One member of an ensemble: its release tag and the indices of its LoRAs among the slot's."""

    tag: str
    loras: tuple[int, ...]


@dataclass(frozen=True)
class Model:
    """What a slot loads: a GGUF, optionally with GGUF LoRAs applied over it (in order: SFT, then DPO). An ensemble
    loads every member's LoRAs unapplied, and each request applies one member's (prefloop_server.ensemble)."""

    tag: str
    gguf: Path
    loras: tuple[Path, ...] = ()
    members: tuple[Member, ...] = ()
    rule: EnsembleRule | None = None


class Slot:
    def __init__(self, name: SlotName, llama: LlamaCpp, settings: ServerSettings, logs: Path) -> None:
        self.name = name
        self.llama = llama
        self.settings = settings
        self.log_path = logs / f"slot-{name.value}.log"
        self.record_path = logs / f"slot-{name.value}.pid.json"  # while its llama-server runs (children.ChildRecord)
        self.status = SlotStatus.EMPTY
        self.model: Model | None = None
        self.port: int | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.in_flight = 0
        self.api_key = ""  # made at each start
        self.loaded_at: datetime | None = None
        self.error: str | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def state(self) -> SlotState:
        return SlotState(
            name=self.name,
            status=self.status,
            tag=self.model.tag if self.model else None,
            port=self.port,
            pid=self.proc.pid if self.proc else None,
            in_flight=self.in_flight,
            loaded_at=self.loaded_at,
            error=self.error,
        )

    def command(self, model: Model, port: int) -> list[str]:
        s = self.settings
        cmd = [
            str(self.llama.server),
            "-m",
            str(model.gguf),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "-c",
            str(s.server_ctx),
            "-np",
            str(s.server_parallel),
            "-ngl",
            str(s.server_gpu_layers),
            "--alias",
            model.tag,
            "--no-webui",
        ]
        if s.server_threads:
            cmd += ["-t", str(s.server_threads)]
        for lora in model.loras:
            cmd += ["--lora", str(lora)]
        if model.members:
            cmd.append("--lora-init-without-apply")
        return cmd + shlex.split(s.server_extra_args)

    def headers(self) -> dict[str, str]:
        """What a request to this slot carries: its key (llama-server answers 401 without it; /health is open)."""
        return {"Authorization": f"Bearer {self.api_key}"}

    def environment(self) -> dict[str, str]:
        """This process's environment with the settings' OpenMP wait policy (llama-server's CPU threads read it) and
        the slot's key: in the environment, which only this user can read, not on the command line `ps` shows."""
        return {**os.environ, **wait_policy_environment(self.settings.omp_wait_policy), "LLAMA_API_KEY": self.api_key}

    def log_tail(self, lines: int = 20) -> str:
        try:
            with open(self.log_path, errors="replace") as fh:
                return "".join(deque(fh, maxlen=lines))
        except OSError:
            return ""

    async def start(self, model: Model) -> None:
        """Load `model`; returns once `/health` answers 200, raises SlotFailed with the log tail otherwise."""
        await self.stop()
        self.status, self.model, self.error = SlotStatus.LOADING, model, None
        self.port = free_port()
        configured = self.settings.server_slot_api_key
        self.api_key = configured.get_secret_value() if configured else secrets.token_urlsafe(32)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:
            # Called on the event loop's thread, which lives as long as the server: the child dies with it (children).
            self.proc = subprocess.Popen(
                self.command(model, self.port),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.environment(),
                process_group=0,
                preexec_fn=die_with_parent(),
            )
        ChildRecord(self.proc.pid, (str(self.llama.server), f"--port {self.port}")).save(self.record_path)
        deadline = time.monotonic() + self.settings.server_health_timeout_s
        async with httpx.AsyncClient(timeout=2) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    return await self._fail(f"llama-server exited with code {self.proc.returncode} while loading {model.tag}")
                try:
                    if (await client.get(f"{self.url}/health")).status_code == 200:
                        if model.members:
                            await self._unapply_loras(client, model)
                        self.status, self.loaded_at = SlotStatus.READY, datetime.now(timezone.utc)
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.2)
        await self._fail(f"{model.tag} did not become healthy within {self.settings.server_health_timeout_s:.0f} s")

    async def _unapply_loras(self, client: httpx.AsyncClient, model: Model) -> None:
        """Every LoRA at scale 0 for requests that name none: an ensemble's requests each name their member's, and
        this build of llama-server applied the LoRAs at start in spite of --lora-init-without-apply."""
        zero = [{"id": i, "scale": 0.0} for i in range(len(model.loras))]
        response = await client.post(f"{self.url}/lora-adapters", json=zero, headers=self.headers())
        if response.status_code != 200:
            await self._fail(f"setting {model.tag}'s LoRA scales failed: {response.status_code} {response.text[:200]}")

    async def _fail(self, message: str) -> None:
        tail = self.log_tail()
        await self.stop(drain=False)
        self.status, self.error = SlotStatus.FAILED, message
        raise SlotFailed(message, tail)

    async def stop(self, drain: bool = True) -> None:
        """Stop the process, first letting in-flight requests finish (up to the drain timeout)."""
        if drain:
            deadline = time.monotonic() + self.settings.server_drain_timeout_s
            while self.in_flight > 0 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                await asyncio.to_thread(self.proc.wait, 10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                await asyncio.to_thread(self.proc.wait)
        self.proc = None
        self.record_path.unlink(missing_ok=True)
        self.status, self.model, self.port, self.loaded_at = SlotStatus.EMPTY, None, None, None
