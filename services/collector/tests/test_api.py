"""The collector's HTTP API over real HTTP: tokens, conflicts, limits, field-level errors, OpenAPI."""

from __future__ import annotations

import json

import httpx
from collector_helpers import TOKENS, Collector, record

from prefloop_core.contracts import CandidateRecord
from prefloop_collector.auth import COOKIE


def seed(collector: Collector, n: int = 3) -> list[int]:
    collector.queue.ingest([record(i, game=["minecraft", "palworld", "overwatch"][i % 3]) for i in range(n)])
    return [item.item_id for item in collector.queue.items()]


def test_every_api_call_needs_a_reviewer_token(collector: Collector) -> None:
    seed(collector)
    anonymous = collector.client(None)
    assert anonymous.get("/api/items").status_code == 401
    assert anonymous.post("/api/items/1/chosen", json={"chosen": "x", "version": 0}).status_code == 401
    wrong = anonymous.get("/api/items", headers={"Authorization": "Bearer not-a-token"})
    assert wrong.status_code == 401 and "PREFLOOP_COLLECTOR_REVIEWERS" in wrong.json()["detail"]
    assert anonymous.get("/health").status_code == 200


def test_submit_stores_the_reviewer_and_a_second_save_conflicts_with_the_first_answer(collector: Collector) -> None:
    item_id = seed(collector)[0]
    minji, joon = collector.client("minji"), collector.client("joon")
    item = minji.get(f"/api/items/{item_id}").json()
    saved = minji.post(f"/api/items/{item_id}/chosen", json={"chosen": "고양이요.", "version": item["version"]})
    assert saved.status_code == 200 and saved.json()["reviewer"] == "minji" and saved.json()["status"] == "chosen"

    late = joon.post(f"/api/items/{item_id}/chosen", json={"chosen": "오셀롯", "version": item["version"]})
    assert late.status_code == 409
    assert late.json()["detail"]["current"]["chosen"] == "고양이요."
    assert late.json()["detail"]["current"]["reviewer"] == "minji"


def test_skip_delete_and_filters(collector: Collector) -> None:
    ids = seed(collector, 6)
    client = collector.client()
    first = client.get(f"/api/items/{ids[0]}").json()
    assert client.post(f"/api/items/{ids[0]}/skip", json={"version": first["version"]}).json()["status"] == "skipped"
    second = client.get(f"/api/items/{ids[1]}").json()
    assert client.post(f"/api/items/{ids[1]}/delete", json={"version": second["version"]}).json()["status"] == "deleted"
    assert len(client.get("/api/items", params={"status": "pending"}).json()) == 4
    assert {i["game"] for i in client.get("/api/items", params={"game": "palworld"}).json()} == {"palworld"}
    assert client.get("/api/items/9999").status_code == 404


def test_validation_errors_are_4xx_with_field_locations(collector: Collector) -> None:
    item_id = seed(collector)[0]
    client = collector.client()
    bad = client.post(f"/api/items/{item_id}/chosen", json={"chosen": "", "version": -1})
    assert bad.status_code == 422
    assert {tuple(e["loc"]) for e in bad.json()["detail"]} == {("body", "chosen"), ("body", "version")}
    bad_records = client.post("/api/ingest", json=[{"question": "q", "score": 3}])
    assert bad_records.status_code == 422
    assert ["body", 0, "score"] in [e["loc"] for e in bad_records.json()["detail"]]


def test_a_users_mistakes_are_4xx_naming_the_field_never_500(collector: Collector) -> None:
    item_id = seed(collector)[0]
    client = collector.client()
    version = client.get(f"/api/items/{item_id}").json()["version"]
    huge = 2**63

    def refused(response: object, loc: list[object], words: str = "") -> None:
        assert response.status_code == 422, response.text  # type: ignore[attr-defined]
        errors = response.json()["detail"]  # type: ignore[attr-defined]
        assert any(e["loc"] == loc and words in e["msg"] for e in errors), errors

    refused(
        client.post(f"/api/items/{item_id}/chosen", json={"chosen": "  \n ", "version": version}),
        ["body", "chosen"],
        "is empty or only whitespace",
    )
    refused(
        client.post(f"/api/items/{item_id}/chosen", json={"chosen": "a\u0000b", "version": version}),
        ["body", "chosen"],
        "control character",
    )
    refused(client.post(f"/api/items/{item_id}/chosen", json={"chosen": "ok", "version": huge}), ["body", "version"])
    refused(client.get(f"/api/items/{huge}"), ["path", "item_id"])
    refused(client.post(f"/api/items/{huge}/skip", json={"version": 0}), ["path", "item_id"])
    refused(client.get("/api/items", params={"offset": huge}), ["query", "offset"])
    question = record(7).model_dump(mode="json") | {"question": " \t "}
    refused(client.post("/api/ingest", json=[question]), ["body", 0, "question"], "is empty or only whitespace")
    refused(
        client.post("/api/import", json=[{"question": "q\u0000", "rejected": "a", "chosen": "b"}]),
        ["body", 0, "question"],
        "control character",
    )
    # The review UI's form says so on the item page, the draft kept.
    page = httpx.post(
        f"{collector.url}/items/{item_id}/chosen",
        data={"chosen": "a\u0000b", "version": str(version)},
        cookies={COOKIE: TOKENS["minji"]},
    )
    assert page.status_code == 200 and "The answer holds the control character" in page.text
    # Nothing was stored from any of them: the item is as it was, and a snapshot is not blocked.
    assert client.get(f"/api/items/{item_id}").json()["version"] == version
    assert client.get("/api/checks").status_code == 200
    bad_query = client.get("/api/items", params={"min_score": 5})
    assert bad_query.status_code == 422


def test_request_bodies_over_the_limit_are_refused(collector: Collector) -> None:
    client = collector.client()
    huge = json.dumps([{"question": "q", "rejected": "r", "chosen": "가" * 600_000}])  # ~1.8 MB > 1 MB
    response = client.post("/api/import", content=huge, headers={"Content-Type": "application/json"})
    assert response.status_code == 413 and "PREFLOOP_COLLECTOR_MAX_BODY_MB" in response.json()["detail"]

    def chunks():  # no Content-Length: the limit is counted while reading
        for _ in range(20):
            yield b" " * 100_000

    streamed = client.post("/api/import", content=chunks(), headers={"Content-Type": "application/json"})
    assert streamed.status_code == 413


def test_ingest_import_template_checks_status_and_snapshot(collector: Collector) -> None:
    client = collector.client()
    records = [record(i, score=0.1 if i % 2 else 0.9).model_dump(mode="json") for i in range(6)]
    records.append(record(7, score=0.0, split="heldout").model_dump(mode="json"))  # only ever measured, never queued
    result = client.post("/api/ingest", json=records).json()
    assert result == {"received": 7, "bad_answers": 3, "new_rejected": 3, "new_items": 3, "already_known": 0}

    template = client.get("/api/template").json()
    for entry in template:
        entry["chosen"] = f"정답 {entry['id']}"
    imported = client.post("/api/import", json=template).json()
    assert imported["imported"] == 3
    assert all(i["reviewer"] == "minji" for i in client.get("/api/items", params={"status": "chosen"}).json())

    assert client.get("/api/status").json()["trainable_pairs"] == 3
    assert {c["name"] for c in client.get("/api/checks").json()} >= {"min_pairs", "game_balance"}
    published = client.post("/api/snapshots")
    assert published.status_code == 201 and published.json()["pair_count"] == 3


def test_sampled_candidates_are_queued_with_their_suggestion(collector: Collector) -> None:
    client = collector.client()
    bad = CandidateRecord(record=record(1, score=0.0), suggestion="고양이를 무서워해요.", suggestion_score=1.0)
    heldout = CandidateRecord(record=record(2, score=0.0, split="heldout"))
    result = client.post("/api/ingest/candidates", json=[c.model_dump(mode="json") for c in (bad, heldout)]).json()
    assert result == {"received": 2, "bad_answers": 1, "new_rejected": 1, "new_items": 1, "already_known": 0}
    [item] = client.get("/api/items").json()
    assert item["suggestion"] == "고양이를 무서워해요." and item["rejected"][0]["answer"] == bad.record.answer
    assert collector.client(None).post("/api/ingest/candidates", json=[]).status_code == 401


def test_snapshot_refused_by_a_hard_check_is_a_409_with_the_checks(collector: Collector) -> None:
    response = collector.client().post("/api/snapshots")
    assert response.status_code == 409
    assert any(c["name"] == "min_pairs" and c["verdict"] == "fail" for c in response.json()["detail"]["checks"])


def test_openapi_is_published(collector: Collector) -> None:
    paths = collector.client(None).get("/openapi.json").json()["paths"]
    assert {
        "/api/items",
        "/api/items/{item_id}/chosen",
        "/api/items/{item_id}/{action}",
        "/api/import",
        "/api/snapshots",
        "/api/ingest",
    } <= set(paths)
