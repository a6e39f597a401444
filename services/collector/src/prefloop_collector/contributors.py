"""Contributors: invited people outside the reviewers who answer the questions offered to them.

An admin invites a contributor by name and hands over the token shown once (only its SHA-256 is stored). A
contributor sees only the pending items offered to contributors, never the other contributors' answers, and can only
submit answers. An answer becomes the item's chosen one, a trainable pair, when `collector_contributors_agree`
contributors gave it (compared normalised, as questions are), or when a reviewer approves it in the review UI.
Revoking a contributor sets their pending answers aside; nothing else changes.
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone

from prefloop_core.contracts import (
    Contribution,
    ContributionOutcome,
    ContributionStatus,
    ContributorInvite,
    ContributorStats,
    OfferedItem,
    ReviewItem,
    ReviewStatus,
    RevokeResult,
    check_text,
)
from prefloop_core.ids import check_slug
from prefloop_collector.queue import ItemNotFound, ReviewQueue, settle_contributions
from prefloop_collector.settings import CollectorSettings
from prefloop_collector.text import normalize

TOKEN_PREFIX = "pfc_"  # tells a contributor's token from a reviewer's in a log line or a support question
# The same answer already given to this many other questions: the next one is refused as copy-paste.
SAME_ANSWER_LIMIT = 2


class ContributorError(ValueError):
    """A request about contributors that cannot be done as asked; the message says why and what to do."""


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _now() -> datetime:
    return datetime.now(timezone.utc)


class Contributors:
    def __init__(self, queue: ReviewQueue, settings: CollectorSettings) -> None:
        self.queue = queue
        self.settings = settings

    # -- the admin's side ---------------------------------------------------------------------------------------------

    def invite(self, name: str) -> ContributorInvite:
        """A new contributor and their token (shown once)."""
        check_slug(name)
        if name in self.settings.collector_reviewers:
            raise ContributorError(f"{name!r} is a reviewer's name: choose another name for the contributor")
        token = TOKEN_PREFIX + secrets.token_urlsafe(24)
        try:
            with self.queue.transaction() as conn:
                conn.execute(
                    "INSERT INTO contributors (name, token_hash, created_at) VALUES (?, ?, ?)",
                    (name, _hash(token), _now().isoformat()),
                )
        except sqlite3.IntegrityError:
            raise ContributorError(f"a contributor named {name!r} exists already: choose another name") from None
        return ContributorInvite(name=name, token=token)

    def revoke(self, name: str) -> RevokeResult:
        """The token stops working; the contributor's pending answers are set aside (never counted, never trained)."""
        with self.queue.transaction() as conn:
            row = conn.execute("SELECT id FROM contributors WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise ContributorError(f"there is no contributor {name!r} (`contributors list` shows them)")
            conn.execute(
                "UPDATE contributors SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?", (_now().isoformat(), row["id"])
            )
            set_aside = conn.execute(
                "UPDATE contributions SET status = 'set_aside' WHERE contributor_id = ? AND status = 'pending'", (row["id"],)
            ).rowcount
        return RevokeResult(name=name, set_aside=set_aside)

    def stats(self) -> list[ContributorStats]:
        with self.queue.connection() as conn:
            people = conn.execute("SELECT id, name, revoked_at FROM contributors ORDER BY name").fetchall()
            counts: dict[int, dict[str, int]] = {}
            for contributor_id, status, n in conn.execute(
                "SELECT contributor_id, status, COUNT(*) FROM contributions GROUP BY contributor_id, status"
            ):
                counts.setdefault(contributor_id, {})[status] = n
        stats = []
        for person in people:
            c = counts.get(person["id"], {})
            decided = c.get("accepted", 0) + c.get("not_chosen", 0)
            stats.append(
                ContributorStats(
                    name=person["name"],
                    revoked=person["revoked_at"] is not None,
                    answers=sum(c.values()),
                    pending=c.get("pending", 0),
                    accepted=c.get("accepted", 0),
                    not_chosen=c.get("not_chosen", 0),
                    set_aside=c.get("set_aside", 0),
                    agreement=c.get("accepted", 0) / decided if decided else None,
                )
            )
        return stats

    # -- the contributor's side ---------------------------------------------------------------------------------------

    def who(self, token: str | None) -> str | None:
        """The contributor holding `token`, unless revoked."""
        if not token or not token.startswith(TOKEN_PREFIX):
            return None
        with self.queue.connection() as conn:
            row = conn.execute(
                "SELECT name FROM contributors WHERE token_hash = ? AND revoked_at IS NULL", (_hash(token),)
            ).fetchone()
        return None if row is None else str(row["name"])

    def offered(self, name: str, limit: int | None = None) -> list[OfferedItem]:
        """The pending items offered to contributors that `name` has not answered, oldest first."""
        with self.queue.connection() as conn:
            rows = conn.execute(
                "SELECT id, question, game, context FROM items i WHERE offered = 1 AND status = 'pending'"
                " AND NOT EXISTS (SELECT 1 FROM contributions c JOIN contributors p ON p.id = c.contributor_id"
                " WHERE c.item_id = i.id AND p.name = ?) ORDER BY id" + (" LIMIT ?" if limit is not None else ""),
                (name, limit) if limit is not None else (name,),
            ).fetchall()
        return [OfferedItem(item_id=r["id"], question=r["question"], game=r["game"], context=r["context"]) for r in rows]

    def answered(self, name: str) -> int:
        with self.queue.connection() as conn:
            return int(
                conn.execute(
                    "SELECT COUNT(*) FROM contributions c JOIN contributors p ON p.id = c.contributor_id WHERE p.name = ?",
                    (name,),
                ).fetchone()[0]
            )

    def submit(self, name: str, entries: Sequence[Contribution]) -> list[ContributionOutcome]:
        """Store each valid answer (one transaction); each entry gets its outcome, a refused one its reason."""
        outcomes = []
        with self.queue.transaction() as conn:
            row = conn.execute("SELECT id FROM contributors WHERE name = ? AND revoked_at IS NULL", (name,)).fetchone()
            if row is None:
                raise ContributorError(f"contributor {name!r} is unknown or revoked")
            contributor_id = row["id"]
            since = (_now() - timedelta(hours=1)).isoformat()
            recent = conn.execute(
                "SELECT COUNT(*), MIN(created_at) FROM contributions WHERE contributor_id = ? AND created_at > ?",
                (contributor_id, since),
            ).fetchone()
            used, oldest = int(recent[0]), recent[1]
            seen: set[int] = set()
            for entry in entries:
                if entry.item_id in seen:
                    outcomes.append(self._refused(entry, f"item {entry.item_id} is in this submission twice: send one answer"))
                    continue
                seen.add(entry.item_id)
                answer = entry.answer.strip()
                if not answer:
                    outcomes.append(ContributionOutcome(item_id=entry.item_id, outcome="skipped"))
                    continue
                if used >= self.settings.collector_contributor_answers_per_hour:
                    again = datetime.fromisoformat(oldest) + timedelta(hours=1) if oldest else _now() + timedelta(hours=1)
                    outcomes.append(
                        self._refused(
                            entry,
                            f"over the limit of {self.settings.collector_contributor_answers_per_hour} answers per hour: "
                            f"send it again after {again:%H:%M} UTC",
                        )
                    )
                    continue
                reason = self._problem(conn, contributor_id, entry.item_id, answer)
                if reason:
                    outcomes.append(self._refused(entry, reason))
                    continue
                outcomes.append(self._store(conn, contributor_id, entry.item_id, answer))
                used += 1
                oldest = oldest or _now().isoformat()
        return outcomes

    @staticmethod
    def _refused(entry: Contribution, reason: str) -> ContributionOutcome:
        return ContributionOutcome(item_id=entry.item_id, outcome="refused", reason=reason)

    def _problem(self, conn: sqlite3.Connection, contributor_id: int, item_id: int, answer: str) -> str | None:
        """Why this answer cannot be stored, or None."""
        limit = self.settings.collector_contributor_max_chars
        if len(answer) > limit:
            return f"the answer is {len(answer):,} characters, over the limit of {limit:,}: shorten it"
        try:
            check_text(answer)
        except ValueError as exc:
            return f"the answer {exc}"
        item = conn.execute("SELECT question, status, offered FROM items WHERE id = ?", (item_id,)).fetchone()
        if item is None or not item["offered"]:
            return f"item {item_id} is not offered to contributors"
        if item["status"] != "pending":
            return f"item {item_id} is answered or closed already: nothing to do"
        mine = conn.execute(
            "SELECT created_at FROM contributions WHERE item_id = ? AND contributor_id = ?", (item_id, contributor_id)
        ).fetchone()
        if mine:
            return (
                f"you answered item {item_id} already ({mine['created_at'][:16].replace('T', ' ')} UTC); an answer is not changed"
            )
        key = normalize(answer)
        if key == normalize(item["question"]):
            return "the answer repeats the question: write the answer"
        if any(normalize(r["answer"]) == key for r in conn.execute("SELECT answer FROM rejected WHERE item_id = ?", (item_id,))):
            return "the answer is the model's answer, which was judged wrong: write the correct one"
        # Within the hour only: a short answer ("yes", "Diamond") can rightly answer several questions over time.
        same = [
            r["item_id"]
            for r in conn.execute(
                "SELECT item_id FROM contributions WHERE contributor_id = ? AND answer_key = ? AND created_at > ?"
                " ORDER BY item_id",
                (contributor_id, key, (_now() - timedelta(hours=1)).isoformat()),
            )
        ]
        if len(same) >= SAME_ANSWER_LIMIT:
            return (
                f"you sent this same answer for items {', '.join(map(str, same))} in the last hour: "
                "answer each question on its own"
            )
        return None

    def _store(self, conn: sqlite3.Connection, contributor_id: int, item_id: int, answer: str) -> ContributionOutcome:
        key = normalize(answer)
        conn.execute(
            "INSERT INTO contributions (item_id, contributor_id, answer, answer_key, created_at) VALUES (?, ?, ?, ?, ?)",
            (item_id, contributor_id, answer, key, _now().isoformat()),
        )
        agreeing = conn.execute(
            "SELECT p.name, c.answer FROM contributions c JOIN contributors p ON p.id = c.contributor_id"
            " WHERE c.item_id = ? AND c.answer_key = ? AND c.status = 'pending' ORDER BY c.id",
            (item_id, key),
        ).fetchall()
        if len(agreeing) < self.settings.collector_contributors_agree:
            return ContributionOutcome(item_id=item_id, outcome="pending", agreeing=len(agreeing))
        # Enough contributors agree: the first wording of the agreed answer becomes the item's chosen answer.
        first = agreeing[0]["answer"]
        conn.execute(
            "UPDATE items SET status = 'chosen', chosen = ?, reviewer = ?, version = version + 1, updated_at = ? WHERE id = ?",
            (first, "contributors: " + ", ".join(r["name"] for r in agreeing), _now().isoformat(), item_id),
        )
        settle_contributions(conn, item_id, ReviewStatus.CHOSEN, first)
        return ContributionOutcome(item_id=item_id, outcome="accepted", agreeing=len(agreeing))

    # -- the reviewer's side ------------------------------------------------------------------------------------------

    def approve(self, item_id: int, contribution_id: int, reviewer: str, version: int) -> ReviewItem:
        """A reviewer makes a contributed answer the item's chosen one (version-checked like any save)."""
        item = self.queue.get(item_id)
        contribution = next((c for c in item.contributions if c.contribution_id == contribution_id), None)
        if contribution is None:
            raise ItemNotFound(f"item {item_id} has no contribution {contribution_id}")
        if contribution.status is not ContributionStatus.PENDING:
            # A set-aside answer (its contributor revoked) is never trained, even from a page opened before.
            raise ContributorError(
                f"contribution {contribution_id} is {contribution.status.value.replace('_', ' ')}, not pending: "
                "it cannot become the answer; write the answer yourself"
            )
        return self.queue.save_chosen(item_id, contribution.answer, reviewer, version)
