"""WordPress REST specifics: how a collection is walked, fetched concurrently and retried.

Two extension points of dlt's `rest_api`, and why:

* `OverlappingWindowPaginator` (a dlt paginator). Page numbers (`page=N`, dlt's `header_link`)
  cannot prove that no record slipped across a page boundary while the site changes: deleting or
  unpublishing one record moves every later record one place back, so the first record of page
  k+1 lands on page k, which we may already have read, and is never seen (and an unchanged record
  is not caught by the next run's `modified_after` either). We therefore order by `id` (unique and
  stable, unlike `modified`, which WordPress does not tie-break) and walk `offset` windows of
  `per_page` records that overlap by `WINDOW_OVERLAP` records. In a consistent listing the lowest
  id of window k is at most the highest id covered so far; if it is higher, something moved
  between the two reads and we re-read further back until the covered range is contiguous again
  (bounded by `max_reread_attempts`, then the run fails and the cursor stays put). The end is known from
  `X-WP-Total` (WordPress counts the full result set even with `offset`); a window shorter than
  `per_page` before the end is legitimate (WordPress counts media attached to unpublished pages
  but hides them) and is accepted when it is contiguous - it is never re-read forever.

* `WordPressSession` (a `requests.Session` given to rest_api as `client.session`). dlt's
  `RESTClient.paginate` requests pages one after another. We keep it as the single consumer, so
  rest_api's incremental, data selector and processing steps apply exactly as documented, and
  make the network under it concurrent: once the first window tells the paginator the total, it
  asks the `Transport` to prefetch the following windows over httpx (HTTP/2 when the server
  offers it), and `send()` answers RESTClient's request for a window from that prefetch (when a
  whole collection is read - a first load, a full refresh - the first few windows are asked for
  together with the first, before the total is known). The
  endpoints together keep at most `max_connections` requests in flight, and at most that many
  answers wait unconsumed, so memory stays flat however large the site is.

  `.json()` of our responses is the page's light rows (`digest.py`): one small dict per record
  with what the paginator, dlt's incremental and the envelope need, and where in the page's
  arrow table its payload and hash are. Pages of large collections are digested in worker
  processes while the extract works (`transport.py`), the rest here, on first `.json()`.

Retries (exponential backoff, `Retry-After`, timeouts and resets) live in `Transport`
(`transport.py`), below dlt's own retrying requests client, which we do not use here.
"""

from __future__ import annotations

import concurrent.futures
import copy
import logging
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple
from urllib.parse import urlsplit

import orjson
import requests
from dlt.sources.helpers.rest_client.paginators import BasePaginator
from requests.hooks import dispatch_hook
from requests.structures import CaseInsensitiveDict

from .digest import DigestedPage, digest_page, loads
from .envelope import END_OF_LISTING, DigestedPages
from .errors import InconsistentListing, WordPressError
from .transport import DigestSpec, RawResponse, Transport

log = logging.getLogger(__name__)

_FORWARDED_HEADERS = ("authorization", "cookie")
# Collections smaller than this are digested in the extract thread (unless the run started the
# digest workers anyway): starting one (~0.3 s) costs more than the few pages it would take over.
DIGEST_MIN_RECORDS = 5000
# Records each window shares with the one before. One is enough to prove contiguity, but WordPress
# counts media attached to unpublished pages and then leaves them out: when the shared record is
# such an item the proof is missing and the window is re-read, a synchronous round trip that stalls
# the extract (~2 % of media windows on the bench's site: 5 re-reads in 203 windows). With two, both
# must be hidden (5 -> 0 there) for 1 % more requests.
WINDOW_OVERLAP = 2
_OFFSET_MARKER = 987654321987654321  # an offset no listing reaches: marks where it goes in a URL


class WordPressResponse(requests.Response):
    """A requests.Response whose `.json()` is the page's light rows (see digest.py).

    dlt's RESTClient calls `.json()` once per page and hands the result to the paginator and to
    rest_api's incremental; the records themselves are already serialised and hashed in the
    page's arrow table, held by `DigestedPages` under the token every light row carries.
    """

    digest_spec: Optional[DigestSpec] = None
    digested: Optional[DigestedPage] = None
    pages: Optional[DigestedPages] = None
    _rows: Optional[List[Dict[str, Any]]] = None

    def json(self, **kwargs: Any) -> Any:
        if self.digest_spec is None:
            return loads(self.content)
        if self._rows is None:
            page = self.digested if self.digested is not None else digest_page(self.content, *self.digest_spec)
            if page.parse_error:
                raise WordPressError(
                    f"GET {self.url} answered {page.parse_error}; the site or a proxy sent a broken page, "
                    "run again (nothing was committed)",
                    url=self.url,
                    status=self.status_code,
                )
            assert self.pages is not None
            self._rows = self.pages.tag(self.digest_spec[0], page)
        return self._rows


def check_response(raw: RawResponse) -> None:
    """Raise a one-line WordPressError for anything that is not a JSON list page."""
    if raw.digested is not None:
        return  # a 200 whose body starts a JSON list, already on its way through digest_page
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
        self._digest_specs: Dict[str, DigestSpec] = {}
        self._prepared: Dict[str, Tuple[requests.PreparedRequest, str, str]] = {}
        self._listings_left = -1  # unknown: see expect_listings
        self._early: List[str] = []
        self.pages = DigestedPages()

    def prepare_request(self, request: requests.Request) -> requests.PreparedRequest:
        """requests' own preparation, once per listing: RESTClient prepares every window's request
        afresh (~0.5 ms of header, cookie and URL merging each), though only `offset` changes
        between them; a window's URL is then the prepared one with its offset put in."""
        params = request.params
        if not (
            isinstance(params, dict)
            and type(params.get("offset")) is int
            and request.auth is None
            and self.auth is None
            and not request.cookies
            and not self.cookies
            and not (request.files or request.data or request.json)
        ):
            return super().prepare_request(request)
        key = repr(
            (
                request.method,
                request.url,
                {k: v for k, v in params.items() if k != "offset"},
                request.headers,
                request.hooks,
            )
        )
        cached = self._prepared.get(key)
        if cached is None:
            template = copy.copy(request)
            template.params = {**params, "offset": _OFFSET_MARKER}
            prepared = super().prepare_request(template)
            head, sep, tail = (prepared.url or "").partition(f"offset={_OFFSET_MARKER}")
            if not sep:  # pragma: no cover - requests always encodes an int this way
                return super().prepare_request(request)
            cached = self._prepared[key] = (prepared, head + "offset=", tail)
        prepared, head, tail = cached
        window = requests.PreparedRequest()
        window.method = prepared.method
        window.url = f"{head}{params['offset']}{tail}"
        window.headers = prepared.headers.copy()
        window._cookies = prepared._cookies  # type: ignore[attr-defined] # empty: checked above
        window.body = None
        window.hooks = prepared.hooks
        return window

    def expect_listings(self, count: int) -> None:
        """This run walks `count` listings; once all have ended no page is digested any more."""
        self._listings_left = count

    def listing_ended(self) -> None:
        self._listings_left -= 1
        if self._listings_left == 0:
            # windows asked for early that no listing took (none, unless RESTClient built its URLs
            # differently) are dropped unread rather than left pending
            self.transport.discard(self._early)
            # the digest workers exit while dlt normalizes and loads, not after (~60 ms)
            self.transport.release_digesters()

    def requested_early(self, urls: Iterable[str]) -> None:
        self._early.extend(urls)

    def register(self, url: str, spec: DigestSpec) -> None:
        """Pages of the collection at `url` are digested as `spec` says (see WordPressResponse)."""
        self._digest_specs[_collection_path(url)] = spec

    def digest_spec(self, url: str) -> Optional[DigestSpec]:
        return self._digest_specs.get(_collection_path(url))

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        assert request.url is not None
        spec = self.digest_spec(request.url)
        raw = self.transport.get(request.url, forwarded_headers(request), spec)
        check_response(raw)
        response = WordPressResponse()
        response.status_code = raw.status
        response._content = raw.content
        response.headers = CaseInsensitiveDict(raw.headers.items())  # not the Headers: O(n) per lookup
        response.url = raw.url
        response.encoding = "utf-8"
        response.reason = "OK"
        response.request = request
        response.digest_spec = spec
        response.digested = raw.digested
        response.pages = self.pages
        return dispatch_hook("response", request.hooks, response, **kwargs)  # type: ignore[no-any-return]

    def url_for(self, request: requests.Request, **params: Any) -> str:
        """The exact URL RESTClient will send for `request` with `params` changed."""
        variant = copy.copy(request)
        variant.params = {**dict(request.params or {}), **params}  # type: ignore[arg-type, misc]
        url = self.prepare_request(variant).url
        assert url is not None
        return url


def _collection_path(url: str) -> str:
    return urlsplit(url).path.rstrip("/")


def forwarded_headers(request: requests.PreparedRequest) -> Optional[Dict[str, str]]:
    """Credentials configured in rest_api (auth) travel with every request, prefetched or not."""
    headers = {str(k): str(v) for k, v in request.headers.items() if k.lower() in _FORWARDED_HEADERS}
    return headers or None


ProgressCallback = Callable[[str, int, int, int], None]
"""(endpoint, windows_done, windows_planned, records_seen)"""


class OverlappingWindowPaginator(BasePaginator):
    """Walks a collection in `offset` windows overlapping by `WINDOW_OVERLAP` records (module docstring).

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
        incremental: bool = True,
        speculative_windows: int = 0,
    ) -> None:
        super().__init__()
        self.speculative_windows = max(0, min(speculative_windows, prefetch_window))
        self.endpoint = endpoint
        self.digest_spec: DigestSpec = (endpoint, incremental)
        self.session = session
        self.per_page = per_page
        self.step = max(1, per_page - WINDOW_OVERLAP)
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
        if request.url:
            self.session.register(str(request.url), self.digest_spec)
        if self.speculative_windows:
            # A whole collection is about to be read: ask for the windows after the first one now,
            # rather than a round trip later, once the first has told the total (X-WP-Total).
            # The first goes first (RESTClient's request for it is answered from this prefetch);
            # those past the end of a smaller collection are dropped unread (_finish).
            self._headers = forwarded_headers(self.session.prepare_request(request))
            self._prefetch([self.step * k for k in range(self.speculative_windows + 1)])

    def request_early(self, request: requests.Request) -> None:
        """Ask for this listing's speculative windows before RESTClient starts it (see
        `source.request_first_windows`); RESTClient's own paginator then finds them pending."""
        self.init_request(request)
        self.session.requested_early(self._prefetched)
        if self._prefetched:
            self.session.transport.when_answered(self._prefetched[0], self._prefetch_once_total_known)

    def _prefetch_once_total_known(self, answer: concurrent.futures.Future[Any]) -> None:
        """(any thread) The first window's answer tells the total: ask for the windows after the
        speculative ones now. RESTClient reads that answer only once dlt's setup is over; by
        then the workers had digested the speculative windows and sat idle (~0.2 s), waiting
        for windows asked for only then. An optimisation: any failure here is the first
        window's, which RESTClient reports when it reads it."""
        try:
            if answer.cancelled() or answer.exception() is not None:
                return
            raw = answer.result()
            total = int(raw.headers.get("x-wp-total", ""))
        except (ValueError, concurrent.futures.CancelledError):
            return
        if raw.status != 200:
            return
        # what RESTClient's paginator asks for once it has read the first window
        self._total, self._next_planned = total, self.step
        before = len(self._prefetched)
        self._prefetch_ahead()
        self.session.requested_early(self._prefetched[before:])

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
        self._connected(offset, ids, reaches_end)
        if not self._has_next_page and data is not None:
            # tells the envelope the listing is complete (its last batch can leave); a row
            # without a cursor passes dlt's incremental (on_cursor_value_missing="include")
            data.append({"id": None, END_OF_LISTING: True})

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
        offsets = range(self._next_planned, self._total, self.step)[: self.prefetch_window]
        self._prefetch(offsets)

    def _prefetch(self, offsets: Iterable[int]) -> None:
        fresh: List[str] = []
        for offset in offsets:
            if offset not in self._prefetched_offsets:
                self._prefetched_offsets.add(offset)
                fresh.append(self._url_at(offset))
        if fresh:
            transport = self.session.transport
            large = self._total is not None and self._total >= DIGEST_MIN_RECORDS
            digest = self.digest_spec if large or transport.digesting else None
            transport.prefetch(fresh, self._headers, digest)
            self._prefetched.extend(fresh)

    def _url_at(self, offset: int) -> str:
        """The URL RESTClient will send for the window at `offset` (requests prepares it)."""
        assert self._template is not None
        return self.session.url_for(self._template, offset=offset)

    def _finish(self) -> None:
        self._has_next_page = False
        self._report()
        # answers prefetched for a listing that turned out shorter are dropped
        self.session.transport.discard(self._prefetched)
        self._prefetched = []
        self.session.listing_ended()

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
