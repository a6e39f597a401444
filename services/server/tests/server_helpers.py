"""Shared pieces of the server tests: releases of real GGUFs in a bucket, the running server, QA sets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import httpx

from prefloop_core.contracts import ExportMode, QASet, Quantization, Release
from prefloop_core.net import NotReady, free_port, stop_process, wait_until_ready
from prefloop_core.settings import Settings
from prefloop_core.store import ArtifactStore, LocalBackend
from prefloop_core.toolchain import base_gguf, llama_cpp

ADMIN = "admin-token-0123456789"
# The slots' key for a server whose slots a test or benchmark asks directly (`slot_env()`); without it each slot gets a
# random key that only the router holds.
SLOT_KEY = "slot-key-0123456789"


def slot_env() -> dict[str, str]:
    return {"PREFLOOP_SERVER_SLOT_API_KEY": SLOT_KEY}


def slot_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {SLOT_KEY}"}


# SmolLM2-135M answers these correctly as shipped (Q4_1) and mostly wrongly requantized to Q2_K.
EASY_QUESTIONS = [
    ("spider", "How many legs does a spider have?", ["8|eight"]),
    ("hot", "What is the opposite of hot?", ["cold"]),
    ("bees", "What do bees make?", ["honey"]),
    ("ice", "What is frozen water called?", ["ice"]),
    ("paris", "What is the capital of France?", ["Paris"]),
    ("sky", "What color is the sky on a clear day?", ["blue"]),
]


def easy_qa_set(copies: int = 1) -> QASet:
    """The easy questions, each asked `copies` times under distinct ids (a longer gate, more discordant questions)."""
    return QASet(
        name="easy" if copies == 1 else f"easy-x{copies}",
        questions=[
            {"id": qid if copies == 1 else f"{qid}-{i}", "question": q, "key_facts": facts, "game": "minecraft", "split": "train"}
            for i in range(copies)
            for qid, q, facts in EASY_QUESTIONS
        ],
    )


def build_bucket(root: Path, gguf: Path | None = None) -> dict[str, Path]:
    """Releases: `good` and `good-copy` (SmolLM2 Q4_1), `worse` (requantized Q2_K), `broken` (truncated); or, given
    another Q4_1 `gguf`, only `good` and `good-copy` of it."""
    if gguf is not None:
        releases = [("good", gguf, "Q4_1"), ("good-copy", gguf, "Q4_1")]
    else:
        settings = Settings(llama_cpp_dir=Path(os.environ["PREFLOOP_LLAMA_CPP_DIR"]))
        gguf = base_gguf(settings)
        work = root / "work"
        work.mkdir(parents=True)
        worse = work / "model-Q2_K.gguf"
        subprocess.run(
            [str(llama_cpp(settings).quantize), "--allow-requantize", str(gguf), str(worse), "Q2_K"],
            check=True,
            capture_output=True,
        )
        broken = work / "model-Q4_1.gguf"
        broken.write_bytes(gguf.read_bytes()[: 5 * 1024 * 1024])
        releases = [("good", gguf, "Q4_1"), ("good-copy", gguf, "Q4_1"), ("worse", worse, "Q2_K"), ("broken", broken, "Q4_1")]
    store = ArtifactStore(LocalBackend(root / "bucket"))
    now = datetime.now(timezone.utc)
    for tag, path, quant in releases:
        release = Release(
            tag=tag,
            base_model="SmolLM2-135M-Instruct",
            mode=ExportMode.BASE,
            created_at=now,
            quantizations=[Quantization(quant)] if quant != "Q2_K" else [],
        )
        store.publish(release, {f"model-{quant}.gguf": path})
    template = root / "template.json"
    template.write_text(json.dumps({"name": "plain", "system": None, "without_context": "{question} Answer in a few words."}))
    return {"bucket": root / "bucket", "template": template}


@dataclass
class Server:
    url: str
    home: Path
    proc: subprocess.Popen[bytes]
    log: Path

    def admin(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=300)

    def env(self) -> dict[str, str]:
        return server_env(self.home, self.url, self.home.parent / "bucket", self.home.parent / "template.json")


def server_env(home: Path, url: str, bucket: Path, template: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PREFLOOP_") or k in ("PREFLOOP_LLAMA_CPP_DIR", "PREFLOOP_VENVS_DIR")
    }
    # The drain must outlast the slowest request in flight: with two llama-servers and 8 clients on 2 cores, one
    # 24-token answer took up to 18 s, and in one CI run over 40 s, so a 30 s drain cut a stream (2026-11-30).
    env.update(
        PREFLOOP_HOME=str(home),
        PREFLOOP_STORE_DIR=str(bucket),
        PREFLOOP_SERVER_ADMIN_TOKEN=ADMIN,
        PREFLOOP_SERVER_URL=url,
        PREFLOOP_SERVER_CTX="2048",
        PREFLOOP_SERVER_PARALLEL="4",
        PREFLOOP_SERVER_QA_MAX_TOKENS="32",
        PREFLOOP_SERVER_DRAIN_TIMEOUT_S="120",
        PREFLOOP_PROMPT_TEMPLATE=str(template),
    )
    return env


def start_server(home: Path, bucket: Path, template: Path, *extra: str, env: dict[str, str] | None = None) -> Server:
    """`prefloop-server serve` on a free port; `env` adds to its environment (and its slots')."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = home / "server.log"
    home.mkdir(parents=True, exist_ok=True)
    exe = str(Path(sys.executable).parent / "prefloop-server")
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            [exe, "serve", "--port", str(port), *extra],
            stdout=fh,
            stderr=subprocess.STDOUT,
            env={**server_env(home, url, bucket, template), **(env or {})},
        )
    try:
        wait_until_ready(f"{url}/admin/status", 60, proc, {"Authorization": f"Bearer {ADMIN}"})
    except NotReady as exc:
        proc.kill()
        raise RuntimeError(f"{exc}: {log.read_text()}") from None
    return Server(url, home, proc, log)


def stop_server(server: Server) -> None:
    stop_process(server.proc)


def random_lora(base: Path, out: Path, seed: int, scale: float, rank: int = 8) -> Path:
    """A LoRA GGUF over `base` with random A and B on every layer's attention q and v (llama.cpp's gguf-py, from the
    toolchain): a real adapter llama-server loads, that changes answers more the larger `scale` is."""
    import numpy as np

    sys.path.insert(0, str(Path(os.environ["PREFLOOP_LLAMA_CPP_DIR"]) / "src" / "gguf-py"))
    import gguf

    shapes = {
        t.name: (int(t.shape[0]), int(t.shape[1]))
        for t in gguf.GGUFReader(base).tensors
        if t.name.endswith((".attn_q.weight", ".attn_v.weight"))
    }
    rng = np.random.default_rng(seed)
    writer = gguf.GGUFWriter(out, "llama")
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(rank))
    for name, (n_in, n_out) in sorted(shapes.items()):
        writer.add_tensor(f"{name}.lora_a", (rng.standard_normal((rank, n_in)) * scale).astype(np.float32))
        writer.add_tensor(f"{name}.lora_b", (rng.standard_normal((n_out, rank)) * scale).astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out


def publish_adapters(bucket: Path, base: Path, adapters: dict[str, tuple[int, float]]) -> None:
    """Adapter releases over release `good`: tag -> (seed, scale) of a random LoRA."""
    store = ArtifactStore(LocalBackend(bucket))
    work = bucket.parent / "loras"
    work.mkdir(exist_ok=True)
    for tag, (seed, scale) in adapters.items():
        lora = random_lora(base, work / f"{tag}.gguf", seed, scale)
        release = Release(
            tag=tag,
            base_model="SmolLM2-135M-Instruct",
            mode=ExportMode.ADAPTER,
            base_release="good",
            created_at=datetime.now(timezone.utc),
            quantizations=[Quantization.Q4_1],
        )
        store.publish(release, {"lora-1-adapter.gguf": lora})
