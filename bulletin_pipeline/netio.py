"""A lean asyncio network backend for httpcore (httpx's engine), at httpcore's extension point.

httpx on asyncio goes through anyio by default, which for every read re-arms the socket in the
selector (pause_reading/resume_reading: two epoll_ctl calls), hands data out in 64 KB pieces of
what the kernel gave in up to 256 KB, and answers httpcore's per-event "is this idle connection
readable?" (asked for every connection of a pool each time any request moves) by rebuilding a
dict of socket attributes and polling the socket. For a load made of a few hundred ~500 KB bodies
that was about a third of the HTTP loop's CPU. Here a plain `asyncio.Protocol` buffers what
arrives and `read()` hands over everything buffered at once; readability of an idle connection
is "the server sent something or closed", which the protocol mostly knows already (one poll of
the socket covers what the kernel holds and the loop has not read yet).

Timeouts, TLS (`loop.start_tls`, so HTTP/2 is negotiated by ALPN as before) and errors map to
httpcore's exceptions, which httpx maps to its own, so retries see exactly what they saw before.
"""

from __future__ import annotations

import asyncio
import collections
import select
import ssl
from typing import Any, Deque, Iterable, Optional

import httpcore

# Stop reading from the socket while this much is buffered and unread (back-pressure on a
# consumer that does not keep up); the kernel's receive buffer then fills and TCP slows the server.
HIGH_WATER_BYTES = 4 << 20


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: Optional[asyncio.Transport] = None
        self.chunks: Deque[bytes] = collections.deque()
        self.buffered = 0
        self.eof = False
        self.error: Optional[BaseException] = None
        self.reading_paused = False
        self.writing_paused = False
        self._read_waiter: Optional[asyncio.Future[None]] = None
        self._drain_waiter: Optional[asyncio.Future[None]] = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.chunks.append(data)
        self.buffered += len(data)
        if self.buffered > HIGH_WATER_BYTES and not self.reading_paused and self.transport is not None:
            self.reading_paused = True
            self.transport.pause_reading()
        self._wake_reader()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake_reader()
        return False  # close our side too: HTTP never half-closes

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        self.eof = True
        self.error = exc
        self._wake_reader()
        self._wake_writer()

    def pause_writing(self) -> None:
        self.writing_paused = True

    def resume_writing(self) -> None:
        self.writing_paused = False
        self._wake_writer()

    def _wake_reader(self) -> None:
        waiter, self._read_waiter = self._read_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _wake_writer(self) -> None:
        waiter, self._drain_waiter = self._drain_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait_readable(self, timeout: Optional[float]) -> None:
        loop = asyncio.get_running_loop()
        waiter = self._read_waiter = loop.create_future()
        await _wait(waiter, timeout, httpcore.ReadTimeout)

    async def wait_drained(self, timeout: Optional[float]) -> None:
        loop = asyncio.get_running_loop()
        waiter = self._drain_waiter = loop.create_future()
        await _wait(waiter, timeout, httpcore.WriteTimeout)


async def _wait(waiter: asyncio.Future[None], timeout: Optional[float], on_timeout: type) -> None:
    # a timer cancelling the future is much cheaper than asyncio.wait_for's extra task
    if timeout is None:
        await waiter
        return
    expired = []

    def expire() -> None:
        expired.append(True)
        waiter.cancel()

    timer = asyncio.get_running_loop().call_later(timeout, expire)
    try:
        await waiter
    except asyncio.CancelledError:
        if expired:
            raise on_timeout(f"timed out after {timeout} s") from None
        raise  # the request itself was cancelled
    finally:
        timer.cancel()


def _socket_readable(sock: Any) -> bool:
    fd = sock.fileno() if sock is not None else -1
    if fd < 0:
        return True  # closed: as good as readable (the next read would return b"")
    if getattr(select, "poll", None) is None:  # pragma: no cover - Windows
        return bool(select.select([fd], [], [], 0)[0])
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


class AsyncioStream(httpcore.AsyncNetworkStream):
    def __init__(self, transport: asyncio.Transport, protocol: _Protocol) -> None:
        self._transport = transport
        self._protocol = protocol

    async def read(self, max_bytes: int, timeout: Optional[float] = None) -> bytes:
        # Returns everything buffered, which may exceed max_bytes (httpcore's 64 KB): both of
        # httpcore's callers feed the bytes to a parser (h11, h2) that takes any amount, and each
        # call into it has a fixed Python cost, so fewer, larger reads are cheaper.
        protocol = self._protocol
        if not protocol.chunks and not protocol.eof:
            await protocol.wait_readable(timeout)
        if protocol.chunks:
            chunks = protocol.chunks
            data = chunks.popleft() if len(chunks) == 1 else b"".join(chunks)
            chunks.clear()
            protocol.buffered = 0
            if protocol.reading_paused:
                protocol.reading_paused = False
                self._transport.resume_reading()
            return data
        if protocol.error is not None:
            raise httpcore.ReadError(str(protocol.error) or type(protocol.error).__name__)
        return b""

    async def write(self, buffer: bytes, timeout: Optional[float] = None) -> None:
        if not buffer:
            return
        if self._transport.is_closing():
            error = self._protocol.error
            raise httpcore.WriteError(str(error) if error else "connection closed")
        self._transport.write(buffer)
        if self._protocol.writing_paused:
            await self._protocol.wait_drained(timeout)

    async def aclose(self) -> None:
        self._transport.close()

    async def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: Optional[str] = None, timeout: Optional[float] = None
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            transport = await loop.start_tls(
                self._transport,
                self._protocol,
                ssl_context,
                server_hostname=server_hostname,
                ssl_handshake_timeout=timeout,
            )
        except TimeoutError as exc:
            self._transport.close()
            raise httpcore.ConnectTimeout(str(exc) or "TLS handshake timed out") from exc
        except (OSError, ssl.SSLError, ConnectionError) as exc:
            self._transport.close()
            raise httpcore.ConnectError(str(exc)) from exc
        if transport is None:  # pragma: no cover - the connection closed during the handshake
            raise httpcore.ConnectError("connection closed during the TLS handshake")
        self._protocol.transport = transport
        return AsyncioStream(transport, self._protocol)

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":
            # asked of idle keep-alive connections: data or EOF there means the server is done
            # with it. The protocol knows what the loop has read; a FIN the kernel holds but the
            # loop has not yet seen is caught by polling the socket, as httpcore's own backends do
            protocol = self._protocol
            return bool(protocol.chunks) or protocol.eof or _socket_readable(self._transport.get_extra_info("socket"))
        if info == "ssl_object":
            return self._transport.get_extra_info("ssl_object")
        if info == "client_addr":
            return self._transport.get_extra_info("sockname")
        if info == "server_addr":
            return self._transport.get_extra_info("peername")
        if info == "socket":
            return self._transport.get_extra_info("socket")
        return None


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: Optional[float] = None,
        local_address: Optional[str] = None,
        socket_options: Optional[Iterable[Any]] = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        protocol = _Protocol()
        try:
            transport, _ = await asyncio.wait_for(
                loop.create_connection(
                    lambda: protocol, host, port, local_addr=(local_address, 0) if local_address else None
                ),
                timeout,
            )
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"connecting to {host}:{port} timed out") from exc
        except OSError as exc:
            raise httpcore.ConnectError(str(exc)) from exc
        sock = transport.get_extra_info("socket")  # asyncio has set TCP_NODELAY already
        for option in socket_options or ():
            sock.setsockopt(*option)
        return AsyncioStream(transport, protocol)  # type: ignore[arg-type]

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
