"""The release changelog, `date | tag | accuracy | pairs` (as the source keeps it), built from the bucket.

Releases are immutable, so accuracy is not written into them: it comes from the release history,
where the server records each promotion with the accuracy its QA gate report measured. A promotion the
gate did not accept, forced by a person, is marked with who forced it and why.
"""

from __future__ import annotations

from prefloop_core.contracts import ExportMode, HistoryAction, Release, ReleaseHistoryEntry
from prefloop_core.store import ArtifactStore

HEADER = "date | tag | accuracy | pairs"


def changelog_line(release: Release, accuracy: float | None, forced: ReleaseHistoryEntry | None = None) -> str:
    shown = f"{accuracy:.1%}" if accuracy is not None else "-"
    pairs = str(release.pairs) if release.pairs is not None else "-"
    note = f" | forced by {forced.trigger}: {forced.forced}" if forced is not None else ""
    return f"{release.created_at:%Y-%m-%d} | {release.tag} | {shown} | {pairs}{note}"


def forced_promotions(store: ArtifactStore) -> dict[str, ReleaseHistoryEntry]:
    """Tag -> its latest promotion, where that promotion was forced past the QA gate."""
    latest = {e.tag: e for e in store.history() if e.action is HistoryAction.PROMOTE}
    return {tag: e for tag, e in latest.items() if e.forced is not None}


def latest_accuracies(store: ArtifactStore) -> dict[str, float]:
    """Tag -> the most recent QA accuracy the release history holds for it."""
    return {entry.tag: entry.accuracy for entry in store.history() if entry.accuracy is not None}


def changelog(store: ArtifactStore) -> list[str]:
    """One line per trained release (base releases are not changes), oldest first."""
    accuracies, forced = latest_accuracies(store), forced_promotions(store)
    releases = [store.require(Release, tag) for tag in store.ids(Release)]
    trained = sorted((r for r in releases if r.mode is not ExportMode.BASE), key=lambda r: r.created_at)
    return [changelog_line(r, accuracies.get(r.tag, r.qa_accuracy), forced.get(r.tag)) for r in trained]
