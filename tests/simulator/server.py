"""Run the simulator over real HTTP: hypercorn in a background thread (or the main thread).

Why a thread of the current process: tests mutate the ``Site`` while the pipeline is fetching
from it, and a thread shares the site with no IPC. Why hypercorn: it speaks HTTP/1.1 and, over
TLS with ALPN, HTTP/2 — the pipeline's production transport — from one small dependency.

The listening socket is bound here (port 0 → a free port) and handed to hypercorn as
``fd://N``, so ``base_url`` is known before ``start()`` returns and the port is released by
``stop()``. TLS uses a throw-away ``trustme`` CA whose certificate is written to
``ca_cert_path`` for clients to verify against.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import socket
import tempfile
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any, cast

from hypercorn.asyncio import serve
from hypercorn.config import Config

from .app import SimulatorApp
from .controls import BeforeRequest, Controls, Fault, LoggedRequest, ServerStats
from .site import Site

_HYPERCORN_LOG = logging.getLogger("tests.simulator.hypercorn")


class SimulatorServer:
    """A WordPress REST API for ``site`` on ``host:port`` (0 = any free port).

    Use as ``with SimulatorServer(site) as srv: httpx.get(srv.base_url + "pages")``.
    ``latency``, ``max_concurrency``, ``workers`` and ``service_time``: see ``app.py``.
    """

    def __init__(
        self,
        site: Site,
        host: str = "127.0.0.1",
        port: int = 0,
        latency: float = 0.0,
        tls: bool = False,
        max_concurrency: int | None = None,
        shuffle_ties: bool = False,
        workers: int | None = None,
        service_time: float = 0.0,
        stats_path: str | None = None,
    ) -> None:
        self.site = site
        self.host = host
        self.tls = tls
        self.controls = Controls()
        self.app = SimulatorApp(
            site,
            self.controls,
            latency=latency,
            max_concurrency=max_concurrency,
            workers=workers,
            service_time=service_time,
            shuffle_ties=shuffle_ties,
            stats_path=stats_path,
        )
        self._requested_port = port
        self.port: int | None = None
        self.ca_cert_path: str | None = None
        self._tmpdir: str | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._shutdown: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._fd: int | None = None

    # -- addresses -------------------------------------------------------------------------------
    @property
    def origin(self) -> str:
        """``scheme://host:port`` — what WordPress calls the home URL."""
        if self.port is None:
            raise RuntimeError("the server is not started")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        if ":" in host:
            host = f"[{host}]"
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The REST namespace root, e.g. ``http://127.0.0.1:PORT/wp-json/wp/v2/``."""
        return f"{self.origin}/wp-json/wp/v2/"

    # -- knobs -----------------------------------------------------------------------------------
    @property
    def latency(self) -> float:
        return self.app.latency

    @latency.setter
    def latency(self, seconds: float) -> None:
        self.app.latency = seconds

    @property
    def shuffle_ties(self) -> bool:
        return self.app.shuffle_ties

    @shuffle_ties.setter
    def shuffle_ties(self, value: bool) -> None:
        self.app.shuffle_ties = value

    @property
    def before_request(self) -> BeforeRequest | None:
        """``callable(collection, params)`` run in the server thread before each list response."""
        return self.controls.before_request

    @before_request.setter
    def before_request(self, hook: BeforeRequest | None) -> None:
        self.controls.before_request = hook

    @property
    def hook_errors(self) -> list[BaseException]:
        """Exceptions raised by ``before_request`` (each turned into a 500 for the client)."""
        return self.controls.hook_errors

    @property
    def stats(self) -> ServerStats:
        return self.controls.stats()

    @property
    def request_log(self) -> list[LoggedRequest]:
        return self.controls.request_log()

    def reset_stats(self) -> None:
        self.controls.reset_stats()

    def inject(
        self,
        status: int | None = 503,
        count: int = 1,
        collection: str | None = None,
        retry_after: float | str | None = None,
        body: str | bytes | dict[str, Any] | list[Any] | None = None,
        content_type: str | None = None,
        reset: bool = False,
        delay: float | None = None,
    ) -> None:
        """Make the next ``count`` requests (to ``collection``, or any) fail this way.

        ``reset=True`` drops the TCP connection without a response; ``delay`` waits first
        (with ``status=None`` it then answers normally, i.e. a slow response).
        """
        self.controls.inject(Fault(status, count, collection, retry_after, body, content_type, reset, delay))

    def clear_faults(self) -> None:
        self.controls.clear_faults()

    # -- lifecycle -------------------------------------------------------------------------------
    def _bind(self) -> None:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.bind((self.host, self._requested_port))
            sock.listen(1024)
        except BaseException:
            sock.close()
            raise
        self.port = sock.getsockname()[1]
        self.app.origin = self.origin
        self._fd = sock.detach()  # hypercorn owns the descriptor from here on

    def _config(self) -> Config:
        config = Config()
        config.bind = [f"fd://{self._fd}"]
        config.errorlog = _HYPERCORN_LOG
        config.accesslog = None
        config.backlog = 1024
        config.graceful_timeout = 1.0
        config.keep_alive_timeout = 30.0
        config.include_server_header = False
        if self.tls:
            import trustme  # only needed for TLS

            self._tmpdir = tempfile.mkdtemp(prefix="wpsim-tls-")
            ca = trustme.CA()
            cert = ca.issue_cert("127.0.0.1", "localhost", "::1")
            self.ca_cert_path = os.path.join(self._tmpdir, "ca.pem")
            ca.cert_pem.write_to_path(self.ca_cert_path)
            certfile = os.path.join(self._tmpdir, "server.pem")
            keyfile = os.path.join(self._tmpdir, "server.key")
            with open(certfile, "wb") as fh:
                for blob in cert.cert_chain_pems:
                    fh.write(blob.bytes())
            cert.private_key_pem.write_to_path(keyfile)
            config.certfile = certfile
            config.keyfile = keyfile
            config.alpn_protocols = ["h2", "http/1.1"]
        return config

    async def _main(self, on_ready: Callable[[], None] | None = None, signals: bool = False) -> None:
        self._loop = asyncio.get_running_loop()
        self._shutdown = asyncio.Event()
        if signals:
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._loop.add_signal_handler(sig, self._shutdown.set)
        self.app.on_startup = on_ready
        config = self._config()
        self._fd = None  # hypercorn wraps (and later closes) it
        await serve(cast(Any, self.app), config, shutdown_trigger=self._shutdown.wait)

    def start(self, timeout: float = 10.0) -> SimulatorServer:
        """Bind, start serving in a daemon thread, and return once requests are accepted."""
        if self._thread is not None:
            raise RuntimeError("already started")
        self._bind()
        ready = threading.Event()

        def run() -> None:
            try:
                asyncio.run(self._main(on_ready=ready.set))
            except BaseException as exc:  # noqa: BLE001 - handed to start(), which raises it
                self._error = exc
            finally:
                ready.set()

        self._thread = threading.Thread(target=run, name=f"wp-simulator-{self.port}", daemon=True)
        self._thread.start()
        if not ready.wait(timeout) or self._error is not None:
            self.stop()
            raise RuntimeError(f"simulator failed to start: {self._error!r}")
        return self

    def serve_forever(self, on_ready: Callable[[], None] | None = None) -> None:
        """Serve in the calling (main) thread until SIGINT or SIGTERM."""
        if self.port is None:
            self._bind()
        try:
            asyncio.run(self._main(on_ready=on_ready, signals=True))
        finally:
            self._cleanup()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving, close every connection and release the port. Safe to call twice."""
        loop, shutdown, thread = self._loop, self._shutdown, self._thread
        if loop is not None and shutdown is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(shutdown.set)
            except RuntimeError:  # loop already closed
                pass
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                raise RuntimeError("simulator thread did not stop")
        self._thread = None
        self._loop = None
        self._cleanup()

    def _cleanup(self) -> None:
        if self._fd is not None:  # bound but never handed over
            os.close(self._fd)
            self._fd = None
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
