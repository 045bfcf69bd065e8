"""HTTP under dlt's RESTClient: httpx on its own event loop, retries, and digest workers.

`Transport` is a few httpx.AsyncClients on a private event-loop thread, shared by every
endpoint; dlt's (synchronous) extract threads call `get()` and `prefetch()`. Retries live here:
exponential backoff (5 s -> 60 s by default), `Retry-After` on 429/503, timeouts and resets.
httpx runs over our asyncio network backend (`netio.py`, httpcore's extension point), which
costs about half the CPU of its default anyio one for this traffic.

`prefetch(..., digest=spec)` on a large collection hands each fetched list page to a digest
process (`python -m bulletin_pipeline.worker`), which parses, validates and hashes it
(`digest.py`) while dlt's extract thread works on earlier pages. Why processes: parsing,
validating and hashing hold the GIL, and so do dlt's extract and the httpx loop; in one process
they take turns on one core. The workers import neither dlt, httpx nor pyarrow (~45 MB each) and
talk over pipes (`frames.py`); the parent builds the page's arrow table (~0.1 ms a page).
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import email.utils
import functools
import itertools
import logging
import os
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from typing import Any, Callable, Deque, Dict, Iterable, List, Optional, Tuple
from urllib.parse import urlsplit

import httpcore
import httpx

from .digest import DigestedPage, PageParts, assemble
from .errors import WordPressError, WordPressUnreachable
from .frames import oob, read_frame, widen_pipe, write_frame
from .netio import AsyncioBackend

log = logging.getLogger(__name__)

CONNECTIONS_PER_POOL = 10
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504, 507, 520, 521, 522, 523, 524})
MAX_RETRY_AFTER_SECONDS = 120.0

DigestSpec = Tuple[str, bool]
"""(endpoint, incremental): which schema validates a collection's pages (`digest.py`)."""


@dataclass
class RawResponse:
    url: str
    status: int
    headers: httpx.Headers
    content: bytes  # empty once digested: the body lives on in `digested.table`
    http_version: str
    attempts: int
    digested: Optional[DigestedPage] = None


@dataclass
class TransportStats:
    requests: int = 0
    retries: int = 0
    http_versions: Dict[str, int] = field(default_factory=dict)


class Transport:
    """One event loop, several small httpx pools; see the module docstring.

    `http` is an HttpSettings (or anything with its fields). `workers` > 0 lets `prefetch` hand
    list pages to that many digest workers (see `Digesters`).
    """

    def __init__(self, http: Any, workers: int = 0, start_digesters: bool = False) -> None:
        self.http = http
        self.workers = workers
        self.stats = TransportStats()
        self._pending: Dict[str, concurrent.futures.Future[RawResponse]] = {}
        self._digesters: Optional[Digesters] = None
        self._released: List[Digesters] = []
        self._lock = threading.Lock()
        self._closed = False
        if start_digesters:
            # first: a worker takes ~0.3 s to import pydantic and build validators, the longest
            # part of a run's start; the HTTP clients below are built meanwhile
            self.start_digesters()
        try:
            self._open()
        except BaseException:
            if self._digesters is not None:  # e.g. an unreadable CA bundle: no worker left behind
                self._digesters.close()
            raise

    def _open(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="wordpress-http", daemon=True)
        self._thread.start()
        # httpcore's pool rescans every connection for every queued request and every response it
        # completes (O(connections x requests) per event): one pool of 50 connections cost more CPU
        # than parsing the bodies (6.1 s vs 2.2 s for 400 pages of 500 KB, bench/). Several small
        # pools with the same total limit keep each scan short; a request goes to the least busy.
        shards = max(1, -(-self.http.max_connections // CONNECTIONS_PER_POOL))
        per_pool = -(-self.http.max_connections // shards)
        verify = self._ssl_verify()  # one SSL context for every pool: each costs ~50 ms to build
        self._clients: List[httpx.AsyncClient] = [self._run(self._make_client(per_pool, verify)) for _ in range(shards)]
        self._busy = [0] * shards
        self._semaphore: asyncio.Semaphore = self._run(self._make_semaphore())

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def _ssl_verify(self) -> Any:
        if not self.http.verify:
            return httpx.create_ssl_context()
        if str(self.http.verify).lower() == "false":
            return False
        return ssl.create_default_context(cafile=str(self.http.verify))

    async def _make_client(self, max_connections: int, verify: Any) -> httpx.AsyncClient:
        # Every connection stays open until the run ends (they all close then), whatever
        # max_keepalive_connections says: httpcore 1.0 compares that limit with *all* of a pool's
        # connections, not the idle ones (encode/httpcore#1000), so any value below the pool size
        # closed each connection after a single request (401 TCP connects for 401 pages).
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        client = httpx.AsyncClient(
            http2=self.http.http2,
            verify=verify,
            limits=limits,
            transport=_lean_transport(verify, limits, self.http.http2),
            timeout=httpx.Timeout(self.http.total_timeout, connect=self.http.connect_timeout),
            headers={"User-Agent": "bulletin-pipeline (dlt; +https://dlthub.com)", "Accept": "application/json"},
            follow_redirects=True,
        )
        client._cookies = _SetCookieOnly()  # the `cookies` setter would wrap it in a plain Cookies
        return client

    async def _make_semaphore(self) -> asyncio.Semaphore:
        return asyncio.Semaphore(self.http.max_connections)

    def submit(self, url: str, headers: Optional[Dict[str, str]] = None) -> concurrent.futures.Future[RawResponse]:
        """Fetch `url` on the loop (from any thread); the future holds the answer."""
        return asyncio.run_coroutine_threadsafe(self._fetch(url, headers), self._loop)

    def get(
        self, url: str, headers: Optional[Dict[str, str]] = None, digest: Optional[DigestSpec] = None
    ) -> RawResponse:
        """The answer for `url`: prefetched, or fetched now (and digested by a worker when `digest`
        is given and the workers run, so the extract thread never parses a page itself)."""
        with self._lock:
            future = self._pending.pop(url, None)
            if future is None:
                future = self.submit(url, headers)
                if digest is not None and self._digesters is not None:
                    future = self._digesters.digest(future, digest)
        return future.result()

    def prefetch(
        self, urls: Iterable[str], headers: Optional[Dict[str, str]] = None, digest: Optional[DigestSpec] = None
    ) -> None:
        """Start fetching `urls`; with `digest` (and workers), each page is fetched and digested
        by a worker process while the extract thread works on earlier ones."""
        with self._lock:
            for url in urls:
                if url in self._pending or self._closed:
                    continue
                fetching = self.submit(url, headers)
                if digest is not None and self.workers > 0:
                    fetching = self._start_digesters().digest(fetching, digest)
                self._pending[url] = fetching

    def when_answered(self, url: str, callback: Callable[[concurrent.futures.Future[RawResponse]], None]) -> None:
        """Call `callback(future)` once the prefetched answer for `url` is in (at once if it
        is; never if nothing is pending for `url`)."""
        with self._lock:
            future = self._pending.get(url)
        if future is not None:
            future.add_done_callback(callback)

    def _start_digesters(self) -> Digesters:
        if self._digesters is None:
            self._digesters = Digesters(self.workers)
        return self._digesters

    def start_digesters(self) -> None:
        """Start the digest workers now (~0.3 s, in parallel with dlt's setup) rather than when
        the first large listing shows up; afterwards every prefetched page goes to them."""
        if self.workers > 0:
            with self._lock:
                if not self._closed:
                    self._start_digesters()

    @property
    def digesting(self) -> bool:
        return self._digesters is not None

    def release_digesters(self) -> None:
        """No more pages to digest: the workers finish and exit now (`close` waits for them);
        anything asked for later is digested in the calling thread."""
        with self._lock:
            digesters, self._digesters = self._digesters, None
            self.workers = 0
            if digesters is not None:
                self._released.append(digesters)
        if digesters is not None:
            digesters.stop()

    def discard(self, urls: Iterable[str]) -> None:
        """Forget prefetched answers nobody will ask for (the listing ended earlier than planned)."""
        with self._lock:
            for url in urls:
                future = self._pending.pop(url, None)
                if future is not None:
                    future.cancel()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            pending, self._pending = list(self._pending.values()), {}
            digesters, self._digesters = self._digesters, None
            released, self._released = self._released, []
        for future in pending:
            future.cancel()
        try:
            for stopping in [digesters, *released]:
                if stopping is not None:
                    stopping.close()
            for client in self._clients:
                self._run(client.aclose())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)

    def backoff(self, attempt: int) -> float:
        """5 s, 10 s, 20 s, 40 s, 60 s with the defaults (the original's policy)."""
        return float(min(self.http.backoff_max, self.http.backoff_initial * 2 ** (attempt - 1)))

    async def _fetch(self, url: str, headers: Optional[Dict[str, str]]) -> RawResponse:
        attempts = max(1, self.http.max_attempts)
        for attempt in range(1, attempts + 1):
            try:
                async with self._semaphore:
                    shard = self._busy.index(min(self._busy))
                    self._busy[shard] += 1
                    try:
                        response = await self._clients[shard].get(url, headers=headers)
                    finally:
                        self._busy[shard] -= 1
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                if attempt == attempts:
                    raise _unreachable(url, exc, attempts) from exc
                self.stats.retries += 1
                log.info("GET %s failed (%s); retry %d/%d", url, _describe(exc), attempt, attempts - 1)
                await asyncio.sleep(self.backoff(attempt))
                continue
            self.stats.requests += 1
            version = response.http_version
            self.stats.http_versions[version] = self.stats.http_versions.get(version, 0) + 1
            if response.status_code in RETRY_STATUSES and attempt < attempts:
                self.stats.retries += 1
                delay = _retry_after(response) or self.backoff(attempt)
                log.info(
                    "GET %s answered %d; retry %d/%d in %.1fs", url, response.status_code, attempt, attempts - 1, delay
                )
                await asyncio.sleep(delay)
                continue
            return RawResponse(
                url=url,
                status=response.status_code,
                headers=response.headers,
                content=response.content,
                http_version=version,
                attempts=attempt,
            )
        raise AssertionError("unreachable")  # pragma: no cover


class _SetCookieOnly(httpx.Cookies):
    """httpx hands every response to http.cookiejar, through a copy of its headers as an
    email.message, to look for Set-Cookie (~0.3 ms a response here); answers without one, which
    is what WordPress gives anonymous REST reads, have nothing for the jar and skip that."""

    def extract_cookies(self, response: httpx.Response) -> None:
        headers = response.headers
        if "set-cookie" in headers or "set-cookie2" in headers:
            super().extract_cookies(response)


def _lean_transport(verify: Any, limits: httpx.Limits, http2: bool) -> Optional[httpx.AsyncHTTPTransport]:
    """httpx's own transport over our asyncio network backend (`netio.py`), or None (httpx's
    default) when the environment names a proxy: a client given a transport ignores proxies."""
    if urllib.request.getproxies():
        return None
    transport = httpx.AsyncHTTPTransport(verify=verify, limits=limits, http2=http2)
    # httpx has no parameter for httpcore's network backend; its transport is a thin wrapper
    # (exception mapping) around this one pool, which we build as httpx does, plus the backend
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=httpx.create_ssl_context(verify=verify),
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        http1=True,
        http2=http2,
        network_backend=AsyncioBackend(),
    )
    return transport


def is_list_page(raw: RawResponse) -> bool:
    """A 200 whose body starts a JSON array: what `digest_page` takes."""
    return raw.status == 200 and raw.content.lstrip()[:1] == b"["


class WorkerProcess:
    """The parent's end of one digest process (`worker.py`): pages go out through a writer
    thread, answers come back by key through a reader thread, which resolves their futures."""

    def __init__(self, name: str) -> None:
        package_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
        self.process = subprocess.Popen(
            # -P: the package comes from PYTHONPATH (this one), never from a folder of the same
            # name in the current directory, which `-m` would otherwise put first
            [sys.executable, "-P", "-m", "bulletin_pipeline.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
        for stream in (self.process.stdin, self.process.stdout):
            widen_pipe(stream)
        self.outstanding = 0
        self._keys = itertools.count()
        self._futures: Dict[int, concurrent.futures.Future[Any]] = {}
        self._outbox: Deque[Any] = collections.deque()
        self._stopping = False
        self._cond = threading.Condition()
        self._writer = threading.Thread(target=self._write_loop, name=f"{name}-out", daemon=True)
        self._reader = threading.Thread(target=self._read_loop, name=f"{name}-in", daemon=True)
        self._writer.start()
        self._reader.start()

    def request(self, *payload: Any) -> concurrent.futures.Future[Any]:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        with self._cond:
            if self._stopping:
                future.set_exception(WordPressError("a page reached a digest worker after it was stopped"))
                return future
            key = next(self._keys)
            self._futures[key] = future
            self.outstanding += 1
            self._outbox.append((key, *payload))
            self._cond.notify()
        return future

    def _write_loop(self) -> None:
        stdin = self.process.stdin
        assert stdin is not None
        while True:
            with self._cond:
                while not self._outbox:
                    self._cond.wait()
                message = self._outbox.popleft()
            try:
                if message is None:
                    stdin.close()
                    return
                write_frame(stdin, message)
            except (OSError, ValueError):
                return  # the worker is gone; the reader fails what is outstanding

    def _read_loop(self) -> None:
        stdout = self.process.stdout
        assert stdout is not None
        while True:
            try:
                kind, key, answer = read_frame(stdout)
            except (EOFError, OSError, ValueError):
                break
            with self._cond:
                future = self._futures.pop(key, None)
                self.outstanding -= 1
            if future is None or future.cancelled():
                continue  # discarded while in flight
            if kind == "ok":
                future.set_result(answer)
            else:
                future.set_exception(WordPressError(answer))
        code = self.process.wait()
        with self._cond:
            lost, self._futures = list(self._futures.values()), {}
        for future in lost:
            if not future.done():
                future.set_exception(WordPressError(f"a helper process exited (code {code}) before answering"))

    def stop(self) -> None:
        """Ask the worker to exit: pages not yet sent are dropped (their futures were cancelled
        or the run is over), the one it is digesting is finished."""
        with self._cond:
            self._stopping = True
            self._outbox.clear()
            self._outbox.append(None)
            self._cond.notify()

    def close(self, timeout: float = 30.0) -> None:
        """`stop`, and wait until the worker has exited."""
        self.stop()
        self._writer.join(timeout)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._reader.join(timeout)


class Digesters:
    """Digest processes (`worker.py`), started on first use; a page goes to the least busy.

    Only parsing moves out, not fetching: a process that both fetches and parses spends ~1.5x the
    CPU of the two jobs done apart (6.5 s vs 2.0 s + 2.3 s for 400 pages of 500 KB, allocator and
    cache churn), and a fetching helper would hold its own buffers and connection pools (+50 MB).
    """

    def __init__(self, count: int) -> None:
        self.workers = [WorkerProcess(f"digest-worker-{i}") for i in range(count)]

    def digest(
        self, fetching: concurrent.futures.Future[RawResponse], spec: DigestSpec
    ) -> concurrent.futures.Future[RawResponse]:
        """The fetched page, digested (`RawResponse.digested`) when it is a list page."""
        result: concurrent.futures.Future[RawResponse] = concurrent.futures.Future()

        def fetched(future: concurrent.futures.Future[RawResponse]) -> None:
            if result.cancelled():
                return  # discarded: the listing ended before this window
            error = future.exception()
            if error is not None:
                result.set_exception(error)
                return
            raw = future.result()
            if not is_list_page(raw):
                result.set_result(raw)  # errors, HTML...: check_response reports them
                return
            worker = min(self.workers, key=lambda w: w.outstanding)
            worker.request(oob(raw.content), *spec).add_done_callback(functools.partial(digested, raw))

        def digested(raw: RawResponse, future: concurrent.futures.Future[Any]) -> None:
            if result.cancelled():
                return
            error = future.exception()
            if error is not None:
                result.set_exception(error)
                return
            raw.digested = assemble(PageParts(*future.result()))
            raw.content = b""  # the body lives on in the page's table
            result.set_result(raw)

        def failing_into_result(callback: Any) -> Any:
            # concurrent.futures logs and swallows what a done-callback raises: the extract
            # thread, waiting on `result`, would then wait forever
            def guarded(*args: Any) -> None:
                try:
                    callback(*args)
                except Exception as exc:  # noqa: BLE001 - handed to the waiting thread
                    if not result.done():
                        result.set_exception(exc)

            return guarded

        fetched, digested = failing_into_result(fetched), failing_into_result(digested)
        fetching.add_done_callback(fetched)
        return result

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()

    def close(self) -> None:
        for worker in self.workers:
            worker.close()


def _retry_after(response: httpx.Response) -> Optional[float]:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        if parsed is None:
            return None
        seconds = parsed.timestamp() - time.time()
    return max(0.0, min(seconds, MAX_RETRY_AFTER_SECONDS))


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _unreachable(url: str, exc: BaseException, attempts: int) -> WordPressUnreachable:
    host = urlsplit(url).netloc
    return WordPressUnreachable(
        f"cannot reach {host}: {_describe(exc)} (after {attempts} attempt(s), GET {url}); "
        "check base_url and that the site is up",
        url=url,
    )
