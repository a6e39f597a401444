"""Static checks of the Dockerfiles (no Docker engine here): what they copy exists, the entry point is real."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def dockerfiles() -> list[Path]:
    return sorted([*REPO.glob("services/*/Dockerfile"), REPO / "flows" / "Dockerfile"])


def test_every_copied_path_exists_and_the_entry_point_is_declared() -> None:
    assert dockerfiles(), "no Dockerfiles found"
    for dockerfile in dockerfiles():
        text = dockerfile.read_text()
        assert text.splitlines()[0].startswith("#") and re.search(r"^FROM \S+:\S+", text, re.M), dockerfile
        for source in re.findall(r"^COPY (?!--from)(\S+) ", text, re.M):
            assert (REPO / source).exists(), f"{dockerfile}: COPY {source} does not exist"
        entry = re.search(r'^ENTRYPOINT \["(prefloop-\w+)"\]', text, re.M)
        assert entry, dockerfile
        service = dockerfile.parent.name
        assert f'{entry.group(1)} = "prefloop_{service}.cli:main"' in (dockerfile.parent / "pyproject.toml").read_text()


def test_gpu_images_install_cuda_torch_not_the_cpu_pin() -> None:
    text = (REPO / "services/trainer/Dockerfile").read_text()
    assert "download.pytorch.org/whl/cu" in text and "grep -v '^torch=='" in text and "[cuda]" in text
