"""The `prefloop` command: every stage listed, handed to its service, clear errors otherwise."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from prefloop_core.cli import STAGES

PREFLOOP = str(Path(sys.executable).parent / "prefloop")
REQUIRED = {
    "collect",
    "status",
    "review",
    "import",
    "snapshot",
    "train",
    "export",
    "serve",
    "deploy",
    "promote",
    "rollback",
    "qa",
    "demo",
}


def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PREFLOOP_")}
    return subprocess.run([PREFLOOP, *args], capture_output=True, text=True, env={**clean, **env}, timeout=60)


def test_help_lists_every_stage_with_its_service() -> None:
    assert REQUIRED <= set(STAGES)
    result = run("--help")
    assert result.returncode == 0
    for stage, (service, _what) in STAGES.items():
        assert stage in result.stdout and f"[{service}]" in result.stdout


def test_a_stage_is_handed_to_its_service(tmp_path: Path) -> None:
    venvs = os.environ.get("PREFLOOP_VENVS_DIR")
    assert venvs, "make test sets PREFLOOP_VENVS_DIR"
    result = run("train", "--config", "x.yaml", PREFLOOP_VENVS_DIR=venvs)
    # The trainer's own command answered, in its own venv.
    assert result.returncode == 2 and "prefloop train: x.yaml: No such file or directory" in result.stderr, result.stderr
    exporter = run("export", PREFLOOP_VENVS_DIR=venvs)
    assert exporter.returncode == 2 and "prefloop export" in exporter.stderr  # its own usage: RUN_ID is required


def test_a_service_that_is_not_installed_is_named(tmp_path: Path) -> None:
    result = run("train", PREFLOOP_VENVS_DIR=str(tmp_path), PATH="/usr/bin:/bin")
    assert result.returncode == 2
    assert "the trainer service is not installed here" in result.stderr
    assert "make setup" in result.stderr


def test_an_unknown_stage_is_a_usage_error() -> None:
    result = run("fly")
    assert result.returncode == 2 and "invalid choice: 'fly'" in result.stderr


def test_bad_settings_stop_with_one_line_not_a_traceback() -> None:
    result = run("config", PREFLOOP_STORE_BACKEND="ftp")
    assert result.returncode == 2
    assert "PREFLOOP_STORE_BACKEND" in result.stderr and "Traceback" not in result.stderr


def test_config_prints_every_services_settings_without_secrets(tmp_path: Path) -> None:
    venvs = os.environ.get("PREFLOOP_VENVS_DIR")
    assert venvs, "make test sets PREFLOOP_VENVS_DIR"
    secrets = {"PREFLOOP_S3_SECRET_KEY": "hunter2", "PREFLOOP_COLLECTOR_ADMIN_TOKEN": "an-admin-token-of-length"}
    result = run("config", PREFLOOP_VENVS_DIR=venvs, PREFLOOP_STORE_BACKEND="local", **secrets)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    # Values as .env takes them: an enum's value, a secret hidden, and each service's own settings under its name.
    assert "PREFLOOP_STORE_BACKEND=local" in lines and "PREFLOOP_S3_SECRET_KEY=**********" in lines
    assert "PREFLOOP_COLLECTOR_ADMIN_TOKEN=**********" in lines and "PREFLOOP_COLLECTOR_REVIEWERS={}" in lines
    for service, prefix in (("collector", "PREFLOOP_COLLECTOR_"), ("server", "PREFLOOP_SERVER_"), ("flows", "PREFLOOP_FLOWS_")):
        start = lines.index(f"# {service}")
        assert lines[start + 1].startswith(prefix)
    assert not any(secret in result.stdout for secret in secrets.values())
    # A service's bad setting is named, the others still shown; without the services, config says so.
    bad = run("config", PREFLOOP_VENVS_DIR=venvs, PREFLOOP_SERVER_PORT="many")
    assert bad.returncode == 2 and "prefloop config: server: invalid settings:" in bad.stderr
    assert "PREFLOOP_SERVER_PORT" in bad.stderr and "# collector" in bad.stdout
    alone = run("config", PREFLOOP_VENVS_DIR=str(tmp_path), PATH="/usr/bin:/bin")
    assert alone.returncode == 0 and "# server: not installed here" in alone.stdout
    assert "docs/configuration.md" in run("config", "--help").stdout


def test_gc_lists_with_dry_run_and_removes_what_a_killed_publish_left(tmp_path: Path) -> None:
    bucket = tmp_path / "bucket"
    partial = bucket / "models" / "tiny-dpo-1" / "blobs" / ("0" * 64) / ".partial-0123-model.gguf"
    partial.parent.mkdir(parents=True)
    partial.write_bytes(b"x" * 2_000_000)
    os.utime(partial, (1, 1))  # long ago
    env = {"PREFLOOP_HOME": str(tmp_path / "home"), "PREFLOOP_STORE_DIR": str(bucket)}
    listed = run("gc", "--dry-run", **env)
    assert listed.returncode == 0 and "(an upload that never finished)" in listed.stdout
    assert "would remove 1 object(s), 2.0 MB" in listed.stdout and partial.exists()
    removed = run("gc", **env)
    assert removed.returncode == 0 and "removed 1 object(s), 2.0 MB" in removed.stdout and not partial.exists()
    bad = run("gc", "--older-than", "-1", **env)
    assert bad.returncode == 2 and "--older-than: give 0 or more hours" in bad.stderr
