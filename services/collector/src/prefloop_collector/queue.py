"""The review queue: SQLite in WAL mode, one committed transaction per save.

Items are questions (one per normalized question and game); each has the bad answers the
served model gave (`rejected`) and, once a person wrote it, the correct one (`chosen`).
Every save names the version it edits; a save on a stale version is a conflict that shows
the answer already saved, never a silent overwrite. `synchronous=FULL` makes every
acknowledged save survive a kill -9 or a power cut.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from prefloop_core.contracts import (
    CandidateRecord,
    ChatMessage,
    ContributedAnswer,
    ContributionStatus,
    ImportFormat,
    PairOrigin,
    PairSplit,
    QARecord,
    RejectedAnswer,
    ReviewItem,
    ReviewStatus,
)
from prefloop_collector.importer import ImportEntry, ImportReport
from prefloop_collector.text import identity, normalize, question_key

MIGRATIONS: list[str] = [
    # 1: items and their rejected answers
    """
    CREATE TABLE items (
      id INTEGER PRIMARY KEY,
      question_key TEXT NOT NULL UNIQUE,
      question TEXT NOT NULL,
      game TEXT,
      context TEXT,
      prompt_json TEXT,
      status TEXT NOT NULL CHECK (status IN ('pending', 'chosen', 'skipped', 'deleted')),
      chosen TEXT,
      reviewer TEXT,
      version INTEGER NOT NULL DEFAULT 0,
      source TEXT NOT NULL DEFAULT 'qa',
      created_at TEXT NOT NULL,
      updated_at TEXT NOT NULL
    );
    CREATE TABLE rejected (
      id INTEGER PRIMARY KEY,
      item_id INTEGER NOT NULL REFERENCES items(id),
      record_id TEXT NOT NULL UNIQUE,
      answer TEXT NOT NULL,
      score REAL NOT NULL,
      model TEXT NOT NULL,
      asked_at TEXT NOT NULL
    );
    CREATE INDEX rejected_by_item ON rejected(item_id);
    CREATE INDEX items_by_status ON items(status, game);
    """,
    # 2: a suggested answer from candidate generation, shown to the reviewer to confirm
    """
    ALTER TABLE items ADD COLUMN suggestion TEXT;
    ALTER TABLE items ADD COLUMN suggestion_score REAL
    """,
    # 3: imported pairs: what they are for (training or the trainer's evaluation) and where they came from
    """
    ALTER TABLE items ADD COLUMN split TEXT NOT NULL DEFAULT 'train' CHECK (split IN ('train', 'eval'));
    ALTER TABLE items ADD COLUMN origin_json TEXT
    """,
    # 4: contributors (tokens stored as hashes), the items offered to them and their answers
    """
    CREATE TABLE contributors (
      id INTEGER PRIMARY KEY,
      name TEXT NOT NULL UNIQUE,
      token_hash TEXT NOT NULL UNIQUE,
      created_at TEXT NOT NULL,
      revoked_at TEXT
    );
    CREATE TABLE contributions (
      id INTEGER PRIMARY KEY,
      item_id INTEGER NOT NULL REFERENCES items(id),
      contributor_id INTEGER NOT NULL REFERENCES contributors(id),
      answer TEXT NOT NULL,
      answer_key TEXT NOT NULL,
      status TEXT NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'accepted', 'not_chosen', 'closed', 'set_aside')),
      created_at TEXT NOT NULL,
      UNIQUE (item_id, contributor_id)
    );
    CREATE INDEX contributions_by_contributor ON contributions(contributor_id, created_at);
    ALTER TABLE items ADD COLUMN offered INTEGER NOT NULL DEFAULT 0
    """,
]


class Conflict(Exception):
    """The item changed since the caller read it; `current` is what is saved now."""

    def __init__(self, current: ReviewItem) -> None:
        who = f" by {current.reviewer}" if current.reviewer else ""
        super().__init__(f"item {current.item_id} was changed{who} (now version {current.version}, {current.status.value})")
        self.current = current


class ItemNotFound(KeyError):
    pass


@dataclass(frozen=True)
class IngestCounts:
    new_rejected: int = 0
    new_items: int = 0
    already_known: int = 0


@dataclass(frozen=True)
class Filters:
    game: str | None = None
    status: ReviewStatus | None = ReviewStatus.PENDING
    min_score: float | None = None
    max_score: float | None = None


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


@dataclass(frozen=True)
class QueueCounts:
    by_status: dict[str, int]
    rejected: int
    trainable_by_game: dict[str, int]  # chosen items with a rejected answer, to train on
    eval_pairs: int  # the same, imported for the trainer's evaluation


def settle_contributions(conn: sqlite3.Connection, item_id: int, status: ReviewStatus, chosen: str | None) -> None:
    """Contributions follow their item: an answer saved accepts the ones that gave it (normalised) and marks the others
    not chosen; a deleted item closes the pending ones; a skipped item leaves them waiting."""
    if status is ReviewStatus.CHOSEN and chosen is not None:
        conn.execute(
            "UPDATE contributions SET status = CASE WHEN answer_key = ? THEN 'accepted' ELSE 'not_chosen' END"
            " WHERE item_id = ? AND status IN ('pending', 'accepted', 'not_chosen')",
            (normalize(chosen), item_id),
        )
    elif status is ReviewStatus.DELETED:
        conn.execute("UPDATE contributions SET status = 'closed' WHERE item_id = ? AND status = 'pending'", (item_id,))


def contributions_of(conn: sqlite3.Connection, item_id: int) -> list[ContributedAnswer]:
    rows = conn.execute(
        "SELECT c.*, p.name FROM contributions c JOIN contributors p ON p.id = c.contributor_id WHERE c.item_id = ?"
        " ORDER BY c.id",
        (item_id,),
    ).fetchall()
    counted = [r["answer_key"] for r in rows if r["status"] in ("pending", "accepted")]
    return [
        ContributedAnswer(
            contribution_id=r["id"],
            contributor=r["name"],
            answer=r["answer"],
            status=ContributionStatus(r["status"]),
            agreeing=max(1, counted.count(r["answer_key"])),
            created_at=datetime.fromisoformat(r["created_at"]),
        )
        for r in rows
    ]


class ReviewQueue:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with self.connection() as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            self._migrate(conn)

    @contextmanager
    def connection(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=10)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        try:
            yield conn
        finally:
            conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken up front so concurrent writers queue instead of failing."""
        with self.connection() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def _migrate(self, conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > len(MIGRATIONS):
                raise RuntimeError(
                    f"{self.path} has schema version {version}, newer than this collector knows "
                    f"({len(MIGRATIONS)}): upgrade prefloop"
                )
            for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                for statement in script.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version={number}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    @property
    def schema_version(self) -> int:
        with self.connection() as conn:
            return int(conn.execute("PRAGMA user_version").fetchone()[0])

    # -- writing -----------------------------------------------------------------------------

    def ingest(self, records: Iterable[QARecord | CandidateRecord]) -> IngestCounts:
        """Queue bad answers (the caller filtered them): a new question becomes a pending item,
        a known one gets the answer attached; an answer already queued adds nothing. A candidate's
        suggestion is kept on its item (the better one wins) until someone writes the answer."""
        new_rejected = new_items = known = 0
        with self.transaction() as conn:
            for entry in records:
                record = entry.record if isinstance(entry, CandidateRecord) else entry
                if conn.execute("SELECT 1 FROM rejected WHERE record_id = ?", (record.record_id,)).fetchone():
                    known += 1
                    continue
                item_id, created = self._item_for(conn, record.question, record.game, record.context)
                new_items += created
                self._attach(conn, item_id, record.record_id, record.answer, record.score, record.model, record.asked_at)
                new_rejected += 1
                if isinstance(entry, CandidateRecord) and entry.suggestion:
                    conn.execute(
                        "UPDATE items SET suggestion = ?, suggestion_score = ? WHERE id = ? AND chosen IS NULL"
                        " AND (suggestion_score IS NULL OR suggestion_score < ?)",
                        (entry.suggestion, entry.suggestion_score, item_id, entry.suggestion_score or 0.0),
                    )
        return IngestCounts(new_rejected, new_items, known)

    def _item_for(
        self,
        conn: sqlite3.Connection,
        question: str,
        game: str | None,
        context: str | None,
        prompt: list[ChatMessage] | None = None,
        source: str = "qa",
    ) -> tuple[int, bool]:
        key = question_key(identity(question, prompt), game)
        row = conn.execute("SELECT id, context FROM items WHERE question_key = ?", (key,)).fetchone()
        if row:
            if context and not row["context"]:
                conn.execute("UPDATE items SET context = ? WHERE id = ?", (context, row["id"]))
            return int(row["id"]), False
        now = _now()
        prompt_json = json.dumps([m.model_dump() for m in prompt], ensure_ascii=False) if prompt else None
        cursor = conn.execute(
            "INSERT INTO items (question_key, question, game, context, prompt_json, status, source, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, 'pending', ?, ?, ?)",
            (key, question, game, context, prompt_json, source, now, now),
        )
        return int(cursor.lastrowid or 0), True

    @staticmethod
    def _attach(
        conn: sqlite3.Connection, item_id: int, record_id: str, answer: str, score: float, model: str, asked_at: datetime
    ) -> None:
        conn.execute(
            "INSERT INTO rejected (item_id, record_id, answer, score, model, asked_at) VALUES (?, ?, ?, ?, ?, ?)",
            (item_id, record_id, answer, score, model, asked_at.isoformat()),
        )

    def _save(self, item_id: int, version: int, status: ReviewStatus, chosen: str | None, reviewer: str | None) -> ReviewItem:
        with self.transaction() as conn:
            cursor = conn.execute(
                "UPDATE items SET status = ?, chosen = COALESCE(?, chosen), reviewer = COALESCE(?, reviewer),"
                " version = version + 1, updated_at = ? WHERE id = ? AND version = ?",
                (status.value, chosen, reviewer, _now(), item_id, version),
            )
            if cursor.rowcount == 0:
                current = self._load(conn, item_id)
                raise Conflict(current)
            settle_contributions(conn, item_id, status, chosen)
            return self._load(conn, item_id)

    def save_chosen(self, item_id: int, chosen: str, reviewer: str, version: int) -> ReviewItem:
        """Store the correct answer a reviewer wrote; the item becomes a trainable pair."""
        if not chosen.strip():
            raise ValueError("the correct answer is empty")
        return self._save(item_id, version, ReviewStatus.CHOSEN, chosen.strip(), reviewer)

    def offer(self, item_ids: Sequence[int] | None, game: str | None, offered: bool = True) -> int:
        """Offer items to contributors (or withdraw them): the listed ones, else the pending ones (of `game`). Only pending
        items can be offered; returns how many changed."""
        if item_ids is not None and not item_ids:
            return 0
        where = ["status = 'pending'", "offered != ?"]
        params: list[int | str] = [int(offered)]
        if item_ids is not None:
            where.append(f"id IN ({','.join('?' * len(item_ids))})")
            params += list(item_ids)
        if game is not None:
            where.append("game = ?")
            params.append(game)
        if not offered:
            where[0] = "1 = 1"  # withdrawing works whatever the item's state
        with self.transaction() as conn:
            return conn.execute(f"UPDATE items SET offered = ? WHERE {' AND '.join(where)}", [int(offered), *params]).rowcount

    def skip(self, item_id: int, version: int) -> ReviewItem:
        return self._save(item_id, version, ReviewStatus.SKIPPED, None, None)

    def delete(self, item_id: int, version: int) -> ReviewItem:
        """Exclude the question from training for good (kept, so it is not queued again)."""
        return self._save(item_id, version, ReviewStatus.DELETED, None, None)

    def import_entries(
        self,
        entries: Sequence[ImportEntry],
        reviewer: str,
        fmt: ImportFormat = ImportFormat.PREFLOOP,
        file: str = "request body",
        split: PairSplit = PairSplit.TRAIN,
    ) -> ImportReport:
        """Import reviewed pairs in one transaction (the caller validated every entry), each marked with its `split`
        and its origin: `fmt`, the `file` and its place in it."""
        report = ImportReport(split)
        seen: dict[str, int] = {}
        now = datetime.now(timezone.utc)
        with self.transaction() as conn:
            for index, entry in enumerate(entries):
                if not entry.chosen.strip():
                    report.unanswered += 1
                    continue
                key = question_key(entry.identity(), entry.game)
                if key in seen:
                    report.duplicates.append((index, f"repeats item {seen[key]} of this file"))
                    continue
                seen[key] = index
                row = conn.execute("SELECT id, status, chosen, reviewer FROM items WHERE question_key = ?", (key,)).fetchone()
                if row and row["status"] == ReviewStatus.DELETED.value:
                    report.duplicates.append((index, f"question was excluded from training (item {row['id']})"))
                    continue
                if row and row["status"] == ReviewStatus.CHOSEN.value:
                    same = normalize(row["chosen"] or "") == normalize(entry.chosen)
                    reason = "already imported" if same else f"already answered by {row['reviewer']}; not overwritten"
                    report.duplicates.append((index, f"{reason} (item {row['id']})"))
                    continue
                item_id, _ = self._item_for(conn, entry.question, entry.game, entry.context, entry.messages(), "import")
                record_id = entry.record_id()
                if not conn.execute("SELECT 1 FROM rejected WHERE record_id = ?", (record_id,)).fetchone():
                    self._attach(conn, item_id, record_id, entry.rejected, 0.0, "import", now)
                origin = PairOrigin(format=fmt, file=file, index=index).model_dump_json()
                conn.execute(
                    "UPDATE items SET status = 'chosen', chosen = ?, reviewer = ?, split = ?, origin_json = ?,"
                    " version = version + 1, updated_at = ? WHERE id = ?",
                    (entry.chosen.strip(), reviewer, split.value, origin, now.isoformat(), item_id),
                )
                settle_contributions(conn, item_id, ReviewStatus.CHOSEN, entry.chosen)
                report.imported += 1
        return report

    # -- reading -----------------------------------------------------------------------------

    def get(self, item_id: int) -> ReviewItem:
        with self.connection() as conn:
            return self._load(conn, item_id)

    def _load(self, conn: sqlite3.Connection, item_id: int) -> ReviewItem:
        row = conn.execute("SELECT * FROM items WHERE id = ?", (item_id,)).fetchone()
        if row is None:
            raise ItemNotFound(item_id)
        return self._item(conn, row)

    @staticmethod
    def _item(conn: sqlite3.Connection, row: sqlite3.Row) -> ReviewItem:
        rejected = [
            RejectedAnswer(
                answer=r["answer"],
                score=r["score"],
                model=r["model"],
                asked_at=datetime.fromisoformat(r["asked_at"]),
                record_id=r["record_id"],
            )
            for r in conn.execute("SELECT * FROM rejected WHERE item_id = ? ORDER BY score, asked_at DESC", (row["id"],))
        ]
        return ReviewItem(
            item_id=row["id"],
            question=row["question"],
            game=row["game"],
            context=row["context"],
            prompt=[ChatMessage.model_validate(m) for m in json.loads(row["prompt_json"])] if row["prompt_json"] else None,
            status=ReviewStatus(row["status"]),
            rejected=rejected,
            chosen=row["chosen"],
            suggestion=row["suggestion"],
            suggestion_score=row["suggestion_score"],
            reviewer=row["reviewer"],
            version=row["version"],
            updated_at=datetime.fromisoformat(row["updated_at"]),
            split=PairSplit(row["split"]),
            origin=PairOrigin.model_validate_json(row["origin_json"]) if row["origin_json"] else None,
            offered=bool(row["offered"]),
            contributions=contributions_of(conn, row["id"]),
        )

    def items(self, filters: Filters = Filters(), limit: int | None = None, offset: int = 0) -> list[ReviewItem]:
        """Items matching the filters, lowest score first (the worst answers are reviewed first)."""
        where: list[str] = ["1 = 1"]
        params: list[str | float | int] = []
        if filters.status is not None:
            where.append("i.status = ?")
            params.append(filters.status.value)
        if filters.game is not None:
            where.append("i.game = ?")
            params.append(filters.game)
        having = []
        if filters.min_score is not None:
            having.append("MIN(r.score) >= ?")
            params.append(filters.min_score)
        if filters.max_score is not None:
            having.append("MIN(r.score) <= ?")
            params.append(filters.max_score)
        sql = (
            "SELECT i.*, MIN(r.score) AS worst FROM items i LEFT JOIN rejected r ON r.item_id = i.id"
            f" WHERE {' AND '.join(where)} GROUP BY i.id"
            + (f" HAVING {' AND '.join(having)}" if having else "")
            + " ORDER BY worst IS NULL, worst, i.id"
            + (" LIMIT ? OFFSET ?" if limit is not None else "")
        )
        if limit is not None:
            params += [limit, offset]
        with self.connection() as conn:
            return [self._item(conn, row) for row in conn.execute(sql, params).fetchall()]

    def counts(self) -> QueueCounts:
        """Numbers for the status block: per status, rejected answers, trainable pairs per game, evaluation pairs."""
        with self.connection() as conn:
            by_status = {
                ReviewStatus(r[0]).value: r[1] for r in conn.execute("SELECT status, COUNT(*) FROM items GROUP BY status")
            }
            rejected = conn.execute("SELECT COUNT(*) FROM rejected").fetchone()[0]
            trainable: dict[str, int] = {}
            evaluation = 0
            for game, split, n in conn.execute(
                "SELECT game, split, COUNT(*) FROM items i WHERE status = 'chosen'"
                " AND EXISTS (SELECT 1 FROM rejected r WHERE r.item_id = i.id) GROUP BY game, split"
            ):
                if split == PairSplit.EVAL.value:
                    evaluation += n
                else:
                    trainable[game or "other"] = trainable.get(game or "other", 0) + n
        return QueueCounts(by_status, rejected, trainable, evaluation)
