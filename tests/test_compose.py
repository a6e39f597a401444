"""Static checks of compose.yaml and its overrides (`make test-compose` runs the stack for real): the compose
schema, build contexts, variables, exposure, what the CPU and S3 stand-in overrides change."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import jsonschema
import yaml

REPO = Path(__file__).resolve().parents[1]
PUBLIC = {"8090": "router", "8700": "review UI", "4200": "Prefect dashboard", "9001": "MinIO console"}
OVERRIDES = ("compose.cpu.yaml", "compose.s3-standin.yaml", "tests/compose/compose.test.yaml")


class ComposeLoader(yaml.SafeLoader):
    """YAML with Compose's `!reset` (an override's way to drop what compose.yaml set), read as {"!reset": value}."""


def _reset(loader: yaml.SafeLoader, node: yaml.Node) -> dict:
    if isinstance(node, yaml.SequenceNode):
        return {"!reset": loader.construct_sequence(node)}
    if isinstance(node, yaml.MappingNode):
        return {"!reset": loader.construct_mapping(node)}
    return {"!reset": None if node.value in ("", "null", "~") else loader.construct_scalar(node)}


ComposeLoader.add_constructor("!reset", _reset)


def compose(name: str = "compose.yaml") -> dict:
    return yaml.load((REPO / name).read_text(), Loader=ComposeLoader)  # noqa: S506 - a safe loader plus !reset


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
    standin = compose("compose.s3-standin.yaml")["services"]["minio"]["build"]
    assert (REPO / standin["context"] / standin["dockerfile"]).is_file()


def test_the_jobs_are_built_but_not_started_and_the_exporter_makes_the_base_release_before_the_server() -> None:
    services = compose()["services"]
    assert services["trainer"]["scale"] == 0  # `docker compose build` builds it; the flows run it
    assert services["exporter"]["command"][0] == "base-release"
    assert services["server"]["depends_on"]["exporter"]["condition"] == "service_completed_successfully"
    assert services["server"]["environment"]["PREFLOOP_SERVER_INITIAL_RELEASE"].endswith("-base-q4_k_m}")


def test_only_the_router_review_ui_dashboard_and_minio_console_are_published_and_on_loopback() -> None:
    published = {}
    for name, spec in compose()["services"].items():
        for port in spec.get("ports", []):
            match = re.fullmatch(r"127\.0\.0\.1:\$\{PREFLOOP_\w+_PORT:-(\d+)\}:(\d+)", port)
            assert match, f"{name} publishes {port} beyond loopback (or without a PREFLOOP_*_PORT to move it)"
            published[match.group(1)] = name
    assert set(published) == set(PUBLIC), published


def test_the_gpu_goes_to_the_server_and_the_flows_reach_docker() -> None:
    services = compose()["services"]
    devices = services["server"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["capabilities"] == ["gpu"]
    assert "/var/run/docker.sock:/var/run/docker.sock" in services["flows"]["volumes"]
    assert services["flows"]["environment"]["PREFLOOP_FLOWS_JOB_RUNNER"] == "docker"
    for name in ("minio", "prefect", "collector", "server", "flows"):
        assert "healthcheck" in services[name], name


def test_the_cpu_override_drops_the_gpu_and_builds_for_cpu_and_the_stand_in_replaces_minio() -> None:
    cpu = compose("compose.cpu.yaml")["services"]
    assert cpu["server"]["deploy"] == {"!reset": None}
    assert cpu["server"]["build"]["args"]["LLAMA_CPP_VARIANT"] == "cpu-portable"
    assert (
        cpu["server"]["build"]["args"]["BUILD_BASE"] == cpu["server"]["build"]["args"]["RUN_BASE"] == "python:3.11-slim-bookworm"
    )
    assert cpu["trainer"]["build"]["args"]["TORCH_VARIANT"] == cpu["exporter"]["build"]["args"]["TORCH_VARIANT"] == "cpu"
    assert cpu["trainer"]["build"]["args"]["EXTRAS"] == ""
    assert cpu["flows"]["environment"]["PREFLOOP_FLOWS_DOCKER_GPU"] == "false"
    standin = compose("compose.s3-standin.yaml")["services"]
    assert standin["minio"]["ports"] == {"!reset": []}  # no MinIO console to publish
    assert "create_bucket" in " ".join(standin["minio-init"]["entrypoint"])
    for name in OVERRIDES:
        assert set(compose(name)["services"]) <= set(compose()["services"]), f"{name} adds a service"


def test_every_variable_compose_reads_is_in_env_example_and_every_setting_there_is_documented() -> None:
    text = "".join((REPO / name).read_text() for name in ("compose.yaml", *OVERRIDES))
    used = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", text))
    example = dict(
        line.split("=", 1) for line in (REPO / ".env.example").read_text().splitlines() if line and not line.startswith("#")
    )
    assert used <= set(example), f"missing from .env.example: {sorted(used - set(example))}"
    docs = "".join((REPO / "docs" / name).read_text() for name in ("configuration.md", "containers.md"))
    for name in example:
        if name.startswith("PREFLOOP_") and name != "PREFLOOP_IMAGE_TAG":
            assert f"`{name}`" in docs, f"{name} is not a documented setting"
    assert "PREFLOOP_IMAGE_TAG" in docs
    volumes = set(compose()["volumes"])
    assert {"bucket", "prefect", "queue", "models", "hf-cache"} <= volumes
