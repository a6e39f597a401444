"""`prefloop demo` on the embedded default.

Until the exporter and the flows land (issues #5, #7) the demo proves the foundation the loop runs on,
for real: it publishes the base model as a release in the local bucket (immutable, verified),
fetches it back with its sha256 checked, serves it with the pinned llama.cpp build and asks it
questions over the OpenAI-compatible API. Every step prints what it did.
"""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import httpx

from prefloop_core.contracts import ExportMode, Quantization, Release
from prefloop_core.net import NotReady, free_port, wait_until_ready
from prefloop_core.settings import Settings
from prefloop_core.store import ArtifactStore, open_store
from prefloop_core.toolchain import base_gguf, llama_cpp

BASE_TAG = "smollm2-135m-instruct-base"
QUESTIONS = [
    "What is the capital of France? Answer in one word.",
    "Name one block you can mine in Minecraft.",
]


def publish_base(store: ArtifactStore, gguf: Path) -> Release:
    release = Release(
        tag=BASE_TAG,
        base_model="HuggingFaceTB/SmolLM2-135M-Instruct",
        mode=ExportMode.BASE,
        quantizations=[Quantization.Q4_1],
        created_at=datetime.now(timezone.utc),
    )
    return store.publish(release, {"model-Q4_1.gguf": gguf})


def ask(url: str, question: str) -> tuple[str, float]:
    started = time.monotonic()
    response = httpx.post(
        f"{url}/v1/chat/completions",
        json={"messages": [{"role": "user", "content": question}], "max_tokens": 48, "temperature": 0},
        timeout=120,
    )
    response.raise_for_status()
    answer = response.json()["choices"][0]["message"]["content"].strip()
    return answer, time.monotonic() - started


def run_demo(settings: Settings) -> int:
    store = open_store(settings)
    tools = llama_cpp(settings)
    gguf = base_gguf(settings)
    print(f"[demo 1/4] bucket: {store.backend.describe()}")

    existed = store.get(Release, BASE_TAG) is not None
    release = publish_base(store, gguf)
    entry = release.files["model-Q4_1.gguf"]
    state = "already published, same content: nothing to do" if existed else "published"
    print(f"[demo 2/4] release {release.tag}: {state} ({entry.size / 1e6:.1f} MB, sha256 {entry.sha256[:12]}…)")

    models_dir = settings.home / "models" / release.tag
    local = store.fetch(release, models_dir)["model-Q4_1.gguf"]
    print(f"[demo 3/4] fetched to {local} (size and sha256 verified)")

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = settings.home / "logs" / "demo-llama-server.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [str(tools.server), "-m", str(local), "--host", "127.0.0.1", "--port", str(port), "-c", "2048"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_until_ready(f"{url}/health", 120, proc)
            print(f"[demo 4/4] llama-server {tools.version} (llama-cpp-python sdist) serving {release.tag} on {url}")
            for question in QUESTIONS:
                answer, seconds = ask(url, question)
                print(f"    Q: {question}\n    A: {answer}   ({seconds:.1f} s)")
        except (NotReady, httpx.HTTPError) as exc:
            print(f"demo: {exc}; llama-server log: {log_path}", file=sys.stderr)
            return 1
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    print(
        "demo: the foundation works end to end (settings, bucket, verified fetch, llama.cpp serving).\n"
        "      collect/review, train and serve/QA gate are built and can be run one by one (README);\n"
        "      this demo becomes the whole loop once export (#5) and the flows (#7) land."
    )
    return 0
