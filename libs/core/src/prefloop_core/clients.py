"""Small HTTP clients for the services' APIs, for flows and command lines (which import no service)."""

from __future__ import annotations

from typing import Any

import httpx


class ServiceError(RuntimeError):
    """A service refused or failed a call; `status` is the HTTP status, the message its explanation."""

    def __init__(self, status: int, message: str, detail: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.detail = detail


def _raise_for(response: httpx.Response) -> Any:
    try:
        body = response.json()
    except ValueError:
        body = {"detail": response.text}
    if response.is_success:
        return body
    detail = body.get("detail", body) if isinstance(body, dict) else body
    message = detail.get("message", str(detail)) if isinstance(detail, dict) else str(detail)
    raise ServiceError(response.status_code, message, detail)


class ServerAdminClient:
    """The server's admin API: status, history, deploy, promote, rollback, discard, gate."""

    def __init__(self, url: str, token: str | None, timeout: float = 900) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout)

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        try:
            response = self.http.request(method, f"/admin{path}", json=body)
        except httpx.TransportError as exc:
            raise ServiceError(0, f"the server at {self.http.base_url} does not answer ({exc}); is `prefloop serve` running?") from None
        return _raise_for(response)

    def status(self) -> dict[str, Any]:
        return self._call("GET", "/status")

    def history(self) -> list[dict[str, Any]]:
        return self._call("GET", "/history")

    def deploy(self, tag: str, trigger: str) -> dict[str, Any]:
        return self._call("POST", "/deploy", {"tag": tag, "trigger": trigger})

    def promote(self, trigger: str, accuracy: float | None = None) -> dict[str, Any]:
        return self._call("POST", "/promote", {"trigger": trigger, "accuracy": accuracy})

    def rollback(self, trigger: str, tag: str | None = None) -> dict[str, Any]:
        return self._call("POST", "/rollback", {"trigger": trigger, "tag": tag})

    def discard(self, trigger: str) -> dict[str, Any]:
        return self._call("POST", "/discard", {"trigger": trigger})

    def gate(self, qa_set: dict[str, Any], rule: dict[str, Any] | None = None) -> dict[str, Any]:
        return self._call("POST", "/gate", {"qa_set": qa_set, "rule": rule})
