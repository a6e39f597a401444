"""The live slot while a candidate is being gated, on CPU: OpenMP's wait policy in llama-server decides whether two
busy slots share the cores or fight over them.

llama-server (built with OpenMP, as ggml builds by default) spins at every barrier of every graph — hundreds per token —
before it sleeps. One busy slot loses nothing by it; two busy slots on the same cores (the live one serving, the
candidate answering the QA gate) preempt each other's spinning threads, and each barrier then waits out a scheduler
time slice. For each policy: a prefloop server with `good` live and `good-copy` deployed as the candidate; one client
asks the live model through the router (48 tokens), first alone, then while the candidate answers gate-like requests
one at a time straight on its port (a 180-token prompt, 64 tokens, no prompt cache). Interleaved rounds, medians.

    .venvs/server/bin/python benchmarks/slot_contention.py [--requests 8] [--rounds 2] [--out FILE]
        [--gguf FILE --label "what it is"]   (another model than SmolLM2-135M-Instruct Q4_1)
"""

from __future__ import annotations

import argparse
import os
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
from report import emit  # noqa: E402  (the script's folder is on sys.path)
from server_bench import story_requests  # noqa: E402
from server_helpers import build_bucket, slot_env, slot_headers, start_server, stop_server  # noqa: E402

POLICIES = {  # name -> environment of the prefloop server (PREFLOOP_OMP_WAIT_POLICY), which its slots inherit
    "spin (llama.cpp's default)": {"PREFLOOP_OMP_WAIT_POLICY": "default"},
    "GOMP_SPINCOUNT=1000": {"PREFLOOP_OMP_WAIT_POLICY": "default", "GOMP_SPINCOUNT": "1000"},
    "GOMP_SPINCOUNT=100": {"PREFLOOP_OMP_WAIT_POLICY": "default", "GOMP_SPINCOUNT": "100"},
    "passive (prefloop's default)": {"PREFLOOP_OMP_WAIT_POLICY": "passive"},
}
CONTEXT = " ".join(
    [
        "Steve mines iron ore with a stone pickaxe, smelts it in a furnace with coal, and crafts an iron "
        "pickaxe from three ingots and two sticks."
    ]
    * 6
)


def candidate_load(url: str, stop: threading.Event, tokens: list[int]) -> None:
    """Gate-like requests on the candidate slot, one at a time, until `stop`."""
    with httpx.Client(timeout=600, headers=slot_headers()) as client:
        i = 0
        while not stop.is_set():
            r = client.post(
                f"{url}/completion",
                json={
                    "prompt": f"Context: {CONTEXT}\nQuestion {i}: how is an iron pickaxe made?\nAnswer:",
                    "n_predict": 64,
                    "temperature": 0,
                    "cache_prompt": False,
                    "ignore_eos": True,
                },
            )
            r.raise_for_status()
            tokens.append(r.json()["tokens_predicted"])
            i += 1


def measure(root: Path, paths: dict[str, Path], env: dict[str, str], n: int) -> dict[str, float]:
    server = start_server(root / "home", paths["bucket"], paths["template"], env={**env, **slot_env()})
    try:
        admin = server.admin()
        for step, body in (("deploy", {"tag": "good"}), ("promote", {}), ("deploy", {"tag": "good-copy"})):
            admin.post(f"/admin/{step}", json=body).raise_for_status()
        candidate = next(s for s in admin.get("/admin/status").json()["slots"] if s["tag"] == "good-copy")
        story_requests(server.url, [], n=1)  # warm
        alone: list[tuple[float, float]] = []
        story_requests(server.url, alone, n=n)
        stop, tokens = threading.Event(), []
        loader = threading.Thread(target=candidate_load, args=(f"http://127.0.0.1:{candidate['port']}", stop, tokens))
        started = time.perf_counter()
        loader.start()
        busy: list[tuple[float, float]] = []
        story_requests(server.url, busy, n=n)
        stop.set()
        loader.join()
        elapsed = time.perf_counter() - started
    finally:
        stop_server(server)
    return {
        "alone_latency": statistics.median(x[0] for x in alone),
        "alone_tps": statistics.median(x[1] for x in alone),
        "busy_latency": statistics.median(x[0] for x in busy),
        "busy_tps": statistics.median(x[1] for x in busy),
        "candidate_tps": sum(tokens) / elapsed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=8, help="live requests per phase (default 8)")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds over the policies (default 2)")
    parser.add_argument("--gguf", type=Path, help="serve this GGUF instead of SmolLM2-135M-Instruct Q4_1")
    parser.add_argument("--label", default="SmolLM2-135M-Instruct Q4_1", help="the model, for the report")
    parser.add_argument("--out", type=Path)
    ns = parser.parse_args()
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in POLICIES}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        paths = build_bucket(root, ns.gguf)
        for round_ in range(ns.rounds):
            for i, (name, env) in enumerate(POLICIES.items()):
                runs[name].append(measure(root / f"round{round_}-policy{i}", paths, env, ns.requests))
                print(f"round {round_ + 1}: {name}: {runs[name][-1]}", file=sys.stderr, flush=True)

    def med(name: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[name])

    spin = next(iter(POLICIES))
    lines = [
        f"machine: {platform.node()} · {platform.machine()} · {os.cpu_count()} cores · "
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC · {ns.label}, llama.cpp 0.3.36 CPU, "
        f"llama-server's default threads · {ns.rounds} rounds x {ns.requests} live requests (medians)",
        "",
        "| llama-server wait policy | live alone: latency s | tok/s | live while the candidate is busy: latency s "
        "| tok/s | candidate tok/s meanwhile | live tok/s alone vs spin | live tok/s busy vs spin |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name in POLICIES:
        lines.append(
            f"| {name} | {med(name, 'alone_latency'):.2f} | {med(name, 'alone_tps'):.1f} | "
            f"{med(name, 'busy_latency'):.2f} | {med(name, 'busy_tps'):.1f} | {med(name, 'candidate_tps'):.1f} | "
            f"{med(name, 'alone_tps') / med(spin, 'alone_tps'):.2f}x | "
            f"{med(name, 'busy_tps') / med(spin, 'busy_tps'):.2f}x |"
        )
    emit(lines, ns.out)


if __name__ == "__main__":
    main()
