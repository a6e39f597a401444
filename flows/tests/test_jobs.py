"""The job runners: local processes for real; the docker path through the docker SDK's own request layer against
a stand-in for the Engine API on loopback (there is no Docker engine here), so what reaches the engine is checked:
image, command, environment, GPU device request, network, volume, log streaming, exit code, removal."""

from __future__ import annotations

import json
import os
import struct
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from prefloop_core.net import free_port
from prefloop_flows.jobs import DockerJobRunner, Job, JobFailed, ProcessJobRunner, output_lines
from prefloop_flows.settings import FlowsSettings


def test_progress_bars_redrawn_with_carriage_returns_give_their_last_frame_only() -> None:
    chunks = [b"step 1/3 loss 0.69\nTrain:  10%|#", b"    | 1/10\r", b"Train: 100%|##| 10/10\r\n", b"done\nno newline"]
    assert list(output_lines(chunks)) == ["step 1/3 loss 0.69", "Train: 100%|##| 10/10", "done", "no newline"]


def test_a_local_job_streams_its_output_and_a_failing_one_raises_with_its_exit_code_and_tail(tmp_path: Path) -> None:
    settings = FlowsSettings(home=tmp_path, venvs_dir=Path(os.environ["PREFLOOP_VENVS_DIR"]))
    seen: list[str] = []
    lines = ProcessJobRunner(settings).run(Job("exporter", ["releases"]), seen.append)
    assert seen == lines and lines[0].startswith("date ")
    with pytest.raises(JobFailed) as failed:
        ProcessJobRunner(settings).run(Job("exporter", ["export", "run-20261123-000000-none"]), seen.append)
    assert failed.value.exit_code == 1 and "runs/run-20261123-000000-none is not published" in str(failed.value)


class FakeEngine(BaseHTTPRequestHandler):
    """Enough of the Docker Engine API (v1.41) for one `containers.run(detach=True)`, its logs, wait and remove."""

    calls: list[tuple[str, str, Any]] = []
    exit_code = 0
    frames = [b"Loading weights\n", b"Train:  50%|#  | 1/2\rTrain: 100%|###| 2/2\n", b"run-20261123-120000-ab12\n"]

    def _reply(self, status: int, body: Any = None, content_type: str = "application/json") -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode() if body is not None else b""
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _record(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        self.calls.append((self.command, self.path.split("?")[0], body))

    def do_POST(self) -> None:  # noqa: N802 - the http.server API
        self._record()
        path = self.path.split("?")[0]
        if path.endswith("/containers/create"):
            self._reply(201, {"Id": "c0ffee", "Warnings": []})
        elif path.endswith("/start"):
            self._reply(204)
        elif path.endswith("/wait"):
            self._reply(200, {"StatusCode": self.exit_code})
        else:
            self._reply(404, {"message": f"no {path}"})

    def do_GET(self) -> None:  # noqa: N802
        self._record()
        path = self.path.split("?")[0]
        if path.endswith("/json"):
            self._reply(200, {"Id": "c0ffee", "Name": "/job", "Config": {"Tty": False}, "State": {"Running": True}})
        elif path.endswith("/logs"):  # the multiplexed stream of a container without a TTY: 8-byte header per frame
            stream = b"".join(struct.pack(">BxxxL", 1, len(f)) + f for f in self.frames)
            self._reply(200, stream, "application/vnd.docker.raw-stream")
        else:
            self._reply(404, {"message": f"no {path}"})

    def do_DELETE(self) -> None:  # noqa: N802
        self._record()
        self._reply(204)

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def engine() -> Iterator[str]:
    FakeEngine.calls, FakeEngine.exit_code = [], 0
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), FakeEngine)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"tcp://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_the_docker_runner_sends_image_command_gpu_network_volume_and_removes_the_container(
    engine: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import docker

    monkeypatch.setenv("PREFLOOP_S3_ENDPOINT", "http://minio:9000")
    monkeypatch.setenv("PREFLOOP_FLOWS_SERVER_TOKEN", "never-into-a-job")
    settings = FlowsSettings(
        home=tmp_path,
        flows_docker_network="prefloop_default",
        flows_docker_data_volume="hf-cache",
        flows_docker_image_tag="0.1.0",
    )
    runner = DockerJobRunner(settings, client=docker.DockerClient(base_url=engine, version="1.41"))
    seen: list[str] = []
    # The trainer config is a file on the flows' side: it travels as --set lines, before the job's own (which win).
    config = tmp_path / "trainer.yaml"
    config.write_text("training:\n  max_steps: 8\n  learning_rate: 1.0e-4\nlora:\n  target_modules: [q_proj, v_proj]\n")
    lines = runner.run(Job("trainer", ["train", "--set", "run_id=run-20261123-120000-ab12"], config=config), seen.append)

    assert seen == lines == ["Loading weights", "Train: 100%|###| 2/2", "run-20261123-120000-ab12"]
    created = next(body for method, path, body in FakeEngine.calls if path.endswith("/containers/create"))
    assert created["Image"] == "prefloop-trainer:0.1.0"
    assert created["Cmd"] == [
        "train",
        "--set",
        "training.max_steps=8",
        "--set",
        "training.learning_rate=0.0001",
        "--set",
        'lora.target_modules=["q_proj", "v_proj"]',
        "--set",
        "run_id=run-20261123-120000-ab12",
    ]
    assert "PREFLOOP_S3_ENDPOINT=http://minio:9000" in created["Env"] and not any("FLOWS_" in e for e in created["Env"])
    host = created["HostConfig"]
    assert host["DeviceRequests"] == [{"Driver": "", "Count": -1, "DeviceIDs": [], "Capabilities": [["gpu"]], "Options": {}}]
    assert host["NetworkMode"] == "prefloop_default" and host["Binds"] == ["hf-cache:/data:rw"]
    assert [m for m, p, _ in FakeEngine.calls if p.endswith("/c0ffee")] == ["DELETE"]


def test_a_failing_container_is_a_failed_job_and_is_still_removed(engine: str, tmp_path: Path) -> None:
    import docker

    FakeEngine.exit_code = 3
    runner = DockerJobRunner(FlowsSettings(home=tmp_path), client=docker.DockerClient(base_url=engine, version="1.41"))
    with pytest.raises(JobFailed) as failed:
        runner.run(Job("exporter", ["export", "run-20261123-120000-ab12"]), lambda _: None)
    assert failed.value.exit_code == 3 and "run-20261123-120000-ab12" in failed.value.tail[-1]
    created = next(body for method, path, body in FakeEngine.calls if path.endswith("/containers/create"))
    assert "DeviceRequests" not in created["HostConfig"] or not created["HostConfig"]["DeviceRequests"]  # no GPU for export
    assert [m for m, p, _ in FakeEngine.calls if p.endswith("/c0ffee")] == ["DELETE"]


def test_a_job_config_that_is_not_yaml_sections_is_named_with_its_file(tmp_path: Path) -> None:
    from prefloop_flows.jobs import JobConfigError, config_as_overrides

    bad = tmp_path / "trainer.yaml"
    bad.write_text("training: [unclosed\n")
    with pytest.raises(JobConfigError, match=r"trainer\.yaml: not valid YAML"):
        config_as_overrides(bad)
    bad.write_text("- a list\n")
    with pytest.raises(JobConfigError, match="expected sections"):
        config_as_overrides(bad)
