"""From a tag to what a slot loads: an adapter release brings its base and all its LoRAs, in training order."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from prefloop_core.contracts import ExportMode, Quantization, Release
from prefloop_core.store import ArtifactNotFound, ArtifactStore, LocalBackend
from prefloop_core.toolchain import LlamaCpp
from prefloop_server.releases import materialize
from prefloop_server.settings import ServerSettings
from prefloop_core.contracts import SlotName
from prefloop_server.slots import Slot


def test_an_sft_dpo_adapter_release_is_served_as_base_plus_both_loras_in_order(tmp_path: Path) -> None:
    settings = ServerSettings(home=tmp_path / "home")
    store = ArtifactStore(LocalBackend(settings.bucket_dir))
    files = {
        name: tmp_path / name
        for name in ("model-F16.gguf", "model-Q4_K_M.gguf", "lora-2-adapter.gguf", "lora-1-sft_adapter.gguf")
    }
    for name, path in files.items():
        path.write_bytes(name.encode())
    now = datetime.now(timezone.utc)
    store.publish(
        Release(
            tag="tiny-base-q4_k_m",
            base_model="tiny",
            mode=ExportMode.BASE,
            created_at=now,
            quantizations=[Quantization.F16, Quantization.Q4_K_M],
        ),
        {n: p for n, p in files.items() if n.startswith("model-")},
    )
    store.publish(
        Release(
            tag="tiny-sft-dpo-20261123-1",
            base_model="tiny",
            mode=ExportMode.ADAPTER,
            created_at=now,
            base_release="tiny-base-q4_k_m",
            quantizations=[Quantization.Q4_K_M],
        ),
        {n: p for n, p in files.items() if n.startswith("lora-")},
    )
    store.publish(Release(tag="orphan", base_model="tiny", mode=ExportMode.ADAPTER, created_at=now), {})

    model = materialize(store, "tiny-sft-dpo-20261123-1", settings)
    assert model.gguf.name == "model-Q4_K_M.gguf"  # the quantized base, not its f16
    assert [p.name for p in model.loras] == ["lora-1-sft_adapter.gguf", "lora-2-adapter.gguf"]
    assert model.loras[0].read_bytes() == b"lora-1-sft_adapter.gguf"

    command = Slot(SlotName.BLUE, LlamaCpp(tmp_path), settings, tmp_path / "logs").command(model, 8123)
    assert [command[i + 1] for i, arg in enumerate(command) if arg == "--lora"] == [str(p) for p in model.loras]
    with pytest.raises(ArtifactNotFound, match="names no base release"):
        materialize(store, "orphan", settings)
