from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from prefloop_core.settings import Settings
from prefloop_core.store import ArtifactStore, LocalBackend


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home", llama_cpp_dir=Path(os.environ["PREFLOOP_LLAMA_CPP_DIR"]))


@pytest.fixture
def store(settings: Settings) -> ArtifactStore:
    return ArtifactStore(LocalBackend(settings.bucket_dir))


@pytest.fixture(scope="session")
def tiny_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from prefloop_ml.testing import build_tiny_model

    settings = Settings(home=tmp_path_factory.mktemp("tiny-home"))
    return build_tiny_model(tmp_path_factory.mktemp("tiny-template") / "tiny", settings)


@pytest.fixture
def tiny(tiny_template: Path, tmp_path: Path) -> Path:
    """A fresh copy of the tiny model (built once per session: its tokenizer comes out of a GGUF slowly)."""
    return Path(shutil.copytree(tiny_template, tmp_path / "tiny"))
