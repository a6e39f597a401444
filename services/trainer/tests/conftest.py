from __future__ import annotations

import os
from pathlib import Path

import pytest
from trainer_helpers import publish_dataset, synthetic_pairs

from prefloop_core.settings import Settings
from prefloop_core.store import ArtifactStore, LocalBackend
from prefloop_ml.testing import build_tiny_model


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("tiny-home")
    settings = Settings(home=home, llama_cpp_dir=Path(os.environ["PREFLOOP_LLAMA_CPP_DIR"]))
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model", settings)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def settings(home: Path) -> Settings:
    return Settings(home=home)


@pytest.fixture
def store(settings: Settings) -> ArtifactStore:
    return ArtifactStore(LocalBackend(settings.bucket_dir))


@pytest.fixture
def dataset(store: ArtifactStore) -> str:
    return publish_dataset(store, synthetic_pairs(16), "ds-synthetic000016")
