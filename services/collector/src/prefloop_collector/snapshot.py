"""`snapshot`: freeze the reviewed pairs into an immutable dataset in the bucket.

Pairs are in TRL's conversational preference format, their prompt built with the same RAG
template the QA runner asks with. One pair per chosen item and per model that answered it wrong,
against that model's worst answer: once a model trained on the pairs is served, its own wrong answers
to reviewed questions become new pairs for the same reviewed answer without anyone reviewing again
(on-policy pairs, as iterative DPO trains on), and the earlier models' pairs stay.
The dataset id is the hash of the pairs, the checks and the template: the same content always
gets the same id, and publishing it again publishes nothing new.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from prefloop_core.contracts import (
    ChatMessage,
    CheckResult,
    ContributionStatus,
    DatasetManifest,
    PairSplit,
    PreferencePair,
    RejectedAnswer,
    ReviewItem,
    ReviewStatus,
)
from prefloop_core.ids import dataset_id_for
from prefloop_core.prompts import PromptTemplate
from prefloop_core.store import ArtifactStore
from prefloop_collector.checks import Candidate, blocking, run_checks
from prefloop_collector.queue import Filters, ReviewQueue
from prefloop_collector.settings import CollectorSettings
from prefloop_collector.text import identity

PAIRS_FILE = "pairs.jsonl"


@dataclass(frozen=True)
class SnapshotResult:
    checks: list[CheckResult]
    manifest: DatasetManifest | None  # None: refused by a hard check
    new: bool = False


def reviewed_items(queue: ReviewQueue) -> list[ReviewItem]:
    return [item for item in queue.items(Filters(status=ReviewStatus.CHOSEN)) if item.rejected and item.chosen]


def candidates(items: list[ReviewItem]) -> list[Candidate]:
    return [
        Candidate(i.item_id, identity(i.question, i.prompt), i.game, i.chosen or "", i.rejected[0].answer, i.split) for i in items
    ]


def worst_per_model(item: ReviewItem) -> list[RejectedAnswer]:
    """The item's worst rejected answer from each model, worst first (the queue lists them worst first). An answer
    text already paired is not paired again (an imported template carries the QA answer back as model `import`)."""
    worst: dict[str, RejectedAnswer] = {}
    for answer in item.rejected:
        if answer.model not in worst and all(answer.answer != w.answer for w in worst.values()):
            worst[answer.model] = answer
    return list(worst.values())


def source_of(item: ReviewItem) -> str:
    """Who wrote the chosen answer: an import file, contributors (agreed, or approved by a reviewer), or a reviewer."""
    if item.origin:
        return "import"
    accepted = any(c.status is ContributionStatus.ACCEPTED for c in item.contributions)
    return "contributors" if accepted else "review"


def build_pairs(items: list[ReviewItem], template: PromptTemplate) -> list[PreferencePair]:
    pairs = []
    for item in sorted(items, key=lambda i: i.item_id):
        prompt = item.prompt or template.render(item.question, item.context)
        for rejected in worst_per_model(item):
            pairs.append(
                PreferencePair(
                    prompt=prompt,
                    chosen=[ChatMessage(role="assistant", content=item.chosen or "")],
                    rejected=[ChatMessage(role="assistant", content=rejected.answer)],
                    item_id=item.item_id,
                    game=item.game,
                    reviewer=item.reviewer,
                    source=source_of(item),
                    split=item.split,
                    origin=item.origin,
                )
            )
    return pairs


def snapshot(
    queue: ReviewQueue,
    store: ArtifactStore,
    settings: CollectorSettings,
    template: PromptTemplate,
    allow_failed_checks: bool = False,
) -> SnapshotResult:
    items = reviewed_items(queue)
    checks = run_checks(candidates(items), settings)
    if blocking(checks) and not allow_failed_checks:
        return SnapshotResult(checks, None)
    pairs = build_pairs(items, template)
    body = "".join(json.dumps(p.model_dump(mode="json"), ensure_ascii=False, sort_keys=True) + "\n" for p in pairs)
    content = body + json.dumps([c.model_dump(mode="json") for c in checks], sort_keys=True) + template.model_dump_json()
    manifest = DatasetManifest(
        dataset_id=dataset_id_for(hashlib.sha256(content.encode()).hexdigest()),
        created_at=datetime.now(timezone.utc),
        pair_count=len(pairs),
        games=dict(Counter(p.game or "other" for p in pairs if p.split is PairSplit.TRAIN)),
        checks=checks,
        prompt_template=template.name,
    )
    existed = store.get(DatasetManifest, manifest.dataset_id) is not None
    with tempfile.TemporaryDirectory(prefix="prefloop-snapshot-") as tmp:
        path = Path(tmp) / PAIRS_FILE
        path.write_text(body, encoding="utf-8")
        published = store.publish(manifest, {PAIRS_FILE: path})
    return SnapshotResult(checks, published, new=not existed)
