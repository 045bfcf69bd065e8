"""The raw ASGI application: WordPress's routes, headers and errors over a ``Site``.

No web framework on purpose: the app is a few routes, and owning the bytes lets it answer with
exactly WordPress's headers (``X-WP-Total``, ``Link``) and bodies (PHP-style JSON) and assemble
list responses by joining cached record bytes, which is what makes it fast enough for the
benchmark (hundreds of ~0.5-1.5 MB responses under 50 concurrent clients).

Three ways to slow it down, combinable:

* ``latency``: seconds added to every request, holding nothing (the network; any number of
  requests wait it out at once).
* ``max_concurrency``: at most N requests inside the app at once, latency and sending included;
  the rest wait their turn (never rejected).
* ``workers`` + ``service_time``: the capacity profile of a PHP site (PHP-FPM or
  ``php -S`` with ``PHP_CLI_SERVER_WORKERS``): at most ``workers`` requests in service at once,
  each holding its worker for ``service_time`` seconds plus the time to build its answer; the
  rest queue in arrival order, never rejected; the answer is sent after the worker is free
  (a web server buffers it, as nginx does for PHP-FPM).

``stats_path`` (e.g. ``/__stats``, outside ``/wp-json``) answers the server's counters as JSON
(``?reset=1`` zeroes them after answering); only the benchmark asks for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import re
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from datetime import datetime
from http import HTTPStatus
from typing import Any
from urllib.parse import quote

from . import records as R
from .controls import Controls, Fault
from .query import (
    Params,
    WPError,
    page_link,
    parse_list_query,
    parse_query_string,
    rest_no_route,
    run_item,
    run_list,
)
from .site import Site

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

log = logging.getLogger(__name__)

# any rest_base, as WordPress registers it (the path arrives percent-decoded)
_ITEM_ROUTE = re.compile(r"^/wp/v2/(?P<collection>[^/]+)(?:/(?P<id>\d+))?$")
_JSON = b"application/json; charset=UTF-8"
_HTML = b"text/html; charset=UTF-8"
_REST_HEADERS = [
    (b"x-robots-tag", b"noindex"),
    (b"x-content-type-options", b"nosniff"),
    (b"access-control-expose-headers", b"X-WP-Total, X-WP-TotalPages, Link"),
    (b"access-control-allow-headers", b"Authorization, X-WP-Nonce, Content-Disposition, Content-MD5, Content-Type"),
    (b"vary", b"Origin"),
]
_CRITICAL = (
    '<p>There has been a critical error on this website.</p><p><a href="https://wordpress.org/'
    'documentation/article/faq-troubleshooting/">Learn more about troubleshooting WordPress.</a></p>'
)


class SimulatorApp:
    """ASGI app serving ``/wp-json/wp/v2/...`` for ``site`` like WordPress 6.1 does anonymously."""

    def __init__(
        self,
        site: Site,
        controls: Controls | None = None,
        *,
        latency: float = 0.0,
        max_concurrency: int | None = None,
        workers: int | None = None,
        service_time: float = 0.0,
        shuffle_ties: bool = False,
        origin: str = "http://127.0.0.1",
        stats_path: str | None = None,
    ) -> None:
        self.site = site
        self.controls = controls or Controls()
        self.latency = latency
        self.max_concurrency = max_concurrency
        self.workers = workers
        self.service_time = service_time
        self.shuffle_ties = shuffle_ties
        self.origin = origin
        self.stats_path = stats_path
        self.on_startup: Callable[[], None] | None = None
        self._rng = random.Random()
        self._semaphore: asyncio.Semaphore | None = None
        self._workers: asyncio.Semaphore | None = None

    # -- ASGI entry ------------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        params = parse_query_string(scope["query_string"].decode("latin-1"))
        if self.stats_path is not None and path == self.stats_path:
            await self._stats(send, reset=params.get("reset") == "1")
            return
        controls = self.controls
        controls.begin(path, scope.get("http_version", "1.1"))
        noted: list[int] = []

        def note(status: int) -> None:
            noted.append(status)
            controls.record(path, _loggable(params), status)

        sent = 0
        try:
            if self.max_concurrency:
                if self._semaphore is None:
                    self._semaphore = asyncio.Semaphore(self.max_concurrency)
                async with self._semaphore:
                    sent = await self._serve(scope, receive, send, path, params, note)
            else:
                sent = await self._serve(scope, receive, send, path, params, note)
        finally:
            if not noted:  # crashed before answering: hypercorn sends a 500
                note(500)
            controls.end(sent)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if self.on_startup is not None:
                    self.on_startup()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _serve(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        path: str,
        params: Params,
        note: Callable[[int], None],
    ) -> int:
        """Answer one request; returns the number of body bytes sent."""
        async with self._in_service():
            answer = await self._answer(scope, receive, send, path, params, note)
        if isinstance(answer, int):  # a fault answered (or reset) already
            return answer
        status, headers, body = answer
        return await _respond(send, status, headers, body, note)

    @contextlib.asynccontextmanager
    async def _in_service(self) -> AsyncIterator[None]:
        """Wait out ``latency``; with ``workers``, wait in line for one and hold it for
        ``service_time`` and the answer. "In service" (``peak_active``) is what holds a slot."""
        workers = None
        if self.workers:
            if self._workers is None:
                self._workers = asyncio.Semaphore(self.workers)
            workers = self._workers
            if self.latency:  # the network: holds no worker
                await asyncio.sleep(self.latency)
            await workers.acquire()  # asyncio's semaphore serves waiters first come, first served
        self.controls.activate(1)
        try:
            if self.latency and workers is None:  # inside a max_concurrency slot, if any
                await asyncio.sleep(self.latency)
            if self.service_time:
                await asyncio.sleep(self.service_time)
            yield
        finally:
            self.controls.activate(-1)
            if workers is not None:
                workers.release()

    async def _answer(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        path: str,
        params: Params,
        note: Callable[[int], None],
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes] | int:
        """The response to send, or the bytes a fault already sent."""
        route = self._route(path, params)
        kind, collection = route[0], route[1]
        if kind == "list" and scope["method"] in ("GET", "HEAD"):
            hook = self.controls.before_request
            if hook is not None:
                try:
                    hook(collection or "", _loggable(params))
                except Exception as exc:  # surfaced to the test via hook_errors
                    log.exception("before_request hook failed")
                    self.controls.hook_errors.append(exc)
                    body = R.dumps(
                        {
                            "code": "internal_server_error",
                            "message": _CRITICAL,
                            "data": {"status": 500},
                            "additional_errors": [],
                        }
                    )
                    return 500, self._rest_headers(), body
        fault = self.controls.take_fault(collection)
        if fault is not None:
            answered = await self._fault(fault, scope, receive, send, note)
            if answered is not None:
                return answered
        return self._handle(scope["method"], route, params)

    async def _stats(self, send: Send, reset: bool) -> None:
        """The counters the benchmark reads: requests, peak in flight (queued included), statuses."""
        s = self.controls.stats()
        body = json.dumps(
            {
                "requests": s.requests,
                "peak_in_flight": s.peak_concurrency,
                "peak_in_service": s.peak_active,
                "in_flight": s.in_flight,
                "statuses": {str(k): v for k, v in sorted(s.statuses.items())},
                "rejected": s.statuses[429] + s.statuses[503],
                "http_versions": dict(s.http_versions),
                "bytes_sent": s.bytes_sent,
            }
        ).encode()
        if reset:
            self.controls.reset_stats()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    # -- routing ---------------------------------------------------------------------------------
    def _route(self, path: str, params: Params) -> tuple[str, str | None, int | None]:
        """("html"|"index"|"namespace"|"list"|"item"|"none", collection, id)."""
        if path in ("", "/") and isinstance(params.get("rest_route"), str):
            rest = str(params["rest_route"])
        elif path == "/wp-json" or path.startswith("/wp-json/"):
            rest = path[len("/wp-json") :]
        else:
            return ("html", None, None)
        rest = rest.rstrip("/") or "/"
        if rest == "/":
            return ("index", None, None)
        if rest.lower() == "/wp/v2":
            return ("namespace", None, None)
        m = _ITEM_ROUTE.match(rest)
        if m and self.site.has_collection(m["collection"].lower()):
            collection = m["collection"].lower()
            if m["id"] is None:
                return ("list", collection, None)
            return ("item", collection, int(m["id"]))
        return ("none", None, None)

    def _handle(
        self, method: str, route: tuple[str, str | None, int | None], params: Params
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        kind, collection, item_id = route
        if kind == "html":
            return 200, self._html_headers(), self._html_page()
        headers = self._rest_headers()
        try:
            if method not in ("GET", "HEAD"):
                raise _write_error(kind, method)
            if kind == "index":
                return 200, headers + self._api_link(), self._index()
            if kind == "namespace":
                return 200, headers + self._api_link(), self._namespace()
            if kind == "none" or collection is None:
                raise rest_no_route()
            spec = self.site.spec(collection)
            if kind == "item" and item_id is not None:
                item = run_item(self.site, spec, item_id, params, self.origin)
                body = R.assemble([item], array=False)
                return 200, headers + [(b"allow", b"GET")] + self._api_link(), body
            q = parse_list_query(self.site, spec, params)
            result = run_list(self.site, spec, q, self.origin, self._rng if self.shuffle_ties else None)
        except WPError as err:
            return err.status, headers + self._api_link(), err.body()
        body = R.assemble(result.items)
        headers += [
            (b"x-wp-total", str(result.total).encode()),
            (b"x-wp-totalpages", str(result.total_pages).encode()),
        ]
        base = f"{self.origin}/wp-json/wp/v2/{quote(collection)}"
        links = []
        if result.page > 1:
            prev_page = min(result.page - 1, result.total_pages)
            links.append(f'<{page_link(base, params, prev_page)}>; rel="prev"')
        if result.total_pages > result.page:
            links.append(f'<{page_link(base, params, result.page + 1)}>; rel="next"')
        if links:
            headers.append((b"link", ", ".join(links).encode("ascii")))
        else:
            headers += self._api_link()
        headers.append((b"allow", b"GET"))
        return 200, headers, body

    # -- faults ----------------------------------------------------------------------------------
    async def _fault(
        self, fault: Fault, scope: Scope, receive: Receive, send: Send, note: Callable[[int], None]
    ) -> int | None:
        if fault.delay:
            await asyncio.sleep(fault.delay)
        if fault.reset:
            note(0)
            if _abort_connection(scope):
                await _wait_disconnect(receive)
                return 0
            # Fallback: promise a body and break off half-way; the client sees a broken response.
            start = {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"100000")]}
            await send(start)
            await send({"type": "http.response.body", "body": b"[", "more_body": True})
            raise ConnectionAbortedError("simulated reset")
        if fault.status is None:
            return None
        body = fault.body
        content_type = fault.content_type
        if body is None:
            reason = HTTPStatus(fault.status).phrase if fault.status in HTTPStatus._value2member_map_ else ""
            body = (
                f"<!DOCTYPE html>\n<html><head><title>{fault.status} {reason}</title></head>"
                f"<body><h1>{reason or 'Error'}</h1><p>The server is temporarily unable to "
                "service your request. Please try again later.</p></body></html>\n"
            )
        if isinstance(body, (dict, list)):
            raw = R.dumps(body)
            content_type = content_type or "application/json; charset=UTF-8"
        else:
            raw = body.encode("utf-8") if isinstance(body, str) else body
            content_type = content_type or "text/html; charset=UTF-8"
        headers = [(b"content-type", content_type.encode("latin-1"))]
        if fault.retry_after is not None:
            headers.append((b"retry-after", str(fault.retry_after).encode("latin-1")))
        return await _respond(send, fault.status, headers, raw, note)

    # -- fixed documents -------------------------------------------------------------------------
    def _rest_headers(self) -> list[tuple[bytes, bytes]]:
        return [(b"content-type", _JSON), *_REST_HEADERS]

    def _api_link(self) -> list[tuple[bytes, bytes]]:
        return [(b"link", f'<{self.origin}/wp-json/>; rel="https://api.w.org/"'.encode("ascii"))]

    def _html_headers(self) -> list[tuple[bytes, bytes]]:
        return [(b"content-type", _HTML), *self._api_link()]

    def _html_page(self) -> bytes:
        o = self.origin
        return (
            '<!DOCTYPE html>\n<html lang="en-US">\n<head>\n<meta charset="UTF-8" />\n'
            "<title>Bulletin &#8211; Course Catalog</title>\n"
            f'<link rel="https://api.w.org/" href="{o}/wp-json/" />\n'
            f"<link rel='stylesheet' href='{o}/wp-content/themes/bulletin/style.css' />\n"
            '</head>\n<body class="home page-template-default page">\n'
            '<header class="site-header"><h1 class="site-title">Bulletin</h1></header>\n'
            '<main id="main"><p>Welcome to the course catalog.</p></main>\n'
            "</body>\n</html>\n"
        ).encode()

    def _routes(self) -> dict[str, Any]:
        o = self.origin
        routes: dict[str, Any] = {
            "/wp/v2": {
                "namespace": "wp/v2",
                "methods": ["GET"],
                "endpoints": [{"methods": ["GET"], "args": {}}],
                "_links": {"self": [{"href": f"{o}/wp-json/wp/v2"}]},
            }
        }
        for name in self.site.collections:
            routes[f"/wp/v2/{name}"] = {
                "namespace": "wp/v2",
                "methods": ["GET", "POST"],
                "endpoints": [{"methods": ["GET"], "args": {}}, {"methods": ["POST"], "args": {}}],
                "_links": {"self": [{"href": f"{o}/wp-json/wp/v2/{name}"}]},
            }
            routes[f"/wp/v2/{name}/(?P<id>[\\d]+)"] = {
                "namespace": "wp/v2",
                "methods": ["GET", "POST", "PUT", "PATCH", "DELETE"],
                "endpoints": [{"methods": ["GET"], "args": {}}],
            }
        return routes

    def _index(self) -> bytes:
        o = self.origin
        offset = datetime.now(self.site.tz).utcoffset()
        hours = offset.total_seconds() / 3600 if offset is not None else 0
        return R.dumps(
            {
                "name": "Bulletin",
                "description": "Course Catalog",
                "url": o,
                "home": o,
                "gmt_offset": int(hours) if hours == int(hours) else hours,
                "timezone_string": self.site.timezone,
                "namespaces": ["oembed/1.0", "wp/v2", "wp-site-health/v1", "wp-block-editor/v1"],
                "authentication": [],
                "routes": self._routes(),
                "site_logo": 0,
                "site_icon": 0,
                "_links": {"help": [{"href": "https://developer.wordpress.org/rest-api/"}]},
            }
        )

    def _namespace(self) -> bytes:
        return R.dumps(
            {
                "namespace": "wp/v2",
                "routes": self._routes(),
                "_links": {"up": [{"href": f"{self.origin}/wp-json/"}]},
            }
        )


def _write_error(kind: str, method: str) -> WPError:
    if kind == "list" and method == "POST":
        return WPError("rest_cannot_create", "Sorry, you are not allowed to create posts as this user.", 401)
    if kind == "item" and method in ("POST", "PUT", "PATCH"):
        return WPError("rest_cannot_edit", "Sorry, you are not allowed to edit this post.", 401)
    if kind == "item" and method == "DELETE":
        return WPError("rest_cannot_delete", "Sorry, you are not allowed to delete this post.", 401)
    return rest_no_route()


def _loggable(params: Params) -> dict[str, Any]:
    return {k: (list(v) if isinstance(v, list) else v) for k, v in params.items()}


async def _respond(
    send: Send,
    status: int,
    headers: list[tuple[bytes, bytes]],
    body: bytes,
    note: Callable[[int], None],
) -> int:
    note(status)
    headers = [*headers, (b"content-length", str(len(body)).encode("ascii"))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
    return len(body)


def _abort_connection(scope: Scope) -> bool:
    """Reset the TCP connection this request arrived on (RST, no response at all).

    ASGI has no "abort", so this finds the asyncio transport by the client's address. It relies
    on the selector event loop's transport table (CPython's default on Linux and macOS); when
    that is not there the caller falls back to breaking off a response half-way.
    """
    client = scope.get("client")
    if not client:
        return False
    loop = asyncio.get_running_loop()
    transports = getattr(loop, "_transports", None)
    if transports is None:
        return False
    for transport in list(transports.values()):
        try:
            peer = transport.get_extra_info("peername")
        except (AttributeError, OSError, RuntimeError):  # a transport closing under us
            continue
        if peer is not None and tuple(peer[:2]) == tuple(client[:2]):
            sock = transport.get_extra_info("socket")
            if sock is not None:
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                except OSError:
                    pass
            transport.abort()
            return True
    return False


async def _wait_disconnect(receive: Receive, timeout: float = 5.0) -> None:
    """Wait until the server notices the connection is gone, so it sends nothing after."""
    try:
        async with asyncio.timeout(timeout):
            while (await receive())["type"] != "http.disconnect":
                pass
    except TimeoutError:
        pass
