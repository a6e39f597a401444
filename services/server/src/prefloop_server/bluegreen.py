"""Blue/green serving: which slot is live, and the operations that change it.

- deploy(tag): load the release into the idle slot (after its in-flight requests finish);
  the live slot keeps answering throughout. A slot that fails to load never takes traffic.
- promote(): the idle slot, loaded and healthy, becomes live in one assignment; requests
  already on the old slot finish there, and the old slot stays loaded for an instant rollback.
- rollback(tag=None): without a tag, swap back to the other slot if it still holds the
  previous live release; with a tag, deploy it and promote it.
- discard(): unload the idle slot.
Every change is appended to the release history in the bucket.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from pathlib import Path

from pydantic import BaseModel

from prefloop_core.contracts import HistoryAction, ReleaseHistoryEntry
from prefloop_core.store import ArtifactStore
from prefloop_core.toolchain import LlamaCpp
from prefloop_server.releases import materialize
from prefloop_server.settings import ServerSettings
from prefloop_server.slots import Slot, SlotName, SlotState, SlotStatus


class OperationRefused(RuntimeError):
    """The operation cannot be done in the current state; the message says why and what to do."""


class ServerStatus(BaseModel):
    live: SlotName | None
    live_tag: str | None
    slots: list[SlotState]


class BlueGreen:
    def __init__(self, store: ArtifactStore, llama: LlamaCpp, settings: ServerSettings, logs: Path) -> None:
        self.store = store
        self.settings = settings
        self.slots = {name: Slot(name, llama, settings, logs) for name in SlotName}
        self.live: SlotName | None = None
        self.lock = asyncio.Lock()  # one admin operation at a time; serving never takes it

    def live_slot(self) -> Slot | None:
        slot = self.slots[self.live] if self.live else None
        return slot if slot is not None and slot.status is SlotStatus.READY else None

    def idle(self) -> Slot:
        return self.slots[self.live.other if self.live else SlotName.BLUE]

    def status(self) -> ServerStatus:
        live = self.live_slot()
        return ServerStatus(live=self.live, live_tag=live.model.tag if live and live.model else None,
                            slots=[slot.state() for slot in self.slots.values()])

    def _record(self, action: HistoryAction, tag: str, previous: str | None, trigger: str,
                accuracy: float | None = None, note: str = "") -> None:
        self.store.append_history(ReleaseHistoryEntry(
            at=datetime.now(timezone.utc), action=action, tag=tag, previous_tag=previous,
            accuracy=accuracy, trigger=trigger, note=note,
        ))

    def _live_tag(self) -> str | None:
        live = self.live_slot()
        return live.model.tag if live and live.model else None

    async def deploy(self, tag: str, trigger: str) -> SlotState:
        async with self.lock:
            return await self._deploy(tag, trigger)

    async def _deploy(self, tag: str, trigger: str) -> SlotState:
        model = await asyncio.to_thread(materialize, self.store, tag, self.settings)
        slot = self.idle()
        await slot.start(model)  # raises SlotFailed; the live slot is untouched either way
        self._record(HistoryAction.DEPLOY, tag, self._live_tag(), trigger)
        return slot.state()

    async def promote(self, trigger: str, accuracy: float | None = None) -> ServerStatus:
        async with self.lock:
            return self._promote(HistoryAction.PROMOTE, trigger, accuracy)

    def _promote(self, action: HistoryAction, trigger: str, accuracy: float | None = None, note: str = "") -> ServerStatus:
        slot = self.idle()
        if slot.status is not SlotStatus.READY or slot.model is None:
            raise OperationRefused(f"nothing to promote: the idle slot ({slot.name.value}) is {slot.status.value}; deploy a tag first")
        previous = self._live_tag()
        self.live = slot.name  # the switch: new requests go to this slot from now on
        self._record(action, slot.model.tag, previous, trigger, accuracy, note)
        return self.status()

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
