"""Static checks of compose.yaml (no Docker engine here): the compose schema, build contexts, variables, exposure."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import jsonschema
import yaml

REPO = Path(__file__).resolve().parents[1]
PUBLIC = {"8090": "router", "8700": "review UI", "4200": "Prefect dashboard", "9001": "MinIO console"}


def compose() -> dict:
    return yaml.safe_load((REPO / "compose.yaml").read_text())


def test_compose_yaml_follows_the_compose_schema() -> None:
    # compose_spec.json as docker-compose 1.29.2 ships it; setup extracts it (COMPOSE_SPEC_SCHEMA in .venvs/env).
    schema = json.loads(Path(os.environ["COMPOSE_SPEC_SCHEMA"]).read_text())
    validator = jsonschema.Draft201909Validator(schema)
    errors = [f"{'/'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(compose())]
    assert not errors, "\n".join(errors)
    broken = compose()
    broken["services"]["collector"]["ports"] = "8700"
    assert list(validator.iter_errors(broken)), "the schema check must be able to fail"


def test_every_build_context_and_dockerfile_exists_and_every_stage_has_an_image() -> None:
    services = compose()["services"]
    built = {name: spec["build"] for name, spec in services.items() if "build" in spec}
    assert set(built) == {"collector", "server", "flows", "trainer", "exporter"}
    for name, build in built.items():
        assert (REPO / build["context"] / build["dockerfile"]).is_file(), name
        assert services[name]["image"].startswith(f"prefloop-{name}:"), name
    assert services["trainer"]["profiles"] == services["exporter"]["profiles"] == ["jobs"]  # run by the flows only


def test_only_the_router_review_ui_dashboard_and_minio_console_are_published_and_on_loopback() -> None:
    published = {}
    for name, spec in compose()["services"].items():
        for port in spec.get("ports", []):
            host, host_port, _container = port.split(":")
            assert host == "127.0.0.1", f"{name} publishes {port} beyond loopback"
            published[host_port] = name
    assert set(published) == set(PUBLIC), published


def test_the_gpu_goes_to_the_server_and_the_flows_reach_docker() -> None:
    services = compose()["services"]
    devices = services["server"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["capabilities"] == ["gpu"]
    assert "/var/run/docker.sock:/var/run/docker.sock" in services["flows"]["volumes"]
    assert services["flows"]["environment"]["PREFLOOP_FLOWS_JOB_RUNNER"] == "docker"
    for name in ("minio", "prefect", "collector", "server"):
        assert "healthcheck" in services[name], name


def test_every_variable_compose_reads_is_in_env_example_and_every_setting_there_is_documented() -> None:
    text = (REPO / "compose.yaml").read_text()
    used = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", text))
    example = dict(line.split("=", 1) for line in (REPO / ".env.example").read_text().splitlines()
                   if line and not line.startswith("#"))
    assert used <= set(example), f"missing from .env.example: {sorted(used - set(example))}"
    readme = (REPO / "README.md").read_text()
    for name in example:
        if name.startswith("PREFLOOP_") and name != "PREFLOOP_IMAGE_TAG":
            assert f"`{name}`" in readme, f"{name} is not a documented setting"
    assert "PREFLOOP_IMAGE_TAG" in readme
    volumes = set(compose()["volumes"])
    assert {"bucket", "prefect", "queue", "models", "hf-cache"} <= volumes
