"""The router sends a request once more when the slot closed a kept-alive connection instead of answering.

llama-server closes an idle kept-alive connection after 5 s; a request written on it as it closes is never read, and
httpx reports "server disconnected without sending a response". A fake upstream does exactly that to the second
request on its first connection, so the race happens every time instead of once in a few hundred swaps.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest

from prefloop_server.upstream import send

OK = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"


async def _read_request(reader: asyncio.StreamReader) -> bool:
    """Read one request's head (the tests send no body); False when the client closed the connection."""
    try:
        await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return False
    return True


async def _upstream_dropping_second_request() -> tuple[asyncio.Server, list[int]]:
    """A server that answers the first request of its first connection, then closes that connection on the next
    request without answering; every later connection is answered normally. Returns it and the connection count."""
    connections: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        first_connection = len(connections) == 1
        served = 0
        while await _read_request(reader):
            if first_connection and served == 1:
                break  # the request arrived as the connection closes: never answered
            writer.write(OK)
            await writer.drain()
            served += 1
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, connections


async def _two_requests(send_twice: bool) -> tuple[int, int]:
    server, connections = await _upstream_dropping_second_request()
    port = server.sockets[0].getsockname()[1]
    try:
        async with httpx.AsyncClient() as client:
            statuses = []
            for _ in range(2):
                request = client.build_request("GET", f"http://127.0.0.1:{port}/v1/models")
                response = await (send(client, request, stream=True) if send_twice else client.send(request, stream=True))
                await response.aread()
                await response.aclose()
                statuses.append(response.status_code)
        return statuses[1], len(connections)
    finally:
        server.close()
        await server.wait_closed()


def test_the_fake_upstream_drops_a_request_on_a_kept_alive_connection() -> None:
    """Without the retry the second request fails: the race this guards against is real in the fake."""
    with pytest.raises(httpx.RemoteProtocolError):
        asyncio.run(_two_requests(send_twice=False))


def test_the_router_sends_again_on_a_fresh_connection() -> None:
    status, connections = asyncio.run(_two_requests(send_twice=True))
    assert status == 200
    assert connections == 2  # the second try went out on a new connection
