"""Contract tests of the artifact store: every test runs on the local folder and on S3 (moto over HTTP)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from store_helpers import dataset, read_raw, release, replace_raw, write

from prefloop_core.contracts import DatasetManifest, Release
from prefloop_core.store import (
    ArtifactConflict,
    ArtifactNotFound,
    ArtifactStore,
    IntegrityError,
    InvalidKey,
    StoreError,
)


def test_published_artifact_round_trips_with_verified_files(store: ArtifactStore, tmp_path: Path) -> None:
    model = write(tmp_path / "in" / "model.gguf", b"GGUF" + bytes(range(256)) * 100)
    card = write(tmp_path / "in" / "card.md", "모델 카드 — model card\n".encode())
    published = store.publish(release(), {"model-Q4_K_M.gguf": model, "docs/card.md": card})

    assert published.published_at is not None
    assert set(published.files) == {"model-Q4_K_M.gguf", "docs/card.md"}
    again = store.require(Release, "tiny-dpo-20261123-1")
    assert again == published

    fetched = store.fetch(again, tmp_path / "out")
    assert fetched["model-Q4_K_M.gguf"].read_bytes() == model.read_bytes()
    assert (tmp_path / "out" / "docs" / "card.md").read_text() == "모델 카드 — model card\n"
    assert store.read_bytes(again, "docs/card.md") == card.read_bytes()


def test_republishing_the_same_content_is_a_noop(store: ArtifactStore, tmp_path: Path) -> None:
    model = write(tmp_path / "model.gguf", b"same bytes")
    first = store.publish(release(), {"model.gguf": model})
    # A later publish with the same files and metadata (only volatile fields differ) changes nothing.
    second = store.publish(release(), {"model.gguf": model})
    assert second.published_at == first.published_at
    assert len(list(store.objects("models/"))) == 2  # one blob, one manifest


def test_different_content_under_a_published_id_is_refused(store: ArtifactStore, tmp_path: Path) -> None:
    store.publish(release(), {"model.gguf": write(tmp_path / "a.gguf", b"first")})
    with pytest.raises(ArtifactConflict, match=r"models/tiny-dpo-20261123-1 .*files differ: model.gguf"):
        store.publish(release(), {"model.gguf": write(tmp_path / "b.gguf", b"second")})
    with pytest.raises(ArtifactConflict, match="metadata differs"):
        store.publish(release(base_model="other"), {"model.gguf": tmp_path / "a.gguf"})
    fetched = store.fetch(store.require(Release, "tiny-dpo-20261123-1"), tmp_path / "out")
    assert fetched["model.gguf"].read_bytes() == b"first"


def test_one_corrupted_byte_fails_the_download_naming_the_key(store: ArtifactStore, tmp_path: Path) -> None:
    published = store.publish(release(), {"model.gguf": write(tmp_path / "m.gguf", b"0123456789" * 1000)})
    key = published.files["model.gguf"].key
    data = bytearray(read_raw(store, key))
    data[5000] ^= 0x01
    replace_raw(store, key, bytes(data))

    with pytest.raises(IntegrityError, match=rf"{key}: sha256 .*\(corrupted object\)"):
        store.fetch(published, tmp_path / "out")
    assert not (tmp_path / "out" / "model.gguf").exists()
    assert list((tmp_path / "out").iterdir()) == []  # no partial file left behind
    with pytest.raises(IntegrityError, match=key):
        store.read_bytes(published, "model.gguf")


def test_a_truncated_object_fails_the_download(store: ArtifactStore, tmp_path: Path) -> None:
    published = store.publish(release(), {"model.gguf": write(tmp_path / "m.gguf", b"x" * 4096)})
    key = published.files["model.gguf"].key
    replace_raw(store, key, b"x" * 4000)
    with pytest.raises(IntegrityError, match=rf"{key}: got 4000 bytes, the manifest records 4096"):
        store.fetch(published, tmp_path / "out")


def test_a_fetched_file_that_was_damaged_locally_is_downloaded_again(store: ArtifactStore, tmp_path: Path) -> None:
    published = store.publish(release(), {"model.gguf": write(tmp_path / "m.gguf", b"good" * 100)})
    target = store.fetch(published, tmp_path / "out")["model.gguf"]
    target.write_bytes(b"bad")
    assert store.fetch(published, tmp_path / "out")["model.gguf"].read_bytes() == b"good" * 100


def test_only_published_ids_are_listed_and_by_prefix(store: ArtifactStore, tmp_path: Path) -> None:
    payload = write(tmp_path / "pairs.jsonl", b'{"prompt": []}\n')
    for dataset_id in ("ds-aaaa000000000001", "ds-aaaa000000000002", "ds-bbbb000000000001"):
        store.publish(dataset(dataset_id), {"pairs.jsonl": payload})
    store.publish(release("tiny-dpo-20261123-1"), {"model.gguf": payload})

    assert store.ids(DatasetManifest) == ["ds-aaaa000000000001", "ds-aaaa000000000002", "ds-bbbb000000000001"]
    assert store.ids(DatasetManifest, prefix="ds-aaaa") == ["ds-aaaa000000000001", "ds-aaaa000000000002"]
    assert store.ids(Release) == ["tiny-dpo-20261123-1"]
    assert store.get(Release, "tiny-dpo-20261123-2") is None
    with pytest.raises(ArtifactNotFound, match="models/tiny-dpo-20261123-2 is not published"):
        store.require(Release, "tiny-dpo-20261123-2")


def test_deletion_is_explicit_and_unpublishes_first(store: ArtifactStore, tmp_path: Path) -> None:
    payload = write(tmp_path / "pairs.jsonl", b"{}\n")
    store.publish(dataset("ds-aaaa000000000001"), {"pairs.jsonl": payload})
    store.publish(dataset("ds-aaaa000000000002"), {"pairs.jsonl": payload})
    assert store.delete(DatasetManifest, "ds-aaaa000000000001") == 2
    assert store.ids(DatasetManifest) == ["ds-aaaa000000000002"]
    assert [o.key for o in store.objects("datasets/ds-aaaa000000000001")] == []


@pytest.mark.parametrize("bad", ["../etc", "a/b", ".hidden", "", "x" * 200, "a..b"])
def test_ids_that_could_escape_their_folder_are_refused(store: ArtifactStore, bad: str) -> None:
    with pytest.raises(ValueError, match="not a valid id"):
        store.get(Release, bad)


@pytest.mark.parametrize("bad", ["../model.gguf", "/abs.gguf", "a//b", ".env", "dir/../x"])
def test_file_names_that_could_escape_their_artifact_are_refused(store: ArtifactStore, tmp_path: Path, bad: str) -> None:
    with pytest.raises(InvalidKey, match="not a valid file name"):
        store.publish(release(), {bad: write(tmp_path / "f", b"x")})
    assert store.ids(Release) == []


def test_conditional_create_has_exactly_one_winner(store: ArtifactStore) -> None:
    """The primitive publishing rests on, raced by threads over the wire."""
    from concurrent.futures import ThreadPoolExecutor

    for round_ in range(5):
        key = f"race/{round_}/manifest.json"
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda i: store.backend.create(key, f"writer {i}".encode()), range(8)))
        assert results.count(True) == 1, results
        winner = results.index(True)
        assert store.backend.read(key) == f"writer {winner}".encode()


def test_release_history_is_append_only_and_ordered(store: ArtifactStore) -> None:
    from datetime import datetime, timedelta, timezone

    from prefloop_core.contracts import HistoryAction, ReleaseHistoryEntry

    t0 = datetime(2026, 11, 23, 3, tzinfo=timezone.utc)
    entries = [
        ReleaseHistoryEntry(at=t0 + timedelta(seconds=i), action=action, tag=f"t{i}", trigger="test")
        for i, action in enumerate([HistoryAction.DEPLOY, HistoryAction.PROMOTE, HistoryAction.ROLLBACK])
    ]
    for entry in reversed(entries):
        store.append_history(entry)
    assert store.history() == entries


def test_a_manifest_from_a_newer_prefloop_is_refused_with_what_to_do(store: ArtifactStore, tmp_path: Path) -> None:
    """A field this version does not know (a newer writer added it) names the field and says to align versions;
    any other mismatch still reports the validation error."""
    store.publish(release(), {"model.gguf": write(tmp_path / "m.gguf", b"GGUF")})
    key = store.manifest_key(Release, "tiny-dpo-20261123-1")
    original = json.loads(read_raw(store, key))
    replace_raw(store, key, json.dumps(original | {"plan": {"steps": 3}}).encode())
    with pytest.raises(
        StoreError,
        match=r"has field\(s\) this prefloop does not know: plan; most likely a newer "
        r"prefloop wrote it\. Run the same prefloop version",
    ):
        store.require(Release, "tiny-dpo-20261123-1")
    replace_raw(store, key, json.dumps(original | {"plan": 1, "created_at": "not a date"}).encode())
    with pytest.raises(StoreError, match="manifest does not match Release"):
        store.require(Release, "tiny-dpo-20261123-1")
