"""Settings: PREFLOOP_* variables, validated at start with one readable line per bad value."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from prefloop_core.openmp import use_wait_policy
from prefloop_core.settings import Settings, SettingsError, StoreBackend, load_settings, settings_markdown
from prefloop_core.store import LocalBackend, S3Backend, open_store

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(__import__("os").environ):
        if name.startswith("PREFLOOP_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no stray .env


def test_defaults_are_the_embedded_local_setup(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PREFLOOP_HOME", str(tmp_path / "home"))
    settings = load_settings()
    assert settings.store_backend is StoreBackend.LOCAL
    assert settings.bucket_dir == tmp_path / "home" / "bucket"
    assert isinstance(open_store(settings).backend, LocalBackend)


def test_a_bad_value_names_the_variable_and_the_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFLOOP_STORE_BACKEND", "ftp")
    monkeypatch.setenv("PREFLOOP_S3_RETRIES", "many")
    with pytest.raises(SettingsError) as info:
        load_settings()
    message = str(info.value)
    assert "PREFLOOP_STORE_BACKEND: Input should be 'local' or 's3' (got 'ftp')" in message
    assert "PREFLOOP_S3_RETRIES: Input should be a valid integer" in message
    assert "Traceback" not in message


def test_s3_needs_its_endpoint_and_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFLOOP_STORE_BACKEND", "s3")
    with pytest.raises(SettingsError, match="needs PREFLOOP_S3_ENDPOINT, PREFLOOP_S3_ACCESS_KEY, PREFLOOP_S3_SECRET_KEY"):
        load_settings()
    monkeypatch.setenv("PREFLOOP_S3_ENDPOINT", "minio:9000")
    monkeypatch.setenv("PREFLOOP_S3_ACCESS_KEY", "k")
    monkeypatch.setenv("PREFLOOP_S3_SECRET_KEY", "very-secret")
    with pytest.raises(SettingsError, match="must look like http://host:port"):
        load_settings()
    monkeypatch.setenv("PREFLOOP_S3_ENDPOINT", "http://minio:9000")
    settings = load_settings()
    assert isinstance(open_store(settings).backend, S3Backend)
    assert "very-secret" not in repr(settings)


def test_a_dotenv_file_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("PREFLOOP_S3_BUCKET=from-dotenv\n")
    assert load_settings().s3_bucket == "from-dotenv"


def test_the_configuration_page_documents_every_setting() -> None:
    readme = (REPO / "docs" / "configuration.md").read_text()
    assert settings_markdown() in readme, "docs/configuration.md is stale: run `make docs`"
    for name in Settings.model_fields:
        assert f"PREFLOOP_{name.upper()}" in readme


def test_the_openmp_wait_policy_is_passive_unless_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PREFLOOP_OMP_WAIT_POLICY", raising=False)
    monkeypatch.setenv("OMP_WAIT_POLICY", "active")  # what the process was started with
    use_wait_policy(load_settings().omp_wait_policy)
    assert os.environ["OMP_WAIT_POLICY"] == "passive"
    monkeypatch.setenv("PREFLOOP_OMP_WAIT_POLICY", "default")
    monkeypatch.setenv("OMP_WAIT_POLICY", "active")
    use_wait_policy(load_settings().omp_wait_policy)
    assert os.environ["OMP_WAIT_POLICY"] == "active"  # default: left as OpenMP would read it
    monkeypatch.setenv("PREFLOOP_OMP_WAIT_POLICY", "sometimes")
    with pytest.raises(SettingsError, match="PREFLOOP_OMP_WAIT_POLICY"):
        load_settings()
