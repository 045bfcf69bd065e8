"""WordPress REST specifics: how a collection is walked, fetched concurrently and retried.

Two extension points of dlt's `rest_api`, and why:

* `OverlappingWindowPaginator` (a dlt paginator). Page numbers (`page=N`, dlt's `header_link`)
  cannot prove that no record slipped across a page boundary while the site changes: deleting or
  unpublishing one record moves every later record one place back, so the first record of page
  k+1 lands on page k, which we may already have read, and is never seen (and an unchanged record
  is not caught by the next run's `modified_after` either). We therefore order by `id` (unique and
  stable, unlike `modified`, which WordPress does not tie-break) and walk `offset` windows of
  `per_page` records that overlap by one record. In a consistent listing the lowest id of window
  k is at most the highest id covered so far; if it is higher, something moved between the two
  reads and we re-read further back until the covered range is contiguous again (bounded by
  `max_reread_attempts`, then the run fails and the cursor stays put). The end is known from
  `X-WP-Total` (WordPress counts the full result set even with `offset`); a window shorter than
  `per_page` before the end is legitimate (WordPress counts media attached to unpublished pages
  but hides them) and is accepted when it is contiguous - it is never re-read forever.

* `WordPressSession` (a `requests.Session` given to rest_api as `client.session`). dlt's
  `RESTClient.paginate` requests pages one after another. We keep it as the single consumer, so
  rest_api's incremental, data selector and processing steps apply exactly as documented, and
  make the network under it concurrent: once the first window tells the paginator the total, it
  asks the `Transport` to prefetch the following windows over httpx (HTTP/2 when the server
  offers it), and `send()` answers RESTClient's request for a window from that prefetch. At most
  `max_connections` requests are in flight across all endpoints, and at most `prefetch_window`
  answers wait unconsumed per endpoint, so memory stays flat however large the site is.

Retries (exponential backoff, `Retry-After`, timeouts and resets) live in `Transport`, below
dlt's own retrying requests client, which we do not use for these requests.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import copy
import email.utils
import logging
import ssl
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Optional
from urllib.parse import urlsplit

import httpx
import orjson
import requests
from dlt.sources.helpers.rest_client.paginators import BasePaginator
from requests.hooks import dispatch_hook
from requests.structures import CaseInsensitiveDict

from .errors import InconsistentListing, WordPressError, WordPressUnreachable
from .settings import HttpSettings

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504, 507, 520, 521, 522, 523, 524})
MAX_RETRY_AFTER_SECONDS = 120.0
# Integers beyond 64 bits would come back from orjson as floats (lossy); stdlib json keeps them.
# Any run of 19 digits (in a string or not) sends the body to the exact parser: mapping every digit
# to "0" and searching is several times faster than a regex over a ~1 MB page.
_DIGITS_TO_ZERO = bytes.maketrans(b"123456789", b"000000000")
_NINETEEN_DIGITS = b"0" * 19
_FORWARDED_HEADERS = ("authorization", "cookie")


def loads(body: bytes) -> Any:
    """Parse JSON fast (orjson), exactly (stdlib) when the body may hold a >64-bit integer."""
    if _NINETEEN_DIGITS in body.translate(_DIGITS_TO_ZERO):
        import json

        return json.loads(body)
    return orjson.loads(body)


@dataclass
class RawResponse:
    url: str
    status: int
    headers: httpx.Headers
    content: bytes
    http_version: str
    attempts: int


@dataclass
class TransportStats:
    requests: int = 0
    retries: int = 0
    http_versions: Dict[str, int] = field(default_factory=dict)


class Transport:
    """One httpx.AsyncClient on a private event-loop thread, shared by every endpoint.

    Callers are dlt's (synchronous) extract threads: `get()` blocks on a future, `prefetch()`
    schedules requests without waiting. A prefetched answer is handed out once and forgotten.
    """

    def __init__(self, http: HttpSettings, sleep: Optional[Callable[[float], Any]] = None) -> None:
        self.http = http
        self.stats = TransportStats()
        self._pending: Dict[str, concurrent.futures.Future[RawResponse]] = {}
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="wordpress-http", daemon=True)
        self._thread.start()
        self._client: httpx.AsyncClient = self._run(self._make_client())
        self._semaphore: asyncio.Semaphore = self._run(self._make_semaphore())
        self._closed = False

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    async def _make_client(self) -> httpx.AsyncClient:
        verify: Any = True
        if self.http.verify:
            if str(self.http.verify).lower() == "false":
                verify = False
            else:
                verify = ssl.create_default_context(cafile=str(self.http.verify))
        return httpx.AsyncClient(
            http2=self.http.http2,
            verify=verify,
            limits=httpx.Limits(
                max_connections=self.http.max_connections,
                max_keepalive_connections=self.http.max_keepalive_connections,
            ),
            timeout=httpx.Timeout(self.http.total_timeout, connect=self.http.connect_timeout),
            headers={"User-Agent": "bulletin-pipeline (dlt; +https://dlthub.com)", "Accept": "application/json"},
            follow_redirects=True,
        )

    async def _make_semaphore(self) -> asyncio.Semaphore:
        return asyncio.Semaphore(self.http.max_connections)

    def get(self, url: str, headers: Optional[Dict[str, str]] = None) -> RawResponse:
        with self._lock:
            future = self._pending.pop(url, None)
        if future is None:
            future = asyncio.run_coroutine_threadsafe(self._fetch(url, headers), self._loop)
        return future.result()

    def prefetch(self, urls: Iterable[str], headers: Optional[Dict[str, str]] = None) -> None:
        with self._lock:
            for url in urls:
                if url not in self._pending and not self._closed:
                    self._pending[url] = asyncio.run_coroutine_threadsafe(self._fetch(url, headers), self._loop)

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
        for future in pending:
            future.cancel()
        try:
            self._run(self._client.aclose())
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
                    response = await self._client.get(url, headers=headers)
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


class WordPressResponse(requests.Response):
    """A requests.Response whose `.json()` is orjson: dlt calls it once per page, on the hot path."""

    def json(self, **kwargs: Any) -> Any:
        return loads(self.content)


def check_response(raw: RawResponse) -> None:
    """Raise a one-line WordPressError for anything that is not a JSON list page."""
    content_type = raw.headers.get("content-type", "")
    body = raw.content.lstrip()
    if raw.status >= 400:
        code, message = _wordpress_error(raw.content)
        if code == "rest_no_route":
            collection = urlsplit(raw.url).path.rstrip("/").rsplit("/", 1)[-1]
            hint = f"the collection {collection!r} does not exist on this site; check endpoints and base_url"
        elif raw.status in (401, 403):
            hint = "the collection needs authentication, which anonymous requests do not have"
        elif code:
            hint = message or "the site rejected the request"
        elif raw.status >= 500:
            hint = f"the server kept failing (after {raw.attempts} attempt(s)); try again later"
        else:
            hint = f"not a WordPress REST error ({content_type or 'no content type'}); is base_url the REST base?"
        raise WordPressError(
            f"GET {raw.url} answered HTTP {raw.status}{' ' + code if code else ''}: {hint}",
            url=raw.url,
            status=raw.status,
            code=code,
        )
    if not body.startswith(b"["):
        what = "a JSON object" if body.startswith(b"{") else f"{content_type or 'a non-JSON body'}"
        snippet = body[:40].decode("utf-8", "replace").replace("\n", " ")
        raise WordPressError(
            f"GET {raw.url} answered {what} ({snippet!r}...) instead of a JSON list; base_url must be "
            "the REST base of the site, e.g. https://www.example.edu/wp-json/wp/v2/",
            url=raw.url,
            status=raw.status,
        )


def _wordpress_error(content: bytes) -> tuple[Optional[str], Optional[str]]:
    try:
        body = orjson.loads(content)
    except orjson.JSONDecodeError:
        return None, None
    if isinstance(body, dict) and isinstance(body.get("code"), str):
        return body["code"], str(body.get("message") or "")
    return None, None


class WordPressSession(requests.Session):
    """The `requests.Session` dlt's RESTClient sends through; answers come from the Transport."""

    def __init__(self, transport: Transport) -> None:
        super().__init__()
        self.transport = transport
        # requests only prepares URLs here (httpx sends them and reads proxies itself); without
        # this, every prepared request looks for a ~/.netrc on disk
        self.trust_env = False

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        assert request.url is not None
        raw = self.transport.get(request.url, forwarded_headers(request))
        check_response(raw)
        response = WordPressResponse()
        response.status_code = raw.status
        response._content = raw.content
        response.headers = CaseInsensitiveDict(raw.headers)
        response.url = raw.url
        response.encoding = "utf-8"
        response.reason = "OK"
        response.request = request
        return dispatch_hook("response", request.hooks, response, **kwargs)  # type: ignore[no-any-return]

    def url_for(self, request: requests.Request, **params: Any) -> str:
        """The exact URL RESTClient will send for `request` with `params` changed."""
        variant = copy.copy(request)
        variant.params = {**dict(request.params or {}), **params}  # type: ignore[arg-type, misc]
        url = self.prepare_request(variant).url
        assert url is not None
        return url


def forwarded_headers(request: requests.PreparedRequest) -> Optional[Dict[str, str]]:
    """Credentials configured in rest_api (auth) travel with every request, prefetched or not."""
    headers = {str(k): str(v) for k, v in request.headers.items() if k.lower() in _FORWARDED_HEADERS}
    return headers or None


ProgressCallback = Callable[[str, int, int, int], None]
"""(endpoint, windows_done, windows_planned, records_seen)"""


class OverlappingWindowPaginator(BasePaginator):
    """Walks a collection in `offset` windows overlapping by one record; see the module docstring.

    Invariant: every record with id <= `_covered` that stayed listed during the walk has been read.
    A window "connects" when it starts at offset 0, or its lowest id is <= `_covered` (the overlap
    proves nothing slipped between it and what we hold). Otherwise the paginator re-reads further
    back until the covered range is contiguous again. A window of hidden items only (WordPress counts
    them, then drops them) connects, and lets the next one connect, on an unchanged `X-WP-Total`.
    """

    def __init__(
        self,
        endpoint: str,
        session: WordPressSession,
        per_page: int,
        prefetch_window: int,
        max_reread_attempts: int,
        progress: Optional[ProgressCallback] = None,
    ) -> None:
        super().__init__()
        self.endpoint = endpoint
        self.session = session
        self.per_page = per_page
        self.step = max(1, per_page - 1)
        self.prefetch_window = max(1, prefetch_window)
        self.max_reread_attempts = max_reread_attempts
        self.progress = progress
        self.rereads = 0
        self._reset()

    def _reset(self) -> None:
        self._template: Optional[requests.Request] = None
        self._headers: Optional[Dict[str, str]] = None
        self._offset = 0  # offset of the window being requested
        self._next_planned = 0  # where the planned walk (0, step, 2*step, ...) continues
        self._covered: Optional[int] = None
        self._blind_total: Optional[int] = None
        self._gap: Optional[tuple[Optional[int], Optional[int]]] = None  # ids of the window read past a gap
        self._back = 0
        self._gap_attempts = 0
        self._total: Optional[int] = None
        self._prefetched: List[str] = []
        self._prefetched_offsets: set[int] = set()
        self._windows_done = 0
        self._records = 0

    def __deepcopy__(self, memo: Dict[int, Any]) -> OverlappingWindowPaginator:
        # RESTClient deep-copies a default paginator; the session and its threads must stay shared
        clone = copy.copy(self)
        clone._reset()
        return clone

    def init_request(self, request: requests.Request) -> None:  # type: ignore[override]
        self._reset()
        self._template = request
        request.params = {**dict(request.params or {}), "per_page": self.per_page, "offset": 0}  # type: ignore[arg-type]

    def update_request(self, request: requests.Request) -> None:  # type: ignore[override]
        request.params["offset"] = self._offset  # type: ignore[index]

    def update_state(self, response: requests.Response, data: Optional[List[Any]] = None) -> None:  # type: ignore[override]
        rows = data or []
        ids = [r["id"] for r in rows if isinstance(r, dict) and type(r.get("id")) is int]
        total = _int_header(response, "X-WP-Total")
        if total == 0 and self._offset > 0 and not rows:
            # WordPress counts only when a query returns rows: an offset past the end (the listing
            # shrank under us) answers X-WP-Total: 0, which means "unknown", not "empty"
            total = None
        previous_total = self._total
        if total is not None:
            self._total = total
        if self._template is not None and self._headers is None and response.request is not None:
            self._headers = forwarded_headers(response.request)  # type: ignore[arg-type]
        self._windows_done += 1
        self._records += len(rows)
        offset = self._offset
        reaches_end = total is None or offset + self.per_page >= total

        if not self._connects(offset, ids, total, previous_total):
            return self._open_gap(offset, ids, total)
        # A window without a single visible record proves nothing by ids (WordPress counts items
        # it then hides: media attached to unpublished pages), so the next one may connect on an
        # unchanged X-WP-Total instead. Short windows with some visible records need nothing
        # special: if their hidden tail breaks the overlap, the gap re-read covers it once.
        self._blind_total = total if not ids and not reaches_end else None
        return self._connected(offset, ids, reaches_end)

    def _connects(self, offset: int, ids: List[int], total: Optional[int], previous_total: Optional[int]) -> bool:
        if offset == 0:
            return True
        if ids and self._covered is not None and min(ids) <= self._covered:
            return True
        if self._blind_total is not None and total == self._blind_total:
            return True
        # nothing visible here, nothing moved as far as the count tells: a block of hidden items
        return not ids and total is not None and offset < total and total == previous_total

    def _connected(self, offset: int, ids: List[int], reaches_end: bool) -> None:
        if ids:
            self._covered = max(ids) if self._covered is None else max(self._covered, max(ids))
        if reaches_end:
            return self._finish()
        if self._gap is None:
            self._next_planned = offset + self.step
            return self._request(self._next_planned, prefetch=True)
        low, high = self._gap
        if low is None or (self._covered is not None and self._covered >= low):
            # the re-read reached into the window read past the gap: contiguous again
            if high is not None:
                self._covered = high if self._covered is None else max(self._covered, high)
            self._gap = None
            return self._request(self._next_planned, prefetch=True)
        return self._request(offset + self.step)  # contiguous so far; keep re-reading forward

    def _open_gap(self, offset: int, ids: List[int], total: Optional[int]) -> None:
        if self._gap is None:
            self._gap = (min(ids), max(ids)) if ids else (None, None)
            self._next_planned = offset + self.step
            self._back = max(1, self.per_page // 2)
            self._gap_attempts = 0
            known = total if total is not None else self._total
            start = min(offset, known) if known is not None else offset
        else:
            self._back *= 2
            start = offset
        self._gap_attempts += 1
        if self._gap_attempts > self.max_reread_attempts:
            raise InconsistentListing(
                f"{self.endpoint}: the listing kept changing while it was read ({self.max_reread_attempts} "
                f"re-reads did not close a gap after id {self._covered}); nothing was committed, run again",
                url=str(self._template.url) if self._template else "",
            )
        log.info("%s: listing moved near offset %d; re-reading from %d", self.endpoint, offset, start - self._back)
        return self._request(max(0, start - self._back))

    def _request(self, offset: int, prefetch: bool = False) -> None:
        """Ask for the window at `offset` next: the planned walk (prefetched) or a re-read."""
        if not prefetch:
            self.rereads += 1
        self._offset = offset
        self._has_next_page = True
        if prefetch:
            self._prefetch_ahead()
        self._report()

    def _prefetch_ahead(self) -> None:
        if self._template is None or self._total is None:
            return
        fresh: List[str] = []
        offset = self._next_planned
        for _ in range(self.prefetch_window):
            if offset >= self._total:
                break
            if offset not in self._prefetched_offsets:
                self._prefetched_offsets.add(offset)
                fresh.append(self.session.url_for(self._template, offset=offset))
            offset += self.step
        if fresh:
            self.session.transport.prefetch(fresh, self._headers)
            self._prefetched.extend(fresh)

    def _finish(self) -> None:
        self._has_next_page = False
        self._report()
        # answers prefetched for a listing that turned out shorter are dropped
        self.session.transport.discard(self._prefetched)
        self._prefetched = []

    def _report(self) -> None:
        if self.progress is not None:
            total = self._total or 0
            planned = 1 + max(0, -(-(total - self.per_page) // self.step))
            self.progress(self.endpoint, self._windows_done, max(planned, self._windows_done), self._records)


def _int_header(response: requests.Response, name: str) -> Optional[int]:
    value = response.headers.get(name)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
