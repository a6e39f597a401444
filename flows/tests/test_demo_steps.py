"""The demo's building blocks on their own."""

from __future__ import annotations

from pathlib import Path

from prefloop_core.contracts import Release
from prefloop_core.settings import load_settings
from prefloop_core.store import ArtifactStore, LocalBackend
from prefloop_core.toolchain import base_gguf
from prefloop_flows.demo import BASE_TAG, publish_base


def test_the_base_model_is_published_once_with_its_hash(tmp_path: Path) -> None:
    store = ArtifactStore(LocalBackend(tmp_path / "bucket"))
    gguf = base_gguf(load_settings())
    first = publish_base(store, gguf)
    second = publish_base(store, gguf)
    assert first == second == store.require(Release, BASE_TAG)
    assert first.files["model-Q4_1.gguf"].size == gguf.stat().st_size
