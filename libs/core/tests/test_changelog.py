"""The changelog: one `date | tag | accuracy | pairs` line per trained release, accuracy from the history."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from prefloop_core.changelog import changelog
from prefloop_core.contracts import ExportMode, HistoryAction, Release, ReleaseHistoryEntry
from prefloop_core.store import ArtifactStore


def test_the_changelog_lists_trained_releases_with_their_latest_qa_accuracy(store: ArtifactStore) -> None:
    t0 = datetime(2026, 11, 23, 3, tzinfo=timezone.utc)
    for i, (tag, mode, pairs) in enumerate(
        [
            ("smollm2-135m-base-q4_k_m", ExportMode.BASE, None),
            ("smollm2-135m-dpo-20261123-2", ExportMode.ADAPTER, 64),
            ("smollm2-135m-dpo-20261123-1", ExportMode.MERGED, 42),
        ]
    ):
        created = t0 + timedelta(days=1) if tag.endswith("-2") else t0 + timedelta(hours=i)
        store.publish(Release(tag=tag, base_model="smollm2", mode=mode, pairs=pairs, created_at=created), {})
    assert changelog(store) == [
        "2026-11-23 | smollm2-135m-dpo-20261123-1 | - | 42",
        "2026-11-24 | smollm2-135m-dpo-20261123-2 | - | 64",
    ]

    for accuracy, action in ((0.55, HistoryAction.DEPLOY), (0.6, HistoryAction.PROMOTE)):
        store.append_history(
            ReleaseHistoryEntry(
                at=datetime.now(timezone.utc), action=action, accuracy=accuracy, tag="smollm2-135m-dpo-20261123-1", trigger="test"
            )
        )
    store.append_history(
        ReleaseHistoryEntry(
            at=datetime.now(timezone.utc), action=HistoryAction.ROLLBACK, tag="smollm2-135m-dpo-20261123-1", trigger="test"
        )
    )  # no accuracy
    assert changelog(store)[0] == "2026-11-23 | smollm2-135m-dpo-20261123-1 | 60.0% | 42"

    store.append_history(
        ReleaseHistoryEntry(
            at=datetime.now(timezone.utc),
            action=HistoryAction.PROMOTE,
            tag="smollm2-135m-dpo-20261123-2",
            trigger="cli:alice",
            forced="fixes the refund answers; the QA set predates them",
        )
    )
    assert changelog(store)[1] == (
        "2026-11-24 | smollm2-135m-dpo-20261123-2 | - | 64 | forced by cli:alice: fixes the "
        "refund answers; the QA set predates them"
    )
