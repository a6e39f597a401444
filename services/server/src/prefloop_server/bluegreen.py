"""Blue/green serving: which slot is live, and the operations that change it.

- deploy(tag): load the release into the idle slot (after its in-flight requests finish);
  the live slot keeps answering throughout. A slot that fails to load never takes traffic.
- promote(): the idle slot, loaded and healthy, becomes live in one assignment; requests
  already on the old slot finish there, and the old slot stays loaded for an instant rollback.
- rollback(tag=None): without a tag, swap back to the other slot if it still holds the
  previous live release; with a tag, deploy it and promote it.
- discard(): unload the idle slot.
- gating(): the QA gate's hold on both slots: while it runs, deploy, discard and promote are refused (409), so what
  it measures is what a promotion then puts live. A rollback still goes through (putting a good model back must
  never wait); the gate then ends with an error instead of a verdict.
Every change is appended to the release history in the bucket. A promotion over a live model needs the QA gate
report that accepted that very tag against that very live tag, or `force` with a person's reason.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from prefloop_core.children import stop_recorded
from prefloop_core.contracts import (
    GateReport,
    GateRule,
    HistoryAction,
    ReleaseHistoryEntry,
    ServerStatus,
    SlotName,
    SlotState,
    SlotStatus,
)
from prefloop_core.store import ArtifactNotFound, ArtifactStore
from prefloop_core.toolchain import LlamaCpp
from prefloop_server.releases import materialize
from prefloop_server.settings import ServerSettings
from prefloop_server.slots import Slot

log = logging.getLogger("prefloop.server")


class OperationRefused(RuntimeError):
    """The operation cannot be done in the current state; the message says why and what to do."""


class GateInterrupted(RuntimeError):
    """The slots changed while the QA gate ran: there is no verdict."""


@dataclass(frozen=True)
class GateHold:
    """What a running QA gate compares: the two slots and the loads they held when it began."""

    live: Slot
    candidate: Slot
    live_tag: str
    candidate_tag: str
    loads: tuple[datetime | None, datetime | None]
    started_at: datetime

    def unchanged(self, live_name: SlotName | None) -> bool:
        return (
            live_name is self.live.name
            and (self.live.loaded_at, self.candidate.loaded_at) == self.loads
            and self.live.status is SlotStatus.READY
            and self.candidate.status is SlotStatus.READY
        )


def report_problem(report: GateReport, tag: str, live_tag: str, rule: GateRule) -> str | None:
    """Why `report` does not allow promoting `tag` over `live_tag` now under the server's `rule`, or None."""
    if report.candidate_tag != tag:
        return f"QA gate report {report.report_id} is about {report.candidate_tag}, not {tag}"
    if report.live_tag != live_tag:
        return (
            f"QA gate report {report.report_id} compared {tag} with {report.live_tag}, but {live_tag} is live now: "
            "run the QA gate again"
        )
    if not report.verdict.accepted:
        return (
            f"the QA gate refused {tag} (report {report.report_id}): {'; '.join(report.verdict.reasons)}. "
            "To overrule it, promote with force and a reason (`prefloop promote TAG --force --reason TEXT`)"
        )
    if report.verdict.rule != rule:
        # A caller may ask /admin/gate with a rule of its own; only the server's rule (PREFLOOP_SERVER_GATE_*) gates.
        return (
            f"QA gate report {report.report_id} was decided by a rule other than this server's "
            f"({report.verdict.rule.method.value} with other settings than PREFLOOP_SERVER_GATE_*): run the QA gate "
            "again without a rule, or promote with force and a reason"
        )
    return None


class BlueGreen:
    def __init__(self, store: ArtifactStore, llama: LlamaCpp, settings: ServerSettings, logs: Path) -> None:
        self.store = store
        self.settings = settings
        self.logs = logs
        self.slots = {name: Slot(name, llama, settings, logs) for name in SlotName}
        self.live: SlotName | None = None
        self.lock = asyncio.Lock()  # one admin operation at a time; serving never takes it
        self.gate: GateHold | None = None  # the QA gate running now
        self.last_report: GateReport | None = None  # the last gate's report, for a promotion that names none

    def sweep(self) -> None:
        """At start: stop the llama-servers a server killed before it could stop them left running (recorded beside
        the logs), and remove the partial downloads it left in the models folder."""
        for pid in stop_recorded(self.logs, "slot-*.pid.json"):
            log.warning("stopped llama-server %d, left running by an earlier server", pid)
        if self.settings.models_dir.is_dir():
            for part in self.settings.models_dir.rglob(".*.part"):
                part.unlink(missing_ok=True)
                log.warning("removed %s, a download an earlier server did not finish", part)

    def live_slot(self) -> Slot | None:
        slot = self.slots[self.live] if self.live else None
        return slot if slot is not None and slot.status is SlotStatus.READY else None

    def idle(self) -> Slot:
        return self.slots[SlotName.idle_beside(self.live)]

    def status(self) -> ServerStatus:
        live = self.live_slot()
        return ServerStatus(
            live=self.live,
            live_tag=live.model.tag if live and live.model else None,
            slots=[slot.state() for slot in self.slots.values()],
            gate_running=self.gate is not None,
        )

    def _record(
        self,
        action: HistoryAction,
        tag: str,
        previous: str | None,
        trigger: str,
        accuracy: float | None = None,
        note: str = "",
        report_id: str | None = None,
        forced: str | None = None,
    ) -> None:
        self.store.append_history(
            ReleaseHistoryEntry(
                at=datetime.now(timezone.utc),
                action=action,
                tag=tag,
                previous_tag=previous,
                accuracy=accuracy,
                trigger=trigger,
                note=note,
                report_id=report_id,
                forced=forced,
            )
        )

    def _refuse_while_gating(self, what: str) -> None:
        if self.gate is not None:
            raise OperationRefused(
                f"a QA gate is comparing {self.gate.candidate_tag} with {self.gate.live_tag} (since "
                f"{self.gate.started_at:%H:%M:%S} UTC): {what} now would change what it measures; wait until it ends "
                "(`prefloop slots` shows gate_running)"
            )

    @asynccontextmanager
    async def gating(self) -> AsyncIterator[GateHold]:
        """Hold both slots for a QA gate: refuses deploy, discard and promote until it ends (see the module doc)."""
        async with self.lock:
            self._refuse_while_gating("another gate")
            live, candidate = self.live_slot(), self.idle()
            if live is None or live.model is None:
                raise OperationRefused("no model is live to compare against: deploy and promote a release first")
            if candidate.status is not SlotStatus.READY or candidate.model is None:
                raise OperationRefused("no candidate: deploy a tag to the idle slot first")
            hold = GateHold(
                live,
                candidate,
                live.model.tag,
                candidate.model.tag,
                (live.loaded_at, candidate.loaded_at),
                datetime.now(timezone.utc),
            )
            self.gate = hold
        try:
            yield hold
        finally:
            self.gate = None

    def check_held(self, hold: GateHold) -> None:
        """Raise GateInterrupted when either slot changed (or the live one moved) since the gate began."""
        if not hold.unchanged(self.live):
            raise GateInterrupted(
                f"the slots changed while the QA gate compared {hold.candidate_tag} with {hold.live_tag} (a rollback, "
                f"or a slot that stopped): no verdict; now live: {self._live_tag() or 'nothing'}. Deploy the candidate "
                "again and run the gate again"
            )

    def _live_tag(self) -> str | None:
        live = self.live_slot()
        return live.model.tag if live and live.model else None

    async def deploy(self, tag: str, trigger: str) -> SlotState:
        async with self.lock:
            self._refuse_while_gating(f"deploying {tag}")
            return await self._deploy(tag, trigger)

    async def _deploy(self, tag: str, trigger: str) -> SlotState:
        model = await asyncio.to_thread(materialize, self.store, tag, self.settings)
        slot = self.idle()
        await slot.start(model)  # raises SlotFailed; the live slot is untouched either way
        self._record(HistoryAction.DEPLOY, tag, self._live_tag(), trigger)
        return slot.state()

    async def promote(self, tag: str, trigger: str, report_id: str | None = None, force: str | None = None) -> ServerStatus:
        """Put `tag`, loaded in the idle slot, live. Over a live model it needs a QA gate report that accepted `tag`
        against the live tag (`report_id`, or else the last gate this server ran on `tag`), unless `force` gives a
        person's reason to promote anyway. The accuracy recorded is the report's, never a caller's."""
        async with self.lock:
            self._refuse_while_gating(f"promoting {tag}")
            slot = self.idle()
            if slot.status is not SlotStatus.READY or slot.model is None:
                raise OperationRefused(
                    f"nothing to promote: the idle slot ({slot.name.value}) is {slot.status.value}; deploy {tag} first"
                )
            if slot.model.tag != tag:
                raise OperationRefused(
                    f"the idle slot ({slot.name.value}) holds {slot.model.tag}, not {tag}: promote "
                    f"what it holds after the QA gate accepted it, or deploy {tag} and gate it"
                )
            live_tag = self._live_tag()
            report = await self._report(report_id, tag)
            if force is not None and not force.strip():
                raise OperationRefused("a forced promotion needs a reason: it goes into the release history and the changelog")
            if force is None and live_tag is not None:
                problem = (
                    report_problem(report, tag, live_tag, self.settings.gate_rule())
                    if report
                    else (
                        f"no QA gate report accepted {tag}: run the QA gate first (`prefloop qa --gate --set FILE`, or the "
                        "evaluate-and-deploy flow), or promote with force and a reason"
                    )
                )
                if problem:
                    raise OperationRefused(problem)
            measured = report is not None and report.candidate_tag == tag and report.live_tag == live_tag
            note = "first release: nothing was live to compare with" if live_tag is None and force is None else ""
            accuracy = report.verdict.candidate_accuracy if report is not None and measured else None
            return self._promote(
                HistoryAction.PROMOTE,
                trigger,
                accuracy,
                note,
                report_id=report.report_id if report else None,
                forced=force.strip() if force else None,
            )

    async def _report(self, report_id: str | None, tag: str) -> GateReport | None:
        if report_id is None:
            last = self.last_report
            return last if last is not None and last.candidate_tag == tag else None
        report = await asyncio.to_thread(self.store.get, GateReport, report_id)
        if report is None:
            raise ArtifactNotFound(f"no QA gate report {report_id} in the bucket")
        return report

    def _promote(
        self,
        action: HistoryAction,
        trigger: str,
        accuracy: float | None = None,
        note: str = "",
        report_id: str | None = None,
        forced: str | None = None,
    ) -> ServerStatus:
        slot = self.idle()
        if slot.status is not SlotStatus.READY or slot.model is None:
            raise OperationRefused(
                f"nothing to promote: the idle slot ({slot.name.value}) is {slot.status.value}; deploy a tag first"
            )
        previous = self._live_tag()
        self.live = slot.name  # the switch: new requests go to this slot from now on
        self._record(action, slot.model.tag, previous, trigger, accuracy, note, report_id, forced)
        return self.status()

    async def restore(self, tag: str, trigger: str) -> ServerStatus:
        """At start: load `tag` (the last live release, or the one named) and put it live; no gate, nothing to
        compare with."""
        async with self.lock:
            await self._deploy(tag, trigger)
            return self._promote(HistoryAction.PROMOTE, trigger, note="restored at start")

    async def rollback(self, trigger: str, tag: str | None = None) -> ServerStatus:
        """Back to `tag`, or to the release in service before the current one (instant if still loaded)."""
        async with self.lock:
            target = tag or self._previous_live_tag()
            if target is None:
                raise OperationRefused("no earlier release to roll back to; name a tag: rollback TAG")
            if target == self._live_tag():
                raise OperationRefused(f"{target} is already live")
            idle = self.idle()
            if not (idle.status is SlotStatus.READY and idle.model and idle.model.tag == target):
                await self._deploy(target, trigger)
            return self._promote(HistoryAction.ROLLBACK, trigger, note=f"rolled back to {target}")

    def _previous_live_tag(self) -> str | None:
        current = self._live_tag()
        for entry in reversed(self.store.history()):
            if entry.action in (HistoryAction.PROMOTE, HistoryAction.ROLLBACK) and entry.tag != current:
                return entry.tag
        return None

    async def discard(self, trigger: str) -> ServerStatus:
        async with self.lock:
            self._refuse_while_gating("discarding the candidate")
            slot = self.idle()
            if slot.model is None:
                raise OperationRefused(f"the idle slot ({slot.name.value}) holds nothing to discard")
            tag = slot.model.tag
            await slot.stop()
            self._record(HistoryAction.DISCARD, tag, self._live_tag(), trigger)
            return self.status()

    def last_live_tag(self) -> str | None:
        """The release the history says was in service last (to restore it at start)."""
        for entry in reversed(self.store.history()):
            if entry.action in (HistoryAction.PROMOTE, HistoryAction.ROLLBACK):
                return entry.tag
        return None

    async def shutdown(self) -> None:
        for slot in self.slots.values():
            await slot.stop(drain=False)
