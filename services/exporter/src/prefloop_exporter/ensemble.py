"""Ensemble releases: adapter releases over one base, served by one llama-server that loads every member's LoRA and
applies one member's per request; the server asks each member and keeps one answer by the ensemble's rule.

An ensemble holds no files of its own: its members hold them. Its tag is `<base-short>-ensemble-<YYYYMMDD>-<n>`.
"""

from __future__ import annotations

from datetime import datetime, timezone

from prefloop_core.contracts import EnsembleRule, ExportMode, Release
from prefloop_core.ids import check_safe_id
from prefloop_core.settings import Settings
from prefloop_core.store import ArtifactStore
from prefloop_exporter.export import ExportError
from prefloop_exporter.tags import base_short, next_free_tag

MAX_MEMBERS = 8  # each member is a full generation per request


def make_ensemble(store: ArtifactStore, members: list[str], rule: EnsembleRule, settings: Settings) -> Release:
    """Publish an ensemble of `members`; refused (ExportError, naming the member) unless they are two or more
    different adapter releases over the same base release."""
    if len(set(members)) != len(members):
        raise ExportError(f"a member is named twice: {', '.join(sorted(m for m in members if members.count(m) > 1))}")
    if not 2 <= len(members) <= MAX_MEMBERS:
        raise ExportError(f"an ensemble has 2 to {MAX_MEMBERS} members, not {len(members)}")
    releases = []
    for tag in members:
        try:
            check_safe_id(tag)
        except ValueError as exc:
            raise ExportError(f"member {exc}") from None
        release = store.get(Release, tag)
        if release is None:
            raise ExportError(f"no release {tag} (`prefloop releases` lists them)")
        if release.mode is not ExportMode.ADAPTER:
            raise ExportError(
                f"{tag} is a {release.mode.value} release: ensemble members are adapter releases over one base "
                "(`prefloop export RUN --mode adapter`)"
            )
        releases.append(release)
    bases = {r.base_release for r in releases}
    if len(bases) != 1:
        listed = ", ".join(f"{r.tag} over {r.base_release}" for r in releases)
        raise ExportError(f"the members are over different bases ({listed}): one llama-server serves one base")
    first = releases[0]
    now = datetime.now(timezone.utc)
    ensemble = Release(
        tag=next_free_tag(store, base_short(first.base_model, settings), "ensemble", now),
        base_model=first.base_model,
        chat_template=first.chat_template,
        mode=ExportMode.ENSEMBLE,
        quantizations=first.quantizations,
        base_release=first.base_release,
        llama_cpp_version=first.llama_cpp_version,
        created_at=now,
        members=members,
        rule=rule,
    )
    return store.publish(ensemble, {})
