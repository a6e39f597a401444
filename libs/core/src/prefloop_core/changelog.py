"""The release changelog, `date | tag | accuracy | pairs` (as the source keeps it), built from the bucket.

Releases are immutable, so accuracy is not written into them: it comes from the release history,
where the server records each promote and rollback with the QA accuracy it measured.
"""

from __future__ import annotations

from prefloop_core.contracts import ExportMode, Release
from prefloop_core.store import ArtifactStore

HEADER = "date | tag | accuracy | pairs"


def changelog_line(release: Release, accuracy: float | None) -> str:
    shown = f"{accuracy:.1%}" if accuracy is not None else "-"
    pairs = str(release.pairs) if release.pairs is not None else "-"
    return f"{release.created_at:%Y-%m-%d} | {release.tag} | {shown} | {pairs}"


def latest_accuracies(store: ArtifactStore) -> dict[str, float]:
    """Tag -> the most recent QA accuracy the release history holds for it."""
    return {entry.tag: entry.accuracy for entry in store.history() if entry.accuracy is not None}


def changelog(store: ArtifactStore) -> list[str]:
    """One line per trained release (base releases are not changes), oldest first."""
    accuracies = latest_accuracies(store)
    releases = [store.require(Release, tag) for tag in store.ids(Release)]
    trained = sorted((r for r in releases if r.mode is not ExportMode.BASE), key=lambda r: r.created_at)
    return [changelog_line(r, accuracies.get(r.tag, r.qa_accuracy)) for r in trained]
