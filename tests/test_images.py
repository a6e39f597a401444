"""Static checks of the Dockerfiles (the images themselves are built and run by `make test-compose`): what they
copy exists, the entry point is real, the GPU defaults and the CPU build arguments, the shared llama.cpp stage."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# The bases infra/docker.sh can make where no registry answers; NVIDIA's CUDA images only as GPU defaults.
LOCAL_BASES = {"python:3.11-slim-bookworm", "debian:bookworm"}


def dockerfiles() -> list[Path]:
    return sorted([*REPO.glob("services/*/Dockerfile"), REPO / "flows" / "Dockerfile"])


def build_args(text: str) -> dict[str, str]:
    return {m.group(1): m.group(2).strip('"') for m in re.finditer(r"^ARG (\w+)=?(.*)$", text, re.M)}


def bases(text: str) -> list[str]:
    """Each stage's base with its build argument's default put in."""
    args = build_args(text)
    return [re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], m.group(1)) for m in re.finditer(r"^FROM (\S+)", text, re.M)]


def test_every_copied_path_exists_and_the_entry_point_is_declared() -> None:
    assert dockerfiles(), "no Dockerfiles found"
    for dockerfile in dockerfiles():
        text = dockerfile.read_text()
        assert text.splitlines()[0].startswith("#") and all(":" in base for base in bases(text)), dockerfile
        for source in re.findall(r"^COPY (?!--from)(\S+) ", text, re.M):
            assert (REPO / source).exists(), f"{dockerfile}: COPY {source} does not exist"
        entry = re.search(r'^ENTRYPOINT \["(prefloop-\w+)"\]', text, re.M)
        assert entry, dockerfile
        service = dockerfile.parent.name
        assert f'{entry.group(1)} = "prefloop_{service}.cli:main"' in (dockerfile.parent / "pyproject.toml").read_text()


def test_gpu_images_default_to_cuda_and_every_base_can_be_made_locally_for_the_cpu_stack() -> None:
    trainer = (REPO / "services/trainer/Dockerfile").read_text()
    args = build_args(trainer)
    assert args["TORCH_VARIANT"] == "cu128" and args["TORCH_INDEX_URL"].endswith("/whl/cu128") and args["EXTRAS"] == "cuda"
    assert bases(trainer) == ["nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04"]
    server = (REPO / "services/server/Dockerfile").read_text()
    assert build_args(server)["LLAMA_CPP_CMAKE_ARGS"] == "-DGGML_CUDA=ON" and all(
        b.startswith("nvidia/cuda:") for b in bases(server)
    )
    for dockerfile in dockerfiles():  # the CPU stack overrides exactly the CUDA bases
        for base in bases(dockerfile.read_text()):
            assert base in LOCAL_BASES or base.startswith("nvidia/cuda:"), f"{dockerfile}: FROM {base}"


def test_server_and_exporter_share_one_llama_cpp_stage_so_a_cpu_build_compiles_it_once() -> None:
    def llama_stage(path: str) -> list[str]:
        text = (REPO / path).read_text()
        stage = text[text.index(" AS llama\n") :].split("\nFROM ")[0]
        return [line for line in stage.splitlines()[1:] if line and not line.startswith(("#", "ARG "))]

    assert llama_stage("services/server/Dockerfile") == llama_stage("services/exporter/Dockerfile")
    assert build_args((REPO / "services/exporter/Dockerfile").read_text())["LLAMA_CPP_VARIANT"] == "cpu-portable"


def test_torch_comes_from_a_local_wheel_of_the_variant_or_the_index_and_the_pins_keep_their_torch_out() -> None:
    script = (REPO / "infra/wheels/install-torch.sh").read_text()
    assert 'torch-"$version"+"$TORCH_VARIANT"-*.whl' in script and '--index-url "$TORCH_INDEX_URL"' in script
    for name in ("trainer", "exporter"):
        text = (REPO / f"services/{name}/Dockerfile").read_text()
        assert "install-torch.sh constraints.txt" in text and "-c /tmp/constraints-without-torch.txt" in text, name
