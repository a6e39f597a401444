"""S3-only behaviour: transient faults retried with backoff, a missing bucket created on demand."""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlparse

import pytest
from store_helpers import release, write

from prefloop_core.contracts import Release
from prefloop_core.store import ArtifactStore
from prefloop_core.testing import make_s3_backend, new_bucket_name

SLOW_DOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message></Error>"
)


class FlakyProxy:
    """Forwards to a real S3 endpoint but answers 503 SlowDown to every `every`-th request."""

    def __init__(self, upstream: str, every: int) -> None:
        self.upstream = urlparse(upstream)
        self.every = every
        self.requests = 0
        self.failed = 0
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _any(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with proxy.lock:
                    proxy.requests += 1
                    fail = proxy.requests % proxy.every == 0
                    proxy.failed += fail
                if fail:
                    self.send_response(503)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(SLOW_DOWN)))
                    self.end_headers()
                    self.wfile.write(SLOW_DOWN)
                    return
                conn = http.client.HTTPConnection(proxy.upstream.hostname, proxy.upstream.port, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                self.send_response(resp.status)
                head = self.command == "HEAD"  # keeps the upstream's Content-Length, sends no body
                for key, value in resp.getheaders():
                    if key.lower() not in ("transfer-encoding", "connection") and (head or key.lower() != "content-length"):
                        self.send_header(key, value)
                if not head:
                    self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                conn.close()

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _any  # noqa: N815

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def flaky(s3_endpoint: str) -> Iterator[FlakyProxy]:
    proxy = FlakyProxy(s3_endpoint, every=3)
    yield proxy
    proxy.close()


def test_transient_s3_errors_are_retried_with_backoff(flaky: FlakyProxy, tmp_path: Path) -> None:
    store = ArtifactStore(make_s3_backend(flaky.url, new_bucket_name(), part_size=5 * 1024 * 1024, backoff=0.01))
    data = bytes(range(256)) * 50_000  # 12.8 MB: a multipart upload of three parts
    published = store.publish(release(), {"model.gguf": write(tmp_path / "m.gguf", data)})
    fetched = store.fetch(store.require(Release, published.tag), tmp_path / "out")

    assert fetched["model.gguf"].read_bytes() == data
    assert flaky.failed >= 3, "the proxy should have failed some requests"


def test_transient_errors_beyond_the_retry_budget_surface(flaky: FlakyProxy, tmp_path: Path) -> None:
    flaky.every = 1  # every request fails
    store = ArtifactStore(make_s3_backend(flaky.url, new_bucket_name(), retries=2, backoff=0.01))
    with pytest.raises(Exception, match="SlowDown|503"):
        store.publish(release(), {"model.gguf": write(tmp_path / "m.gguf", b"x")})
    assert flaky.requests == 3  # the first try and two retries


def test_a_missing_bucket_is_created_on_demand(s3_endpoint: str, tmp_path: Path) -> None:
    backend = make_s3_backend(s3_endpoint, new_bucket_name())
    assert not backend.client.bucket_exists(backend.bucket)
    ArtifactStore(backend).publish(release(), {"model.gguf": write(tmp_path / "m.gguf", b"x")})
    assert backend.client.bucket_exists(backend.bucket)
    # A second client finding the bucket already there is fine too.
    ArtifactStore(make_s3_backend(s3_endpoint, backend.bucket)).publish(release(), {"model.gguf": tmp_path / "m.gguf"})
