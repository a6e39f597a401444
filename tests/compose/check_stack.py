"""`make test-compose`: the container stack end to end under a real Docker engine, as a user deploys it.

Builds every image, brings the stack up (compose.yaml with compose.cpu.yaml, the S3 stand-in and this folder's
compose.test.yaml), then drives the loop the way an operator does: the `collect` and `improve` flows through
Prefect's API (served by the flows container, whose trainer and exporter jobs run as one-shot containers), the
bundled reviewer answers through the collector's API, the router through the official `openai` client, a
rollback through Prefect, and a restart of the server container. Each stage prints its time; a failing stage
names the service and shows its last log lines. The stack is taken down with its volumes whatever happens.

    .venvs/flows/bin/python tests/compose/check_stack.py [--keep] [--no-build] [--gpu] [--minio]

On a GPU host, `--gpu --minio` checks the default stack instead: the CUDA images, the trainer's device
request honoured (its log must report cuda), and MinIO itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from prefloop_core.clients import CollectorClient, ServerAdminClient
from prefloop_core.net import free_port
from prefloop_flows.bundled import REVIEWER_ANSWERS, load_qa_set, load_reviewer_answers
from prefloop_flows.demo import apply_reviewer_answers

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "prefloop-stacktest"
SERVICES = ["minio", "prefect", "collector", "server", "flows"]
STAGES = 9
FLOW_TIMEOUT_S = 45 * 60


class StageFailed(RuntimeError):
    def __init__(self, message: str, service: str | None = None) -> None:
        super().__init__(message)
        self.service = service


class Stack:
    def __init__(self, env_file: Path, ports: dict[str, int], files: list[str]) -> None:
        self.env_file, self.ports, self.files = env_file, ports, files
        self.env = dict(line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line)
        self.stage_no = 0
        self.times: list[tuple[str, float]] = []

    def compose(self, *args: str, capture: bool = False, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = ["docker", "compose", "--project-name", PROJECT, "--env-file", str(self.env_file)]
        for name in self.files:
            command += ["-f", str(ROOT / name)]
        return subprocess.run(
            [*command, *args],
            cwd=ROOT,
            check=check,
            text=True,
            stdout=subprocess.PIPE if capture else None,
            stderr=subprocess.STDOUT if capture else None,
        )

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    @contextmanager
    def stage(self, title: str, service: str | None = None) -> Iterator[None]:
        self.stage_no += 1
        print(f"\n[compose {self.stage_no}/{STAGES}] {title}", flush=True)
        started = time.monotonic()
        try:
            yield
        except Exception as exc:
            culprit = exc.service if isinstance(exc, StageFailed) and exc.service else service
            print(
                f"[compose {self.stage_no}/{STAGES}] FAILED after {time.monotonic() - started:.0f} s"
                f"{f' in {culprit}' if culprit else ''}: {exc}",
                file=sys.stderr,
                flush=True,
            )
            for name in [culprit] if culprit else troubled(self):
                print(f"--- last log lines of {name} ---", file=sys.stderr, flush=True)
                self.compose("logs", "--no-color", "--tail", "40", name, check=False)
            raise
        took = time.monotonic() - started
        self.times.append((title, took))
        print(f"[compose {self.stage_no}/{STAGES}] done in {took:.0f} s", flush=True)


def write_env(folder: Path) -> tuple[Path, dict[str, int]]:
    """Fresh tokens and free loopback ports: nothing of a user's own `.env` or stack is touched."""
    reviewer = load_reviewer_answers(REVIEWER_ANSWERS[0]).reviewer
    tokens = {name: secrets.token_urlsafe(24) for name in ("flows", reviewer, "admin")}
    ports = {"router": free_port(), "review": free_port(), "prefect": free_port(), "console": free_port()}
    values = {
        "COMPOSE_PROJECT_NAME": PROJECT,
        "PREFLOOP_IMAGE_TAG": os.environ.get("PREFLOOP_IMAGE_TAG", "stacktest"),
        "PREFLOOP_S3_ACCESS_KEY": "stacktest",
        "PREFLOOP_S3_SECRET_KEY": secrets.token_urlsafe(24),
        "PREFLOOP_COLLECTOR_REVIEWERS": json.dumps({"flows": tokens["flows"], reviewer: tokens[reviewer]}),
        "PREFLOOP_FLOWS_COLLECTOR_TOKEN": tokens["flows"],
        "PREFLOOP_SERVER_ADMIN_TOKEN": tokens["admin"],
        "PREFLOOP_REVIEWER_TOKEN": tokens[reviewer],  # for this script only: compose does not read it
        "PREFLOOP_ROUTER_PORT": str(ports["router"]),
        "PREFLOOP_REVIEW_PORT": str(ports["review"]),
        "PREFLOOP_PREFECT_PORT": str(ports["prefect"]),
        "PREFLOOP_MINIO_CONSOLE_PORT": str(ports["console"]),
        "PREFECT_UI_API_URL": f"http://127.0.0.1:{ports['prefect']}/api",
    }
    env_file = folder / "stacktest.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    env_file.chmod(0o600)
    return env_file, ports


def containers(stack: Stack) -> list[dict[str, Any]]:
    out = stack.compose("ps", "--all", "--format", "json", capture=True, check=False).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip().startswith("{")]


def container_health(stack: Stack) -> dict[str, str]:
    return {row["Service"]: row.get("Health") or row.get("State", "") for row in containers(stack)}


def troubled(stack: Stack) -> list[str]:
    """The services to show the logs of: those unhealthy or exited with an error, else all long-running ones."""
    bad = [
        row["Service"]
        for row in containers(stack)
        if row.get("Health") in ("unhealthy", "starting") or (row.get("State") == "exited" and row.get("ExitCode"))
    ]
    return bad or SERVICES


def releases(stack: Stack) -> list[str]:
    """The releases in the bucket, as a container on the compose network reads them over S3."""
    out = stack.compose("run", "--rm", "--no-deps", "-T", "exporter", "releases", capture=True).stdout
    return [line.split(" | ")[1] for line in out.splitlines() if line[:4].isdigit() and " | " in line]


def run_flow(stack: Stack, name: str, parameters: dict[str, Any] | None = None) -> Any:
    """Start a deployment through Prefect's API and wait for its end, printing its state as it goes."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterParentFlowRunId,
        LogFilter,
        LogFilterFlowRunId,
    )
    from prefect.client.schemas.sorting import FlowRunSort
    from prefect.deployments import run_deployment

    flow_run = run_deployment(name, parameters=parameters or {}, timeout=0)
    print(f"  flow run {flow_run.name} ({flow_run.id}) of {name}", flush=True)

    async def follow() -> tuple[Any, list[str]]:
        async with get_client() as client:
            started, last, next_print = time.monotonic(), "", 0.0
            while True:
                run = await client.read_flow_run(flow_run.id)
                if run.state and run.state.is_final():
                    break
                state, now = (run.state.name if run.state else "?"), time.monotonic() - started
                if state != last or now >= next_print:
                    print(f"  {now:5.0f} s  {state}", flush=True)
                    last, next_print = state, now + 60
                if time.monotonic() - started > FLOW_TIMEOUT_S:
                    raise StageFailed(f"{name} did not finish within {FLOW_TIMEOUT_S / 60:.0f} min", "flows")
                await asyncio.sleep(5)
            # The run's own logs and its subflows' (train, export, evaluate-and-deploy are flow runs of their own).
            runs = [flow_run.id]
            children = FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[flow_run.id]))
            subflows = await client.read_flow_runs(flow_run_filter=children, limit=200, sort=FlowRunSort.ID_DESC)
            for child in reversed(subflows):
                flow_name = (await client.read_flow(child.flow_id)).name
                print(
                    f"  {flow_name:>20}  {child.total_run_time.total_seconds():5.0f} s  "
                    f"{child.state.name if child.state else '?'}",
                    flush=True,
                )
            runs += [child.id for child in subflows]
            messages: list[str] = []
            while page := await client.read_logs(
                LogFilter(flow_run_id=LogFilterFlowRunId(any_=runs)), limit=200, offset=len(messages)
            ):
                messages += [log.message for log in page]
            return run, messages

    run, logs = asyncio.run(follow())
    print(f"  ended {run.state.name}: {(run.state.message or '')[:300]}", flush=True)
    if not run.state.is_completed():
        raise StageFailed(f"{name} ended {run.state.name}: {run.state.message}\n" + "\n".join(logs[-15:]), "flows")
    return run, logs


def live_tag(stack: Stack) -> str:
    response = httpx.get(f"{stack.url('router')}/health", timeout=10)
    if response.status_code != 200:
        raise StageFailed(f"the router's /health answers {response.status_code}: {response.text}", "server")
    return response.json()["tag"]


def check(stack: Stack, build: bool, device: str) -> None:
    import docker
    import openai

    with stack.stage("build every image (layer cache)"):
        if build:
            stack.compose("build")
        else:
            print("  --no-build: using the images there")

    with stack.stage("up: the bucket, Prefect, the base release, the collector, the server, the flows"):
        stack.compose("up", "-d", "--wait", "--wait-timeout", "900")

    with stack.stage("every service healthy; the base release in the bucket over S3; served by the router"):
        health = container_health(stack)
        print(f"  {health}")
        unhealthy = [name for name in SERVICES if health.get(name) != "healthy"]
        if unhealthy:
            raise StageFailed(f"not healthy: {unhealthy}", unhealthy[0])
        for name in ("minio-init", "exporter"):
            if health.get(name) != "exited":
                raise StageFailed(f"the one-shot {name} is {health.get(name)!r}, not exited", name)
        httpx.get(f"{stack.url('review')}/health", timeout=10).raise_for_status()
        httpx.get(f"{stack.url('prefect')}/api/health", timeout=10).raise_for_status()
        base = live_tag(stack)
        if base not in releases(stack):
            raise StageFailed(f"the live {base} is not among the bucket's releases", "exporter")
        print(f"  live: {base}")

    qa_set = load_qa_set()
    collector = CollectorClient(stack.url("review"), stack.env["PREFLOOP_REVIEWER_TOKEN"])
    with stack.stage("the `collect` flow through Prefect's API: the live model's bad answers queued", "flows"):
        run_flow(stack, "collect/daily")
        pending = collector.items("pending")
        if not pending:
            raise StageFailed("collect queued nothing", "collector")
        print(f"  {len(pending)} answers queued for review")

    with stack.stage("the human step: the bundled reviewer answers through the collector's API", "collector"):
        saved = apply_reviewer_answers(collector, qa_set, REVIEWER_ANSWERS[0])
        print(f"  {saved} answers written")

    client = docker.from_env()
    with stack.stage("the `improve` flow through Prefect's API: train and export as one-shot containers, QA gate", "flows"):
        run, logs = run_flow(stack, "improve/on-demand")
        if not any(" step " in line and " loss " in line for line in logs):
            raise StageFailed("the trainer's output is not in the flow run's log", "flows")
        trained_on = next((line.strip() for line in logs if line.strip().startswith("device ")), "no device line")
        if f"({device})" not in trained_on:
            raise StageFailed(f"the trainer reports {trained_on!r}, not ({device})", "flows")
        print(f"  trainer: {trained_on}")
        leftovers = client.containers.list(all=True, filters={"label": "prefloop.job"})
        if leftovers:
            raise StageFailed(f"job containers were not removed: {[c.name for c in leftovers]}", "flows")
        new = [tag for tag in releases(stack) if tag != base]
        if len(new) != 1:
            raise StageFailed(f"expected one new release in the bucket, found {new}", "exporter")
        tag = new[0]
        print(f"  {tag} in the bucket; the gate: {run.state.name}")

    admin = ServerAdminClient(stack.url("router"), stack.env["PREFLOOP_SERVER_ADMIN_TOKEN"])
    with stack.stage("the new release, live, answers the official openai client through the router", "server"):
        if live_tag(stack) != tag:  # refused by the gate: a person's forced promotion puts it live
            print("  the gate kept the base model live: promoting by hand with --force (recorded with its reason)")
            admin.deploy(tag, "stacktest")
            admin.promote(tag, "stacktest", force_reason="the stack test serves the improve flow's release")
        router = openai.OpenAI(base_url=f"{stack.url('router')}/v1", api_key="unused")
        if [m.id for m in router.models.list().data] != [tag]:
            raise StageFailed(f"/v1/models does not list {tag}")
        reply = router.chat.completions.create(
            model=tag,
            messages=[{"role": "user", "content": "What is the capital of France? Answer in a few words."}],
            max_tokens=16,
            temperature=0,
        )
        text = reply.choices[0].message.content or ""
        if not text.strip():
            raise StageFailed("an empty answer from the router")
        print(f"  {tag} answers: {text.strip()!r}")

    with stack.stage("a rollback through Prefect's API", "flows"):
        run_flow(stack, "rollback/on-demand")
        if (now := live_tag(stack)) != base:
            raise StageFailed(f"after the rollback {now} is live, not {base}", "server")
        print(f"  live: {base}")

    with stack.stage("`docker compose restart server`: back with the live release from the history", "server"):
        stack.compose("restart", "server")
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                if live_tag(stack) == base:
                    break
            except (httpx.HTTPError, StageFailed):
                pass
            time.sleep(2)
        if (now := live_tag(stack)) != base:
            raise StageFailed(f"after the restart {now} is live, not {base}")
        last = admin.history()[-1]
        print(f"  live: {base}; the history's last entry: {last.action.value} {last.tag} ({last.note})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--keep",
        action="store_true",
        help="leave the stack up afterwards; its settings are written to "
        "out/stacktest.env (take it down with the command printed)",
    )
    parser.add_argument("--no-build", action="store_true", help="use the images already built")
    parser.add_argument("--gpu", action="store_true", help="the default (CUDA) stack: without compose.cpu.yaml")
    parser.add_argument("--minio", action="store_true", help="MinIO itself: without compose.s3-standin.yaml")
    ns = parser.parse_args()
    files = [
        "compose.yaml",
        *([] if ns.gpu else ["compose.cpu.yaml"]),
        *([] if ns.minio else ["compose.s3-standin.yaml"]),
        "tests/compose/compose.test.yaml",
    ]
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="prefloop-stacktest-") as folder:
        keep_in = ROOT / "out"
        keep_in.mkdir(exist_ok=True)
        env_file, ports = write_env(keep_in if ns.keep else Path(folder))
        stack = Stack(env_file, ports, files)
        # Before Prefect is first imported (its settings are read then): this script is a client of the stack's Prefect.
        os.environ["PREFECT_API_URL"] = f"{stack.url('prefect')}/api"
        ok = False
        try:
            check(stack, build=not ns.no_build, device="cuda" if ns.gpu else "cpu")
            ok = True
        except (StageFailed, subprocess.CalledProcessError, httpx.HTTPError) as exc:
            if not isinstance(exc, StageFailed):
                print(f"  {type(exc).__name__}: {exc}", file=sys.stderr)
        finally:
            if ns.keep:
                print(
                    f"\nthe stack is still up; to take it down: docker compose --project-name {PROJECT} "
                    f"--env-file {env_file} {' '.join(f'-f {name}' for name in files)} down -v"
                )
            else:
                print("\n[compose] down -v", flush=True)
                stack.compose("down", "-v", "--remove-orphans", capture=True, check=False)
        print("\n[compose] stage times: " + " · ".join(f"{title.split(':')[0]} {took:.0f} s" for title, took in stack.times))
        print(f"[compose] {'passed' if ok else 'FAILED'} in {(time.monotonic() - started) / 60:.1f} min")
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
