"""`prefloop ensemble`: adapter releases over one base become an ensemble release; anything else is refused, by name."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

from prefloop_core.contracts import EnsembleRule, ExportMode, Quantization, Release
from prefloop_core.settings import Settings
from prefloop_core.store import ArtifactStore
from prefloop_exporter.ensemble import make_ensemble
from prefloop_exporter.export import ExportError


def publish(store: ArtifactStore, tmp_path: Path, tag: str, mode: ExportMode, base_release: str | None) -> None:
    data = tmp_path / f"{tag}.gguf"
    data.write_bytes(tag.encode())
    release = Release(
        tag=tag,
        base_model="/models/tiny",
        mode=mode,
        base_release=base_release,
        quantizations=[Quantization.Q4_K_M],
        created_at=datetime.now(timezone.utc),
    )
    store.publish(release, {"lora-1-adapter.gguf" if mode is ExportMode.ADAPTER else "model-Q4_K_M.gguf": data})


@pytest.fixture
def releases(store: ArtifactStore, tmp_path: Path) -> ArtifactStore:
    publish(store, tmp_path, "tiny-base-q4_k_m", ExportMode.BASE, None)
    for tag in ("tiny-dpo-20261206-1", "tiny-dpo-20261206-2", "tiny-dpo-20261206-3"):
        publish(store, tmp_path, tag, ExportMode.ADAPTER, "tiny-base-q4_k_m")
    publish(store, tmp_path, "tiny-dpo-20261206-4", ExportMode.MERGED, None)
    publish(store, tmp_path, "other-dpo-20261206-1", ExportMode.ADAPTER, "other-base-q4_k_m")
    return store


def test_adapters_over_one_base_make_an_ensemble_release(releases: ArtifactStore, settings: Settings) -> None:
    members = ["tiny-dpo-20261206-2", "tiny-dpo-20261206-1"]
    first = make_ensemble(releases, members, EnsembleRule.CONSENSUS, settings)
    assert first.tag == f"tiny-ensemble-{first.created_at:%Y%m%d}-1"
    assert (first.mode, first.members, first.rule, first.base_release) == (
        ExportMode.ENSEMBLE,
        members,
        EnsembleRule.CONSENSUS,
        "tiny-base-q4_k_m",
    )
    assert first.files == {} and releases.require(Release, first.tag) == first
    second = make_ensemble(releases, [*members, "tiny-dpo-20261206-3"], EnsembleRule.JUDGE, settings)
    assert second.tag.endswith("-2") and second.rule is EnsembleRule.JUDGE


@pytest.mark.parametrize(
    ("members", "reason"),
    [
        (["tiny-dpo-20261206-1"], "an ensemble has 2 to 8 members, not 1"),
        (["tiny-dpo-20261206-1", "tiny-dpo-20261206-1"], "a member is named twice: tiny-dpo-20261206-1"),
        (["tiny-dpo-20261206-1", "nope"], "no release nope (`prefloop releases` lists them)"),
        (["tiny-dpo-20261206-1", "../tiny-dpo-20261206-2"], "member '../tiny-dpo-20261206-2' is not a valid id: use 1-128"),
        (["tiny-dpo-20261206-1", "tiny-dpo-20261206-4"], "tiny-dpo-20261206-4 is a merged release: ensemble members are"),
        (
            ["tiny-dpo-20261206-1", "other-dpo-20261206-1"],
            "the members are over different bases (tiny-dpo-20261206-1 over tiny-base-q4_k_m, other-dpo-20261206-1 over",
        ),
    ],
)
def test_anything_but_adapters_over_one_base_is_refused_by_name(
    releases: ArtifactStore, settings: Settings, members: list[str], reason: str
) -> None:
    with pytest.raises(ExportError) as refused:
        make_ensemble(releases, members, EnsembleRule.CONSENSUS, settings)
    assert str(refused.value).startswith(reason)


def test_the_command_line_prints_the_tag_lists_the_members_and_explains_errors(
    releases: ArtifactStore, settings: Settings
) -> None:
    exe = str(Path(sys.executable).parent / "prefloop-exporter")
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("PREFLOOP_")}, "PREFLOOP_HOME": str(settings.home)}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([exe, *args], capture_output=True, text=True, env=env, timeout=120)

    made = cli("ensemble", "tiny-dpo-20261206-1", "tiny-dpo-20261206-2", "--rule", "judge")
    assert made.returncode == 0, made.stderr
    tag = made.stdout.strip().splitlines()[-1]
    assert tag.startswith("tiny-ensemble-")
    assert (
        f"| {tag} | ensemble | Q4_K_M | - | tiny-dpo-20261206-1 + tiny-dpo-20261206-2 | tiny-base-q4_k_m"
        in cli("releases").stdout
    )
    refused = cli("ensemble", "tiny-dpo-20261206-1", "tiny-dpo-20261206-4")
    assert refused.returncode == 1 and refused.stderr.startswith("prefloop ensemble: tiny-dpo-20261206-4 is a merged release")
    assert "minimum Bayes risk" in cli("ensemble", "--help").stdout
