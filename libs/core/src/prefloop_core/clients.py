"""Small HTTP clients for the services' APIs, for flows and command lines (which import no service)."""

from __future__ import annotations

from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, TypeAdapter

from prefloop_core.contracts import (
    CandidateRecord,
    CheckResult,
    DatasetManifest,
    DatasetStatus,
    GateResult,
    IngestResult,
    QAReport,
    QARecord,
    ReleaseHistoryEntry,
    ReviewItem,
    ServerStatus,
    SlotState,
    SnapshotRefused,
)

M = TypeVar("M", bound=BaseModel)


class ServiceError(RuntimeError):
    """A service refused or failed a call; `status` is the HTTP status, the message its explanation."""

    def __init__(self, status: int, message: str, detail: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.detail = detail


class SnapshotRefusedError(ServiceError):
    """The collector refused a snapshot because a hard check failed; `refused` holds every check."""

    def __init__(self, refused: SnapshotRefused) -> None:
        super().__init__(409, f"the collector's hard checks failed: {refused.reason()}", refused.model_dump(mode="json"))
        self.refused = refused


def _raise_for(response: httpx.Response) -> Any:
    try:
        body = response.json()
    except ValueError:
        body = {"detail": response.text}
    if response.is_success:
        return body
    detail = body.get("detail", body) if isinstance(body, dict) else body
    if isinstance(detail, list) and all(isinstance(e, dict) and "loc" in e for e in detail):  # FastAPI's 422
        message = "; ".join(f"{'.'.join(str(p) for p in e['loc'] if p != 'body')}: {e.get('msg', '')}" for e in detail)
    else:
        message = detail.get("message", str(detail)) if isinstance(detail, dict) else str(detail)
    raise ServiceError(response.status_code, message, detail)


class _ServiceClient:
    """A bearer token, one URL prefix, and failures as ServiceError with a hint of what to start."""

    prefix = ""
    not_running = ""

    def __init__(self, url: str, token: str | None, timeout: float) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout)

    def _call(self, method: str, path: str, body: Any = None, params: dict[str, Any] | None = None) -> Any:
        try:
            response = self.http.request(method, f"{self.prefix}{path}", json=body, params=params)
        except httpx.TransportError as exc:
            raise ServiceError(0, f"{self.http.base_url} does not answer ({exc}); {self.not_running}") from None
        return _raise_for(response)

    def _typed(self, model: type[M], method: str, path: str, body: Any = None, params: dict[str, Any] | None = None) -> M:
        return model.model_validate(self._call(method, path, body, params))

    def _typed_list(
        self, model: type[M], method: str, path: str, body: Any = None, params: dict[str, Any] | None = None
    ) -> list[M]:
        return TypeAdapter(list[model]).validate_python(self._call(method, path, body, params))  # type: ignore[valid-type]


class ServerAdminClient(_ServiceClient):
    """The server's admin API: status, history, deploy, promote, rollback, discard, QA, gate."""

    prefix = "/admin"
    not_running = "is `prefloop serve` running?"

    def __init__(self, url: str, token: str | None, timeout: float = 900) -> None:
        super().__init__(url, token, timeout)

    def status(self) -> ServerStatus:
        return self._typed(ServerStatus, "GET", "/status")

    def history(self) -> list[ReleaseHistoryEntry]:
        return self._typed_list(ReleaseHistoryEntry, "GET", "/history")

    def deploy(self, tag: str, trigger: str) -> SlotState:
        return self._typed(SlotState, "POST", "/deploy", {"tag": tag, "trigger": trigger})

    def promote(self, tag: str, trigger: str, report_id: str | None = None, force_reason: str | None = None) -> ServerStatus:
        """Put `tag` (deployed in the idle slot) live: the QA gate's report `report_id` must have accepted it (default:
        the server's last gate of `tag`), or `force_reason` says why a person promotes it anyway."""
        return self._typed(
            ServerStatus,
            "POST",
            "/promote",
            {"tag": tag, "trigger": trigger, "report_id": report_id, "force": force_reason is not None, "reason": force_reason},
        )

    def rollback(self, trigger: str, tag: str | None = None) -> ServerStatus:
        return self._typed(ServerStatus, "POST", "/rollback", {"trigger": trigger, "tag": tag})

    def discard(self, trigger: str) -> ServerStatus:
        return self._typed(ServerStatus, "POST", "/discard", {"trigger": trigger})

    def gate(self, qa_set: dict[str, Any], rule: dict[str, Any] | None = None) -> GateResult:
        """The QA gate on the live and the idle slot; its report is published to the bucket under its id."""
        return GateResult.model_validate(self._call("POST", "/gate", {"qa_set": qa_set, "rule": rule}))

    def qa(self, qa_set: dict[str, Any]) -> QAReport:
        """The QA set on the live model: its summary and every record."""
        return self._typed(QAReport, "POST", "/qa", {"qa_set": qa_set})

    def candidates(self, qa_set: dict[str, Any], samples: int = 4, temperature: float = 0.8) -> list[CandidateRecord]:
        """Answers sampled from the live model: the bad ones, with the best as a suggestion when it was right."""
        return self._typed_list(
            CandidateRecord, "POST", "/candidates", {"qa_set": qa_set, "samples": samples, "temperature": temperature}
        )


class CollectorClient(_ServiceClient):
    """The collector's API (a reviewer token): ingest QA records, read and answer items, status, checks, snapshot."""

    prefix = "/api"
    not_running = "is the collector (`prefloop review --web`, or its container) running?"

    def __init__(self, url: str, token: str | None, timeout: float = 300) -> None:
        super().__init__(url, token, timeout)

    def ingest(self, records: list[QARecord], threshold: float | None = None) -> IngestResult:
        return self._typed(
            IngestResult,
            "POST",
            "/ingest",
            [r.model_dump(mode="json") for r in records],
            {"threshold": threshold} if threshold is not None else None,
        )

    def ingest_candidates(self, candidates: list[CandidateRecord]) -> IngestResult:
        """Queue sampled bad answers with their suggested answers (from ServerAdminClient.candidates)."""
        return self._typed(IngestResult, "POST", "/ingest/candidates", [c.model_dump(mode="json") for c in candidates])

    def items(self, status: str = "pending", limit: int = 500) -> list[ReviewItem]:
        return self._typed_list(ReviewItem, "GET", "/items", params={"status": status, "limit": limit})

    def save_chosen(self, item_id: int, chosen: str, version: int) -> ReviewItem:
        return self._typed(ReviewItem, "POST", f"/items/{item_id}/chosen", {"chosen": chosen, "version": version})

    def status(self) -> DatasetStatus:
        return self._typed(DatasetStatus, "GET", "/status")

    def checks(self) -> list[CheckResult]:
        return self._typed_list(CheckResult, "GET", "/checks")

    def snapshot(self) -> DatasetManifest:
        """Publish a dataset snapshot; SnapshotRefusedError (409) holds every check when a hard check fails."""
        try:
            return self._typed(DatasetManifest, "POST", "/snapshots")
        except ServiceError as exc:
            if exc.status == 409 and isinstance(exc.detail, dict) and "checks" in exc.detail:
                raise SnapshotRefusedError(SnapshotRefused.model_validate(exc.detail)) from None
            raise
