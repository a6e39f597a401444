"""`smollm2` names whatever base PREFLOOP_BASE_GGUF points at: a run records its file's digest, and an adapter is
not continued or exported over another file."""

from __future__ import annotations

from pathlib import Path

from prefloop_core.settings import Settings
from prefloop_ml.base_model import base_digest, base_mismatch, base_title


def test_an_adapter_fits_only_the_gguf_it_was_trained_on(tmp_path: Path) -> None:
    first, second = tmp_path / "gemma-3-270m.gguf", tmp_path / "other.gguf"
    first.write_bytes(b"GGUF one model")
    second.write_bytes(b"GGUF another model")
    settings = Settings(home=tmp_path / "home", base_gguf=first)
    digest = base_digest("smollm2", settings)
    assert digest is not None and len(digest) == 16
    assert base_title("smollm2", settings) == "gemma-3-270m.gguf (PREFLOOP_BASE_GGUF)"
    assert base_mismatch("run-a", "smollm2", digest, settings) is None
    assert base_mismatch("run-old", "smollm2", None, settings) is None  # recorded before digests: cannot be told

    moved = Settings(home=tmp_path / "home", base_gguf=second)
    problem = base_mismatch("run-a", "smollm2", digest, moved)
    assert problem == (
        f"run run-a was trained on a base GGUF with sha256 {digest}..., but other.gguf (PREFLOOP_BASE_GGUF) "
        f"is now {base_digest('smollm2', moved)}...: its adapter fits only the model it trained on; point "
        "PREFLOOP_BASE_GGUF (or model.base) back at that file"
    )


def test_an_hf_folder_has_no_digest_and_keeps_its_name(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    assert base_digest(str(tmp_path), settings) is None
    assert base_title("HuggingFaceTB/SmolLM2-135M-Instruct", settings) == "HuggingFaceTB/SmolLM2-135M-Instruct"
