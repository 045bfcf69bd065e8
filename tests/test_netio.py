"""The asyncio network backend under httpx (`netio.py`), against a raw HTTP/1.1 server on loopback
that counts connections and can misbehave at the socket level (close idle connections, stall,
send bodies larger than the read-ahead limit)."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import List

import pytest

from bulletin_pipeline.errors import WordPressUnreachable
from bulletin_pipeline.netio import HIGH_WATER_BYTES
from bulletin_pipeline.settings import HttpSettings
from bulletin_pipeline.transport import Transport


class RawServer:
    """HTTP/1.1 keep-alive server on its own loop: `GET /size/N` answers N bytes, `/close` answers
    and then closes the connection, `/stall` never answers, `/cookie` sets a cookie. `heads`
    keeps every request's head."""

    def __init__(self) -> None:
        self.connections = 0
        self.closed = 0
        self.requests = 0
        self.heads: List[bytes] = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._serve, "127.0.0.1", 0), self.loop
        ).result()
        self.port = self.server.sockets[0].getsockname()[1]

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.requests += 1
                self.heads.append(head)
                path = head.split(b" ", 2)[1].decode()
                if path == "/stall":
                    await asyncio.sleep(3600)
                size = int(path.rsplit("/", 1)[1]) if "/size/" in path else 2  # origin-form or proxy absolute-form
                body = b"[" + b"7" * max(0, size - 2) + b"]"
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n")
                if path == "/cookie":
                    writer.write(b"Set-Cookie: wp_session=abc; Path=/\r\n")
                writer.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
                await writer.drain()
                if path == "/close":
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            self.closed += 1

    def close(self) -> None:
        async def shutdown() -> None:
            self.server.close()
            handlers = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in handlers:
                task.cancel()
            await asyncio.gather(*handlers, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture
def raw_server():
    server = RawServer()
    yield server
    server.close()


def transport(**http: object) -> Transport:
    settings = HttpSettings()
    settings.max_attempts = 2
    settings.backoff_initial = 0.01
    settings.backoff_max = 0.01
    for name, value in http.items():
        setattr(settings, name, value)
    return Transport(settings)


def fetch_all(t: Transport, urls: List[str]) -> List[bytes]:
    futures = [t.submit(url) for url in urls]
    return [future.result(timeout=30).content for future in futures]


def test_connections_are_reused_across_a_run(raw_server: RawServer):
    # httpcore 1.0 closes an idle connection whenever the pool holds more connections than
    # max_keepalive_connections (encode/httpcore#1000); the transport must not let that
    # turn every request into a new TCP connection
    t = transport(max_connections=8, max_keepalive_connections=2)
    try:
        bodies = fetch_all(t, [raw_server.url(f"/size/{1000 + i}") for i in range(120)])
    finally:
        t.close()
    assert [len(b) for b in bodies] == [1000 + i for i in range(120)]
    assert raw_server.requests == 120
    assert raw_server.connections <= 8


def test_a_connection_the_server_closed_while_idle_is_replaced(raw_server: RawServer):
    t = transport(max_connections=1)
    try:
        first = t.get(raw_server.url("/close"))
        # the server closes that connection without saying so (no `Connection: close`); once the
        # FIN has reached us, the pool must see the idle connection as dead and open another one
        # instead of sending the next request into it (which would cost a retry and its backoff)
        deadline = time.monotonic() + 5
        while raw_server.closed < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.05)  # the FIN crossing loopback
        second = t.get(raw_server.url("/size/10"))
    finally:
        t.close()
    assert first.content == b"[]" and len(second.content) == 10
    assert raw_server.connections == 2 and t.stats.retries == 0


def test_bodies_larger_than_the_read_ahead_limit_arrive_whole(raw_server: RawServer):
    size = 3 * HIGH_WATER_BYTES + 12345
    t = transport(max_connections=2)
    try:
        bodies = fetch_all(t, [raw_server.url(f"/size/{size}") for _ in range(3)])
    finally:
        t.close()
    assert all(len(body) == size and body.startswith(b"[7") and body.endswith(b"7]") for body in bodies)


def test_a_stalled_answer_times_out_and_is_retried_then_reported(raw_server: RawServer):
    t = transport(max_connections=2, total_timeout=0.3)
    try:
        with pytest.raises(WordPressUnreachable) as err:
            t.get(raw_server.url("/stall"))
    finally:
        t.close()
    assert "ReadTimeout" in str(err.value) and "after 2 attempt(s)" in str(err.value)
    assert raw_server.requests == 2


def test_a_refused_connection_is_a_connect_error():
    server = RawServer()
    url = server.url("/size/10")
    server.close()
    t = transport(max_connections=1)
    try:
        with pytest.raises(WordPressUnreachable) as err:
            t.get(url)
    finally:
        t.close()
    assert "ConnectError" in str(err.value)


def test_a_proxy_from_the_environment_is_honoured(monkeypatch: pytest.MonkeyPatch, raw_server: RawServer):
    # a client given an explicit transport ignores HTTP_PROXY; ours steps aside when one is set.
    # The "proxy" here is the raw server itself: it answers any request line, so a request for
    # an unreachable origin still gets its body when (and only when) it went through the proxy.
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{raw_server.port}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    t = transport(max_connections=1)
    try:
        answer = t.get("http://wordpress.invalid/size/5")
    finally:
        t.close()
    assert answer.content == b"[777]" and raw_server.requests == 1


def test_cookies_the_server_sets_are_sent_back(raw_server: RawServer):
    # responses without Set-Cookie skip httpx's cookie jar (transport._SetCookieOnly); one with it
    # must still reach the jar, as with httpx's own handling
    t = transport(max_connections=1)
    try:
        for path in ("/size/10", "/cookie", "/size/20"):
            t.submit(raw_server.url(path)).result(timeout=30)
    finally:
        t.close()
    cookies = [b"cookie: wp_session=abc" in head.lower() for head in raw_server.heads]
    assert cookies == [False, False, True]
