"""The heavy stages (trainer, exporter) as one-shot jobs, behind one interface with two implementations.

`ProcessJobRunner` runs `prefloop-<service>` from the service's own venv (the embedded default).
`DockerJobRunner` runs the service's image as a one-shot container through the docker SDK: the
trainer gets a GPU device request, logs stream into the flow's log as they come, the exit code
decides the task's state, and the container is removed afterwards whatever happened.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import yaml

from prefloop_core.children import die_with_parent
from prefloop_core.contracts import JobResult
from prefloop_core.settings import ENV_PREFIX
from prefloop_flows.settings import FlowsSettings, JobRunnerKind

Service = Literal["trainer", "exporter"]
Log = Callable[[str], None]


@dataclass(frozen=True)
class Job:
    service: Service
    args: list[str]
    config: Path | None = None  # the job's YAML config, a file on the flows' side (its args' --set win over it)


class JobConfigError(ValueError):
    pass


def config_as_overrides(path: Path) -> list[str]:
    """A job's YAML config as `--set section.field=value` arguments (each value as JSON, which is YAML): a job
    container cannot see a file of the flows' container or host."""
    try:
        tree = yaml.safe_load(path.read_text(encoding="utf-8-sig")) or {}
    except OSError as exc:
        raise JobConfigError(f"{path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise JobConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(tree, dict):
        raise JobConfigError(f"{path}: expected sections (model:, data:, training:, ...), got {type(tree).__name__}")
    overrides: list[str] = []

    def walk(key: str, node: Any) -> None:
        if isinstance(node, dict) and node:
            for name, child in node.items():
                walk(f"{key}.{name}" if key else str(name), child)
        else:
            overrides.extend(["--set", f"{key}={json.dumps(node)}"])

    walk("", tree)
    return overrides


def made_run(lines: list[str]) -> str:
    """The run a trainer job's `PREFLOOP_RESULT` line names (trained now, or published before from the same inputs)."""
    run_id = JobResult.last_in(lines).run_id
    if run_id is None:
        raise RuntimeError("the training job's result names no run")
    return run_id


def made_release(lines: list[str]) -> str:
    """The release tag an exporter job's `PREFLOOP_RESULT` line names."""
    tag = JobResult.last_in(lines).tag
    if tag is None:
        raise RuntimeError("the export job's result names no release")
    return tag


class JobFailed(RuntimeError):
    def __init__(self, job: Job, exit_code: int, tail: list[str]) -> None:
        super().__init__(f"prefloop-{job.service} {' '.join(job.args)} exited with code {exit_code}:\n" + "\n".join(tail))
        self.exit_code = exit_code
        self.tail = tail


class JobRunner(Protocol):
    def run(self, job: Job, log: Log) -> list[str]:
        """Run `job` to the end, each output line to `log`; returns the last lines; JobFailed on a non-zero exit."""
        ...


# Not for a job container: the flows' own settings (tokens among them) and this host's paths.
_NOT_FOR_CONTAINERS = (f"{ENV_PREFIX}FLOWS_", f"{ENV_PREFIX}VENVS_DIR", f"{ENV_PREFIX}LLAMA_CPP_DIR", f"{ENV_PREFIX}HOME")


def output_lines(chunks: Iterable[bytes]) -> Iterator[str]:
    """Output as lines; a progress bar that redraws itself with \r on one line gives its last drawing only."""
    pending = b""
    for chunk in chunks:
        *complete, pending = (pending + chunk).split(b"\n")
        for raw in complete:
            frames = [frame for frame in raw.decode(errors="replace").split("\r") if frame.strip()]
            if frames:
                yield frames[-1]
    if pending.strip():
        yield pending.decode(errors="replace").split("\r")[-1]


def container_environment() -> dict[str, str]:
    """What a job container needs to find the bucket: the shared PREFLOOP_* settings of this process."""
    return {k: v for k, v in os.environ.items() if k.startswith(ENV_PREFIX) and not k.startswith(_NOT_FOR_CONTAINERS)}


class ProcessJobRunner:
    def __init__(self, settings: FlowsSettings) -> None:
        if settings.venvs_dir is None:
            raise RuntimeError("PREFLOOP_VENVS_DIR is not set: run `make setup`, or use PREFLOOP_FLOWS_JOB_RUNNER=docker")
        self.venvs = settings.venvs_dir

    def run(self, job: Job, log: Log) -> list[str]:
        exe = self.venvs / job.service / "bin" / f"prefloop-{job.service}"
        tail: deque[str] = deque(maxlen=40)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        config = ["--config", str(job.config)] if job.config else []
        with subprocess.Popen(
            [str(exe), *job.args, *config],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            preexec_fn=die_with_parent(),
        ) as proc:
            assert proc.stdout is not None
            for line in output_lines(proc.stdout):
                tail.append(line)
                log(line)
        if proc.returncode != 0:
            raise JobFailed(job, proc.returncode, list(tail)[-15:])
        return list(tail)


class DockerJobRunner:
    """One-shot containers through the Docker socket (`docker.from_env()`: DOCKER_HOST or the local socket)."""

    def __init__(self, settings: FlowsSettings, client: Any = None) -> None:
        import docker

        self.settings = settings
        self.client = client or docker.from_env()

    def container_options(self, job: Job) -> dict[str, Any]:
        from docker.types import DeviceRequest

        s = self.settings
        options: dict[str, Any] = {
            "image": f"{s.flows_docker_image_prefix}{job.service}:{s.flows_docker_image_tag}",
            # The config's --set lines first: the job's own arguments (ids) win over them.
            "command": [*job.args[:1], *(config_as_overrides(job.config) if job.config else []), *job.args[1:]],
            "environment": {**container_environment(), "PYTHONUNBUFFERED": "1"},
            "detach": True,
            "labels": {"prefloop.job": job.service},
        }
        if s.flows_docker_network:
            options["network"] = s.flows_docker_network
        if s.flows_docker_data_volume:
            options["volumes"] = {s.flows_docker_data_volume: {"bind": "/data", "mode": "rw"}}
        if job.service == "trainer" and s.flows_docker_gpu:
            options["device_requests"] = [DeviceRequest(count=-1, capabilities=[["gpu"]])]
        return options

    def run(self, job: Job, log: Log) -> list[str]:
        container = self.client.containers.run(**self.container_options(job))
        tail: deque[str] = deque(maxlen=40)
        try:
            for line in output_lines(container.logs(stream=True, follow=True)):
                tail.append(line)
                log(line)
            exit_code = int(container.wait().get("StatusCode", 1))
        finally:
            container.remove(force=True)
        if exit_code != 0:
            raise JobFailed(job, exit_code, list(tail)[-15:])
        return list(tail)


def make_runner(settings: FlowsSettings) -> JobRunner:
    if settings.flows_job_runner is JobRunnerKind.DOCKER:
        return DockerJobRunner(settings)
    return ProcessJobRunner(settings)
