"""Requests to a slot's llama-server, shared by the router and the ensemble's members."""

from __future__ import annotations

import httpx


async def send(client: httpx.AsyncClient, request: httpx.Request, *, stream: bool = False) -> httpx.Response:
    """Send, once more if the slot dropped the connection before answering: llama-server closes a kept-alive
    connection after a few idle seconds, and a request that goes out on it as it closes was never read (seen under
    promote/rollback, when the connections to a slot sit idle until it is live again)."""
    try:
        return await client.send(request, stream=stream)
    except (httpx.RemoteProtocolError, httpx.ConnectError):
        return await client.send(request, stream=stream)
