"""From a release tag to files a slot can load: fetched from the bucket, sha256 verified."""

from __future__ import annotations

from pathlib import Path

from prefloop_core.contracts import EnsembleRule, ExportMode, Quantization, Release
from prefloop_core.ids import check_safe_id
from prefloop_core.store import ArtifactNotFound, ArtifactStore
from prefloop_server.settings import ServerSettings
from prefloop_server.slots import Member, Model


class NotServable(ValueError):
    """The release exists but this server cannot serve it as it is set up; the message says what to do."""


# When a release holds several quantizations, serve the first of these it has.
PREFERENCE = [Quantization.Q4_K_M, Quantization.Q5_K_M, Quantization.Q6_K, Quantization.Q8_0, Quantization.Q4_1, Quantization.F16]


def _gguf_name(release: Release) -> str:
    ggufs = [name for name in release.files if name.endswith(".gguf") and not name.startswith("lora")]
    for quant in PREFERENCE:
        for name in ggufs:
            if quant.value in name:
                return name
    if not ggufs:
        raise ArtifactNotFound(f"release {release.tag} has no model GGUF")
    return sorted(ggufs)[0]


def materialize(store: ArtifactStore, tag: str, settings: ServerSettings) -> Model:
    """Fetch what serving `tag` needs into the models folder; an adapter release brings its base."""
    release = store.require(Release, check_safe_id(tag))
    folder = settings.models_dir / release.tag
    if release.mode is ExportMode.ENSEMBLE:
        return _ensemble(store, release, settings)
    if release.mode is ExportMode.ADAPTER:
        if release.base_release is None:
            raise ArtifactNotFound(f"adapter release {release.tag} names no base release")
        base = materialize(store, release.base_release, settings)
        lora_names = sorted(n for n in release.files if n.endswith(".gguf"))  # lora-1-sft.gguf before lora-2-dpo.gguf
        if not lora_names:
            raise ArtifactNotFound(f"adapter release {release.tag} has no LoRA GGUF")
        fetched = store.fetch(release, folder, lora_names)
        return Model(tag=release.tag, gguf=base.gguf, loras=tuple(fetched[n] for n in lora_names))
    name = _gguf_name(release)
    return Model(tag=release.tag, gguf=store.fetch(release, folder, [name])[name])


def _ensemble(store: ArtifactStore, release: Release, settings: ServerSettings) -> Model:
    """Every member's LoRAs over their common base, none applied; each member knows which of them are its own."""
    if release.rule is EnsembleRule.JUDGE and not settings.server_ensemble_judge_url:
        raise NotServable(f"{release.tag} picks answers with a judge: set PREFLOOP_SERVER_ENSEMBLE_JUDGE_URL (and _MODEL)")
    members = [materialize(store, tag, settings) for tag in release.members]
    for member in members:
        if not member.loras or member.members:
            raise NotServable(f"{release.tag}'s member {member.tag} is not an adapter release")
    if len({m.gguf for m in members}) != 1:
        raise NotServable(f"{release.tag}'s members are over different base models: one llama-server serves one")
    loras: list[Path] = []
    parts = []
    for member in members:
        parts.append(Member(member.tag, tuple(range(len(loras), len(loras) + len(member.loras)))))
        loras += member.loras
    return Model(tag=release.tag, gguf=members[0].gguf, loras=tuple(loras), members=tuple(parts), rule=release.rule)
