"""Flow runs started through the API of a real local `prefect server`, served by `prefloop deployments`.

The flow run here is `train` against a real collector whose queue is empty: the collector's hard checks
refuse the snapshot, so the run ends in the named state `Refused` without training (no GPU, no minutes).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from prefloop_core.net import free_port, stop_process, wait_until_ready

BIN = Path(sys.executable).parent
TOKEN = "flows-test-token-0123456789"


def call(method: str, url: str, **kwargs: object) -> httpx.Response:
    """One API call, retried on 503 as Prefect's own client does: a server on SQLite answers 503 while its
    database is busy with its own background services, and the request can simply be sent again."""
    for attempt in range(8):
        response = httpx.request(method, url, **kwargs)  # type: ignore[arg-type]
        if response.status_code != 503:
            return response
        time.sleep(min(0.25 * 2**attempt, 4.0))
    return response


def start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Prefect server, a real collector, and the deployments process serving the flows."""
    root = tmp_path_factory.mktemp("prefect-api")
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "PREFLOOP_"))}
    prefect_env = {**base, "PREFECT_HOME": str(root / "prefect-server"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    port, collector_port = free_port(), free_port()
    url = f"http://127.0.0.1:{port}/api"
    collector_env = {**base, "PREFLOOP_HOME": str(root / "home"), "PREFLOOP_COLLECTOR_REVIEWERS": f'{{"flows": "{TOKEN}"}}'}
    collector_bin = os.environ["PREFLOOP_VENVS_DIR"] + "/collector/bin/prefloop-collector"
    flows_env = {
        **base,
        "PREFECT_API_URL": url,
        "PREFECT_HOME": str(root / "prefect-client"),
        "PREFECT_RUNNER_POLL_FREQUENCY": "1",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFLOOP_HOME": str(root / "home"),
        "PREFLOOP_FLOWS_COLLECTOR_URL": f"http://127.0.0.1:{collector_port}",
        "PREFLOOP_FLOWS_COLLECTOR_TOKEN": TOKEN,
    }
    procs: list[subprocess.Popen[bytes]] = []
    try:
        procs.append(
            server := start(
                [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                prefect_env,
                root / "prefect-server.log",
            )
        )
        procs.append(
            collector := start(
                [collector_bin, "review", "--web", "--host", "127.0.0.1", "--port", str(collector_port)],
                collector_env,
                root / "collector.log",
            )
        )
        wait_until_ready(f"{url}/health", 120, server)
        wait_until_ready(f"http://127.0.0.1:{collector_port}/health", 60, collector)
        procs.append(start([str(BIN / "prefloop-flows"), "deployments"], flows_env, root / "deployments.log"))
        deadline = time.monotonic() + 120
        while len(call("POST", f"{url}/deployments/filter", json={}).json()) < 6:
            assert time.monotonic() < deadline and procs[-1].poll() is None, (root / "deployments.log").read_text()[-2000:]
            time.sleep(0.5)
        yield url
    finally:
        for proc in reversed(procs):
            stop_process(proc)


def wait_for(url: str, flow_run_id: str) -> dict[str, object]:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        run = call("GET", f"{url}/flow_runs/{flow_run_id}").json()
        if run["state"]["type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
            return run
        time.sleep(0.5)
    raise AssertionError(f"flow run {flow_run_id} did not finish")


def test_the_daily_collect_deployment_carries_its_schedule(api: str) -> None:
    deployment = call("GET", f"{api}/deployments/name/collect/daily").json()
    assert [s["schedule"]["cron"] for s in deployment["schedules"]] == ["0 3 * * *"]
    names = {d["name"] for d in call("POST", f"{api}/deployments/filter", json={}).json()}
    assert names == {"daily", "on-demand"}


def test_a_flow_run_started_with_plain_http_ends_refused_with_the_reason(api: str) -> None:
    deployment = call("GET", f"{api}/deployments/name/train/on-demand").json()
    created = call("POST", f"{api}/deployments/{deployment['id']}/create_flow_run", json={})
    assert created.status_code == 201
    run = wait_for(api, created.json()["id"])
    assert run["state"]["type"] == "COMPLETED" and run["state"]["name"] == "Refused"
    # The check's own explanation reaches the state's message, not only its name.
    assert "the collector's hard checks failed: min_pairs: 0 pairs; at least" in run["state"]["message"], run["state"]
    assert "are needed (review more with `prefloop review`)" in run["state"]["message"]


def test_a_flow_run_started_with_the_prefect_client_ends_refused(api: str) -> None:
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: api}):
        flow_run = run_deployment("train/on-demand", timeout=180)
    assert flow_run.state is not None and flow_run.state.name == "Refused"
