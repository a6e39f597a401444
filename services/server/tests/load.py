"""Concurrent clients against the router, half of them streaming, counting failed or truncated answers.

Used by the swap-under-load test and by benchmarks/server_bench.py.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field

import httpx


@dataclass
class LoadResult:
    ok: int = 0
    failed: list[str] = field(default_factory=list)
    models: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)


def one_request(client: httpx.Client, url: str, stream: bool, result: LoadResult) -> None:
    body = {
        "messages": [{"role": "user", "content": "Count from one to ten in words."}],
        "max_tokens": 24,
        "temperature": 0,
        "stream": stream,
    }
    try:
        if stream:
            done, pieces, model = False, 0, None
            with client.stream("POST", f"{url}/v1/chat/completions", json=body) as response:
                if response.status_code != 200:
                    raise RuntimeError(f"HTTP {response.status_code}")
                for line in response.iter_lines():
                    if line == "data: [DONE]":
                        done = True
                    elif line.startswith("data: "):
                        chunk = json.loads(line[6:])
                        model = chunk.get("model", model)
                        pieces += 1
            if not done or pieces == 0:
                raise RuntimeError(f"stream truncated after {pieces} chunks")
        else:
            response = client.post(f"{url}/v1/chat/completions", json=body)
            if response.status_code != 200:
                raise RuntimeError(f"HTTP {response.status_code}: {response.text[:200]}")
            data = response.json()
            if data["choices"][0]["finish_reason"] not in ("stop", "length"):
                raise RuntimeError(f"unfinished: {data['choices'][0]}")
            model = data.get("model")
        with result.lock:
            result.ok += 1
            if model:
                result.models.add(model)
    except Exception as exc:  # noqa: BLE001 - every failure is counted and shown
        with result.lock:
            result.failed.append(f"{'stream' if stream else 'plain'}: {type(exc).__name__}: {exc}")


def run_load(url: str, clients: int, stop: threading.Event) -> tuple[LoadResult, list[threading.Thread]]:
    result = LoadResult()

    def worker(index: int) -> None:
        with httpx.Client(timeout=120) as client:
            while not stop.is_set():
                one_request(client, url, stream=index % 2 == 0, result=result)

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    return result, threads


def wait_for_requests(result: LoadResult, at_least: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    target = result.ok + at_least
    while result.ok < target and time.monotonic() < deadline:
        time.sleep(0.05)
