"""HTTP under dlt's RESTClient: httpx behind requests' transport-adapter interface.

`WordPressSession` (rest_api's `client.session`) mounts `HttpxAdapter`, which sends with one
`httpx.Client`, retries with tenacity (5xx, 429, timeouts, connection errors; `Retry-After`
honoured) and can `prefetch` windows so the network stays busy while dlt reads pages in order.
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import io
import json
import logging
import ssl
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, Mapping, Optional
from urllib.parse import urlsplit

import httpx
import requests
import tenacity
from dlt.sources.helpers.rest_client.auth import HttpBasicAuth
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict

from .answers import Reply, check_answer, describe, retry_after, site_now, unreachable, unresolved
from .digest import DigestSpec, PageColumns, digest_page, page_table, start_workers
from .errors import ConfigError, WordPressError
from .redact import redact_url
from .settings import HttpSettings

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504, 507, 520, 521, 522, 523, 524})
USER_AGENT = "bulletin-pipeline (dlt; +https://dlthub.com)"


@dataclass
class HttpStats:
    requests: int = 0
    retries: int = 0
    http_versions: Dict[str, int] = field(default_factory=dict)


@dataclass
class Answer:
    """A reply, the attempts it took and, for a list page, its digest."""

    response: Reply
    attempts: int
    digested: Optional[concurrent.futures.Future[PageColumns]] = None


class HttpxAdapter(BaseAdapter):
    """Sends requests' prepared requests with httpx, at most `max_connections` in flight; list
    pages of `digest_specs` (URL path -> spec) are digested on arrival (in the thread when 0 workers)."""

    def __init__(
        self,
        http: HttpSettings,
        digest_specs: Optional[Mapping[str, DigestSpec]] = None,
        digest_workers: int = 0,
        stats: Optional[HttpStats] = None,
    ) -> None:
        super().__init__()
        self.http = http
        verify = _verify(http.verify)  # a bad CA bundle fails before any worker starts
        self._digest_specs = {path.rstrip("/"): spec for path, spec in (digest_specs or {}).items()}
        self._digest_pool: Optional[concurrent.futures.ProcessPoolExecutor] = None
        if digest_workers > 0 and self._digest_specs:
            self._digest_pool = start_workers(digest_workers, set(self._digest_specs.values()))
        self.stats = stats or HttpStats()
        self._client = httpx.Client(
            http2=http.http2,
            verify=verify,
            limits=httpx.Limits(
                max_connections=http.max_connections, max_keepalive_connections=http.max_keepalive_connections
            ),
            timeout=httpx.Timeout(http.total_timeout, connect=http.connect_timeout),
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
            follow_redirects=True,
        )
        self._slots = threading.BoundedSemaphore(http.max_connections)
        self._executor = concurrent.futures.ThreadPoolExecutor(http.max_connections, thread_name_prefix="wp-http")
        self._pending: Dict[str, concurrent.futures.Future[Answer]] = {}
        self._lock = threading.Lock()
        self._closing = threading.Event()

    def prefetch(self, request: requests.PreparedRequest) -> None:
        """Start fetching `request` now; `send` of the same URL then takes its answer."""
        url = str(request.url)
        with self._lock:
            if url not in self._pending:
                self._pending[url] = self._executor.submit(self.fetch_page, url, _headers(request))

    def discard(self, urls: Iterable[str]) -> None:
        """Forget prefetched answers nobody will ask for (a listing that ended sooner)."""
        with self._lock:
            for url in urls:
                future = self._pending.pop(url, None)
                if future is not None:
                    future.cancel()

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        url = str(request.url)
        with self._lock:
            future = self._pending.pop(url, None)
        answer = future.result() if future is not None else self.fetch_page(url, _headers(request))
        return _to_requests_response(request, answer)

    def fetch_page(self, url: str, headers: Dict[str, str]) -> Answer:
        """`fetch`, then digest the page when it belongs to a collection being listed."""
        answer = self.fetch(url, headers)
        spec = self._digest_specs.get(urlsplit(url).path.rstrip("/"))
        if spec is not None:
            answer.digested = self._digest(answer.response.content, spec, site_now(answer.response))
        return answer

    def _digest(self, body: bytes, spec: DigestSpec, now: dt.datetime) -> concurrent.futures.Future[PageColumns]:
        if self._digest_pool is not None:
            return self._digest_pool.submit(digest_page, body, spec, now)
        done: concurrent.futures.Future[PageColumns] = concurrent.futures.Future()
        try:
            done.set_result(digest_page(body, spec, now))
        except ValueError as exc:
            done.set_exception(exc)
        return done

    def fetch(self, url: str, headers: Dict[str, str]) -> Answer:
        """GET `url` with the retry policy; raises `WordPressError` for anything unusable."""
        retrying = tenacity.Retrying(
            # closing (an interrupted run) ends the backoff at once: no attempt after it
            stop=tenacity.stop_after_attempt(max(1, self.http.max_attempts))
            | tenacity.stop_when_event_set(self._closing),
            sleep=self._sleep,
            wait=self._wait,
            # a host name that does not resolve is a typo or a wrong base_url: no retry fixes it
            retry=tenacity.retry_if_exception(lambda e: isinstance(e, httpx.TransportError) and not unresolved(e))
            | tenacity.retry_if_result(lambda r: r.status_code in RETRY_STATUSES),
            before_sleep=self._before_sleep,
            # out of attempts: the last answer is checked (and reported) like any other
            retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
        )
        try:
            response = retrying(self._get, url, headers)
        except httpx.TransportError as exc:
            raise unreachable(url, exc, retrying.statistics.get("attempt_number", 1)) from exc
        answer = Answer(response, retrying.statistics.get("attempt_number", 1))
        authenticated = any(k.lower() == "authorization" for k in headers)
        check_answer(url, response, answer.attempts, authenticated=authenticated)
        return answer

    def _get(self, url: str, headers: Dict[str, str]) -> Reply:
        """One GET, its body read within `total_timeout` however slowly the server sends it."""
        deadline = time.monotonic() + self.http.total_timeout
        with self._slots, self._client.stream("GET", url, headers=headers) as response:
            chunks = []
            for chunk in response.iter_bytes():
                chunks.append(chunk)
                if time.monotonic() > deadline:
                    raise httpx.ReadTimeout(f"the answer took longer than {self.http.total_timeout:g}s")
            reply = Reply(
                response.status_code, response.headers, b"".join(chunks), response.reason_phrase, response.http_version
            )
        with self._lock:
            self.stats.requests += 1
            versions = self.stats.http_versions
            versions[reply.http_version] = versions.get(reply.http_version, 0) + 1
        return reply

    def backoff(self, attempt: int) -> float:
        """5 s, 10 s, 20 s, 40 s, 60 s with the defaults (the original's policy)."""
        return float(min(self.http.backoff_max, self.http.backoff_initial * 2 ** (attempt - 1)))

    def _wait(self, state: tenacity.RetryCallState) -> float:
        outcome = state.outcome
        if outcome is not None and not outcome.failed:
            asked = retry_after(outcome.result())
            if asked is not None:
                return asked
        return self.backoff(state.attempt_number)

    def _sleep(self, seconds: float) -> None:
        self._closing.wait(seconds)

    def _before_sleep(self, state: tenacity.RetryCallState) -> None:
        with self._lock:
            self.stats.retries += 1
        outcome = state.outcome
        what = describe(outcome.exception()) if outcome and outcome.failed else f"HTTP {outcome.result().status_code}"  # type: ignore[union-attr]
        delay = state.next_action.sleep if state.next_action else 0.0
        attempt = f"attempt {state.attempt_number + 1} of {self.http.max_attempts}, in {delay:g}s"
        log.warning("retrying GET %s: %s (%s)", state.args[0], what, attempt)  # one line, without --verbose too

    def close(self) -> None:
        self._closing.set()
        self._executor.shutdown(wait=True, cancel_futures=True)
        if self._digest_pool is not None:
            self._digest_pool.shutdown(wait=True, cancel_futures=True)
        self._client.close()


class WordPressSession(requests.Session):
    """The session dlt's RESTClient sends through; deep copies (rest_api validates one) share it.

    Its adapter (HTTP pool, threads, digest processes) opens on first use, after `on_open` (the
    extraction's start), and `close()` ends it until the next use: one source object serves many runs."""

    def __init__(
        self,
        http: HttpSettings,
        digest_specs: Optional[Mapping[str, DigestSpec]] = None,
        digest_workers: int = 0,
        on_open: Optional[Callable[[], None]] = None,
    ) -> None:
        super().__init__()
        self.trust_env = False  # httpx reads proxies and CA settings from the environment itself
        self.http, self.digest_specs, self.digest_workers, self.on_open = http, digest_specs, digest_workers, on_open
        _verify(http.verify)  # a bad CA bundle fails when the source is made, before any run
        self.stats = HttpStats()
        self._adapter: Optional[HttpxAdapter] = None
        self._opening = threading.Lock()

    def __deepcopy__(self, _memo: Dict[int, Any]) -> WordPressSession:
        return self

    @property
    def adapter(self) -> HttpxAdapter:
        if self._adapter is None and self.on_open is not None:
            self.on_open()  # outside the lock: it may close this session's previous adapter
        with self._opening:
            if self._adapter is None:
                self._adapter = HttpxAdapter(self.http, self.digest_specs, self.digest_workers, self.stats)
            return self._adapter

    def get_adapter(self, url: str) -> BaseAdapter:
        return self.adapter

    def prefetch(self, request: requests.Request) -> str:
        """Start `request` now (prepared exactly as RESTClient will prepare it); returns its URL."""
        prepared = self.prepare_request(request)
        self.adapter.prefetch(prepared)
        return str(prepared.url)

    def close(self) -> None:
        super().close()
        with self._opening:
            if self._adapter is not None:
                self._adapter.close()
                self._adapter = None


def site_auth(http: HttpSettings) -> Optional[HttpBasicAuth]:
    """rest_api's HTTP Basic auth (None without a username), resolved so that dlt does not look the
    credentials up again (a USERNAME environment variable would win)."""
    if not http.username:
        return None
    return HttpBasicAuth(username=http.username, password=http.password or "").resolve()


class WordPressResponse(requests.Response):
    """A requests.Response whose `json()` is, for a collection's list page, the page's arrow
    table (digest.py): what rest_api then yields for the page. Other answers parse as JSON."""

    digested: Optional[concurrent.futures.Future[PageColumns]] = None

    def json(self, **kwargs: Any) -> Any:
        if self.digested is None:
            return json.loads(self.content, **kwargs)
        try:
            return page_table(self.digested.result())
        except ValueError as exc:
            url = redact_url(str(self.url))
            raise WordPressError(
                f"GET {url} answered a broken page ({exc}); the site or a proxy sent it, run again "
                "(nothing was committed)",
                url=url,
                status=self.status_code,
            ) from exc


def _to_requests_response(request: requests.PreparedRequest, answer: Answer) -> requests.Response:
    """A requests.Response for `answer`, built as requests' own HTTPAdapter.build_response does."""
    response = WordPressResponse()
    response.status_code = answer.response.status_code
    response.headers = CaseInsensitiveDict(answer.response.headers.items())
    response.encoding = "utf-8"
    response.raw = io.BytesIO(answer.response.content)
    response.reason = answer.response.reason_phrase
    response.url = str(request.url)
    response.request = request
    response.digested = answer.digested
    return response


def _headers(request: requests.PreparedRequest) -> Dict[str, str]:
    """What the request carries beyond httpx's defaults (credentials configured in rest_api)."""
    skip = {"user-agent", "accept", "accept-encoding", "connection"}
    return {str(k): str(v) for k, v in request.headers.items() if k.lower() not in skip}


def _verify(verify: Optional[str]) -> Any:
    """True (system CAs), False ("false"), or an SSL context trusting the CA bundle at `verify`."""
    if not verify or str(verify).lower() == "true":
        return True
    if str(verify).lower() == "false":
        return False
    try:
        return ssl.create_default_context(cafile=str(verify))
    except OSError as exc:  # missing, unreadable, or not PEM certificates (ssl.SSLError)
        raise ConfigError(
            f"sources.bulletin.http.verify: cannot use {verify!r} as a CA bundle ({describe(exc)}); "
            "give a readable PEM file of CA certificates, or false to skip verification"
        ) from exc
