"""Contributors: invite tokens, offered items, agreement, approval, limits and refusals, revocation, status; in the
queue and over the real HTTP API."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
from collector_helpers import ADMIN_TOKEN, TOKENS, Collector, record, running_collector

from prefloop_core.contracts import Contribution, ContributionStatus, ReviewStatus
from prefloop_core.prompts import load_template
from prefloop_core.store import open_store
from prefloop_collector import contributors
from prefloop_collector.auth import COOKIE
from prefloop_collector.contributors import ContributorError, Contributors
from prefloop_collector.queue import ReviewQueue
from prefloop_collector.settings import CollectorSettings
from prefloop_collector.snapshot import snapshot
from prefloop_collector.status import dataset_status, render_status

KOREAN = "팰월드에서 램볼은 어디에 사나요?"
ENGLISH = "What does a creeper fear in Minecraft?"


def answers(*pairs: tuple[int, str]) -> list[Contribution]:
    return [Contribution(item_id=item_id, answer=answer) for item_id, answer in pairs]


@pytest.fixture
def people(queue: ReviewQueue, settings: CollectorSettings) -> Contributors:
    queue.ingest(
        [
            record(1, game="palworld", question=KOREAN, answer="램볼은 바다에 삽니다."),
            record(2, game="minecraft", question=ENGLISH, answer="Creepers fear nothing."),
            record(3, game="overwatch"),
        ]
    )
    return Contributors(queue, settings)


def test_a_contributor_sees_only_offered_pending_items_never_answered_ones(people: Contributors) -> None:
    token = people.invite("hana").token
    assert people.who(token) == "hana" and people.who("pfc_not-a-token") is None and people.who(None) is None
    assert people.offered("hana") == []
    assert people.queue.offer([1, 2], None) == 2
    assert [i.item_id for i in people.offered("hana")] == [1, 2]
    offered = people.offered("hana")[0]
    assert offered.question == KOREAN and offered.answer == "" and offered.context  # never others' answers
    people.submit("hana", answers((1, "램볼은 초반 평원에 삽니다.")))
    assert [i.item_id for i in people.offered("hana")] == [2]
    assert people.queue.offer([2], None, offered=False) == 1
    assert people.offered("hana") == []


def test_enough_contributors_agreeing_make_a_pair_and_the_first_wording_is_kept(people: Contributors) -> None:
    people.queue.offer(None, None)
    for name in ("hana", "dev", "sol"):
        people.invite(name)
    first = people.submit("hana", answers((1, "램볼은 초반  평원에 삽니다.")))
    assert [(o.outcome, o.agreeing) for o in first] == [("pending", 1)]
    other = people.submit("sol", answers((1, "램볼은 동굴에 삽니다.")))
    assert other[0].outcome == "pending"
    agreed = people.submit("dev", answers((1, "램볼은 초반 평원에 삽니다.")))  # the same answer, normalised
    assert [(o.outcome, o.agreeing) for o in agreed] == [("accepted", 2)]

    item = people.queue.get(1)
    assert item.status is ReviewStatus.CHOSEN and item.chosen == "램볼은 초반  평원에 삽니다."
    assert item.reviewer == "contributors: hana, dev"
    assert {c.contributor: c.status for c in item.contributions} == {
        "hana": ContributionStatus.ACCEPTED,
        "sol": ContributionStatus.NOT_CHOSEN,
        "dev": ContributionStatus.ACCEPTED,
    }
    late = people.submit("sol", answers((2, "Cats and ocelots.")))
    assert late[0].outcome == "pending"
    stats = {s.name: s for s in people.stats()}
    assert (stats["hana"].accepted, stats["hana"].agreement) == (1, 1.0)
    assert (stats["sol"].answers, stats["sol"].pending, stats["sol"].not_chosen, stats["sol"].agreement) == (2, 1, 1, 0.0)


def test_a_reviewer_approves_a_contributed_answer_or_writes_one_and_the_answers_follow(people: Contributors) -> None:
    people.queue.offer(None, None)
    people.invite("hana")
    people.invite("dev")
    people.submit("hana", answers((1, "평원에 삽니다."), (2, "Cats and ocelots.")))
    people.submit("dev", answers((2, "Cats.")))
    (contribution,) = people.queue.get(1).contributions
    approved = people.approve(1, contribution.contribution_id, "minji", people.queue.get(1).version)
    assert approved.status is ReviewStatus.CHOSEN and approved.chosen == "평원에 삽니다." and approved.reviewer == "minji"
    assert approved.contributions[0].status is ContributionStatus.ACCEPTED

    written = people.queue.save_chosen(2, "Cats  and OCELOTS.", "joon", people.queue.get(2).version)
    assert {c.contributor: c.status for c in written.contributions} == {
        "hana": ContributionStatus.ACCEPTED,  # the same answer as the reviewer's, normalised
        "dev": ContributionStatus.NOT_CHOSEN,
    }
    item3 = people.queue.get(3)
    people.queue.delete(3, item3.version)
    assert people.submit("hana", answers((3, "x y z")))[0].reason == "item 3 is answered or closed already: nothing to do"


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ("x" * 2_001, "the answer is 2,001 characters, over the limit of 2,000: shorten it"),
        ("좋아요\x00", "the answer holds the control character '\\x00' at position 3: remove it"),
        (KOREAN, "the answer repeats the question: write the answer"),
        ("램볼은  바다에 삽니다.", "the answer is the model's answer, which was judged wrong: write the correct one"),
    ],
)
def test_a_bad_answer_is_refused_with_its_reason_and_nothing_is_stored(people: Contributors, answer: str, reason: str) -> None:
    people.queue.offer(None, None)
    people.invite("hana")
    (outcome,) = people.submit("hana", answers((1, answer)))
    assert (outcome.outcome, outcome.reason) == ("refused", reason)
    assert people.queue.get(1).contributions == []


def test_duplicates_spam_unoffered_items_and_the_hourly_limit_are_refused_and_the_rest_kept(
    queue: ReviewQueue, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = CollectorSettings(home=tmp_path / "home", collector_contributor_answers_per_hour=4)
    queue.ingest([record(n) for n in range(1, 8)])
    people = Contributors(queue, settings)
    people.invite("hana")
    queue.offer([1, 2, 3, 4, 5, 6], None)
    outcomes = people.submit(
        "hana",
        answers((1, "고양이"), (1, "오셀롯"), (2, "고양이"), (3, "고양이"), (7, "오셀롯"), (4, ""), (5, "고양이와 오셀롯")),
    )
    assert [(o.item_id, o.outcome, o.reason) for o in outcomes] == [
        (1, "pending", None),
        (1, "refused", "item 1 is in this submission twice: send one answer"),
        (2, "pending", None),
        (3, "refused", "you sent this same answer for items 1, 2 in the last hour: answer each question on its own"),
        (7, "refused", "item 7 is not offered to contributors"),
        (4, "skipped", None),
        (5, "pending", None),
    ]
    again = people.submit("hana", answers((1, "고양이입니다"), (6, "크리퍼는 고양이를 피한다"), (4, "고양이 두 마리")))
    assert again[0].reason is not None and again[0].reason.startswith("you answered item 1 already (")
    assert again[1].outcome == "pending"  # the 4th answer this hour
    assert again[2].reason is not None and again[2].reason.startswith(
        "over the limit of 4 answers per hour: send it again after "
    )
    assert people.stats()[0].answers == 4

    # An hour later the limits count afresh: a short answer can rightly answer several questions over time.
    later = datetime.now(timezone.utc) + timedelta(minutes=61)
    monkeypatch.setattr(contributors, "_now", lambda: later)
    assert [o.outcome for o in people.submit("hana", answers((3, "고양이"), (4, "고양이 두 마리")))] == ["pending", "pending"]


def test_revoking_sets_pending_answers_aside_and_keeps_everything_else(people: Contributors) -> None:
    people.queue.offer(None, None)
    token = people.invite("spam").token
    people.invite("hana")
    people.submit("spam", answers((1, "평원"), (2, "Cats.")))
    people.submit("hana", answers((1, "평원")))  # agrees with spam on item 1: a pair before the revocation
    result = people.revoke("spam")
    assert result.set_aside == 1  # item 2's; item 1's was accepted and stays so
    assert people.who(token) is None
    with pytest.raises(ContributorError, match="unknown or revoked"):
        people.submit("spam", answers((3, "x")))
    assert people.queue.get(1).status is ReviewStatus.CHOSEN
    (set_aside,) = people.queue.get(2).contributions
    assert set_aside.status is ContributionStatus.SET_ASIDE
    with pytest.raises(ContributorError, match="is set aside, not pending: it cannot become the answer"):
        people.approve(2, set_aside.contribution_id, "minji", people.queue.get(2).version)  # from a page opened before
    assert people.queue.get(2).status is ReviewStatus.PENDING
    spam = next(s for s in people.stats() if s.name == "spam")
    assert (spam.revoked, spam.accepted, spam.set_aside) == (True, 1, 1)
    with pytest.raises(ContributorError, match="no contributor 'nobody'"):
        people.revoke("nobody")
    with pytest.raises(ContributorError, match="exists already"):
        people.invite("hana")


def test_status_reports_each_contributor_and_agreed_pairs_go_into_a_snapshot(
    people: Contributors, settings: CollectorSettings
) -> None:
    people.queue.offer(None, None)
    for name in ("hana", "dev"):
        people.invite(name)
    people.submit("hana", answers((1, "평원"), (2, "Cats and ocelots.")))
    people.submit("dev", answers((1, "평원"), (2, "Cats.")))
    status = dataset_status(people.queue, settings)
    assert status.trainable_pairs == 1 and [c.name for c in status.contributors] == ["dev", "hana"]
    text = render_status(status)
    assert "agreement" in text and "hana" in text and "100%" in text
    result = snapshot(people.queue, open_store(settings), settings, load_template(settings.prompt_template), True)
    assert result.manifest is not None and result.manifest.pair_count == 1


def test_the_api_keeps_the_roles_apart(collector: Collector) -> None:
    collector.queue.ingest([record(1, game="palworld", question=KOREAN), record(2, game="minecraft", question=ENGLISH)])
    anonymous, reviewer = collector.client(None), collector.client("minji")
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

    assert anonymous.post("/api/admin/contributors", json={"name": "hana"}).status_code == 401
    assert reviewer.post("/api/admin/contributors", json={"name": "hana"}).status_code == 401
    invited = anonymous.post("/api/admin/contributors", json={"name": "hana"}, headers=admin)
    assert invited.status_code == 201 and invited.json()["token"].startswith("pfc_")
    assert anonymous.post("/api/admin/contributors", json={"name": "hana"}, headers=admin).status_code == 409
    assert anonymous.post("/api/admin/contributors", json={"name": "Not A Slug!"}, headers=admin).status_code == 422
    hana = {"Authorization": f"Bearer {invited.json()['token']}"}

    assert anonymous.get("/api/items", headers=hana).status_code == 401  # a contributor is not a reviewer
    assert reviewer.get("/api/contribute/items").status_code == 401  # nor the other way round
    assert anonymous.get("/api/contribute/items", headers=hana).json() == []
    assert reviewer.post("/api/offer", json={"game": "palworld"}).json() == {"changed": 1}
    template = anonymous.get("/api/contribute/items", headers=hana).json()
    assert [(t["item_id"], t["question"], t["answer"]) for t in template] == [(1, KOREAN, "")]
    template[0]["answer"] = "평원에 삽니다."
    sent = anonymous.post("/api/contribute", json=[*template, {"item_id": 2, "answer": "x"}], headers=hana).json()
    assert [(o["outcome"], o["reason"]) for o in sent] == [
        ("pending", None),
        ("refused", "item 2 is not offered to contributors"),
    ]
    assert anonymous.post("/api/contribute", json=[{"item_id": "one"}], headers=hana).status_code == 422

    item = reviewer.get("/api/items/1").json()
    (contribution,) = item["contributions"]
    assert (contribution["contributor"], contribution["agreeing"]) == ("hana", 1)
    approved = reviewer.post(
        f"/api/items/1/contributions/{contribution['contribution_id']}/approve", json={"version": item["version"]}
    )
    assert approved.status_code == 200 and approved.json()["chosen"] == "평원에 삽니다."
    stale = reviewer.post(f"/api/items/1/contributions/{contribution['contribution_id']}/approve", json={"version": 0})
    assert stale.status_code == 409
    assert reviewer.post("/api/items/1/contributions/999/approve", json={"version": 0}).status_code == 404
    assert [c["agreement"] for c in reviewer.get("/api/status").json()["contributors"]] == [1.0]

    revoked = anonymous.post("/api/admin/contributors/hana/revoke", headers=admin).json()
    assert revoked == {"name": "hana", "set_aside": 0}
    again = reviewer.post(f"/api/items/1/contributions/{contribution['contribution_id']}/approve", json={"version": 2})
    assert again.status_code == 409 and "is accepted, not pending" in again.json()["detail"]
    page = httpx.post(
        f"{collector.url}/items/1/contributions/{contribution['contribution_id']}/approve",
        data={"version": "2"},
        cookies={COOKIE: TOKENS["minji"]},
    )
    assert page.status_code == 200 and "is accepted, not pending: it cannot become the answer" in page.text
    assert reviewer.post("/api/offer", json={"item_ids": [2**64]}).status_code == 422
    assert anonymous.get("/api/contribute/items", headers=hana).status_code == 401
    assert anonymous.post("/api/admin/contributors/nobody/revoke", headers=admin).status_code == 404


def test_admin_calls_are_off_without_an_admin_token(tmp_path: Path) -> None:
    with running_collector(tmp_path, PREFLOOP_COLLECTOR_ADMIN_TOKEN="") as service:
        response = service.client(None).get("/api/admin/contributors", headers={"Authorization": "Bearer x"})
    assert response.status_code == 403 and "PREFLOOP_COLLECTOR_ADMIN_TOKEN" in response.json()["detail"]
