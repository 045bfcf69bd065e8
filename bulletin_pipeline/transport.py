"""HTTP under dlt's RESTClient: httpx behind requests' transport-adapter interface, with tenacity's
retries and windows fetched ahead (`prefetch`) so the network stays busy while dlt reads pages in order."""

from __future__ import annotations

import concurrent.futures
import functools
import io
import json
import logging
import ssl
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, Mapping, Optional
from urllib.parse import urlsplit

import httpx
import requests
import tenacity
from dlt.sources.helpers.rest_client.auth import HttpBasicAuth
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict

from .answers import check_answer, describe, retry_after, site_now, unreachable, unresolved
from .digest import DigestSpec, PageColumns, digest_page, page_table, start_workers
from .errors import ConfigError, WordPressError
from .redact import Names, redact_url
from .settings import HttpSettings

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504, 507, 520, 521, 522, 523, 524})
USER_AGENT = "bulletin-pipeline (dlt; +https://dlthub.com)"


@dataclass
class HttpStats:
    requests: int = 0
    retries: int = 0
    http_versions: Counter[str] = field(default_factory=Counter)

    def add(self, other: HttpStats) -> None:
        self.requests += other.requests
        self.retries += other.retries
        self.http_versions.update(other.http_versions)


class WordPressResponse(requests.Response):
    """An answer read whole; `json()` of a collection's list page is its arrow table (digest.py)."""

    digested: Optional[Callable[[], PageColumns]] = None

    def __init__(self, url: str, response: httpx.Response, content: bytes, secret_params: Names = ()) -> None:
        super().__init__()  # then filled in as requests' own HTTPAdapter.build_response does
        self.secret_params = secret_params
        self.status_code = response.status_code
        self.headers = CaseInsensitiveDict(response.headers.items())
        self.encoding = "utf-8"
        self.raw = io.BytesIO(content)
        self.reason = response.reason_phrase
        self.url = url
        self.body = content

    @property
    def content(self) -> bytes:
        """The body as read: not copied again out of `raw`, as requests would."""
        return self.body

    def json(self, **kwargs: Any) -> Any:
        if self.digested is None:
            return json.loads(self.content, **kwargs)
        try:
            return page_table(self.digested())
        except ValueError as exc:
            url = redact_url(str(self.url), self.secret_params)
            raise WordPressError(
                f"GET {url} answered a broken page ({exc}); the site or a proxy sent it, run again "
                "(nothing was committed)",
                url,
            ) from exc


class HttpxAdapter(BaseAdapter):
    """Sends with httpx, at most `max_connections` in flight; list pages of `digest_specs` (URL path ->
    spec) go to the digest workers as they arrive (with none, are digested when dlt reads them)."""

    def __init__(
        self,
        http: HttpSettings,
        digest_specs: Optional[Mapping[str, DigestSpec]] = None,
        digest_workers: int = 0,
        stats: Optional[HttpStats] = None,
    ) -> None:
        super().__init__()
        self.http = http
        self.secret_params = tuple(http.secret_params or ())
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
        self._pending: Dict[str, concurrent.futures.Future[WordPressResponse]] = {}
        self._lock = threading.Lock()
        self._closing = threading.Event()

    def prefetch(self, request: requests.PreparedRequest) -> str:
        """Start fetching `request` now (`send` of the same URL then takes its answer); returns the URL."""
        url = str(request.url)
        with self._lock:
            if url not in self._pending:
                self._pending[url] = self._executor.submit(self._fetch_page, request)
        return url

    def discard(self, urls: Iterable[str]) -> None:
        """Forget prefetched answers nobody will ask for (a listing that ended sooner)."""
        with self._lock:
            for url in urls:
                future = self._pending.pop(url, None)
                if future is not None:
                    future.cancel()

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        with self._lock:
            future = self._pending.pop(str(request.url), None)
        response = future.result() if future is not None else self._fetch_page(request)
        response.request = request
        return response

    def _fetch_page(self, request: requests.PreparedRequest) -> WordPressResponse:
        """`fetch`; a list page of a collection is handed to the digest workers at once."""
        url = str(request.url)
        response = self.fetch(url, {k: str(v) for k, v in request.headers.items()})
        spec = self._digest_specs.get(urlsplit(url).path.rstrip("/"))
        if spec is not None and self._digest_pool is not None:
            response.digested = self._digest_pool.submit(digest_page, response.content, spec, site_now(response)).result
        elif spec is not None:
            response.digested = functools.partial(digest_page, response.content, spec, site_now(response))
        return response

    def fetch(self, url: str, headers: Dict[str, str]) -> WordPressResponse:
        """GET `url` with the retry policy; raises `WordPressError` for anything unusable."""
        retrying = tenacity.Retrying(
            # closing (an interrupted run) ends the backoff at once: no attempt after it
            stop=tenacity.stop_after_attempt(max(1, self.http.max_attempts))
            | tenacity.stop_when_event_set(self._closing),
            sleep=self._closing.wait,  # type: ignore[arg-type]
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
            raise unreachable(url, exc, retrying.statistics.get("attempt_number", 1), self.secret_params) from exc
        authenticated = any(k.lower() == "authorization" for k in headers)
        attempts = retrying.statistics.get("attempt_number", 1)
        check_answer(url, response, attempts, authenticated=authenticated, secret_params=self.secret_params)
        return response

    def _get(self, url: str, headers: Dict[str, str]) -> WordPressResponse:
        """One GET, its body read within `total_timeout` however slowly the server sends it."""
        deadline = time.monotonic() + self.http.total_timeout
        with self._slots, self._client.stream("GET", url, headers=headers) as response:
            chunks = []
            for chunk in response.iter_bytes():
                chunks.append(chunk)
                if time.monotonic() > deadline:
                    raise httpx.ReadTimeout(f"the answer took longer than {self.http.total_timeout:g}s")
            answer = WordPressResponse(url, response, b"".join(chunks), self.secret_params)
        with self._lock:
            self.stats.requests += 1
            self.stats.http_versions[response.http_version] += 1
        return answer

    def backoff(self, attempt: int) -> float:
        """5 s, 10 s, 20 s, 40 s, 60 s with the defaults (the original's policy)."""
        return float(min(self.http.backoff_max, self.http.backoff_initial * 2 ** (attempt - 1)))

    def _wait(self, state: tenacity.RetryCallState) -> float:
        """What the answer's `Retry-After` asks for, else the backoff."""
        outcome = state.outcome
        asked = retry_after(outcome.result()) if outcome is not None and not outcome.failed else None
        return asked if asked is not None else self.backoff(state.attempt_number)

    def _before_sleep(self, state: tenacity.RetryCallState) -> None:
        with self._lock:
            self.stats.retries += 1
        outcome = state.outcome
        what = describe(outcome.exception()) if outcome and outcome.failed else f"HTTP {outcome.result().status_code}"  # type: ignore[union-attr, arg-type]
        delay = state.next_action.sleep if state.next_action else 0.0
        attempt = f"attempt {state.attempt_number + 1} of {self.http.max_attempts}, in {delay:g}s"
        url = redact_url(state.args[0], self.secret_params)
        log.warning("retrying GET %s: %s (%s)", url, what, attempt)  # one line, without --verbose too

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
        self.headers.clear()  # httpx sets its own; requests then carry only what rest_api adds (credentials)
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

    def close(self) -> None:
        super().close()
        with self._opening:
            if self._adapter is not None:
                self._adapter.close()
                self._adapter = None


def site_auth(http: HttpSettings) -> Optional[HttpBasicAuth]:
    """rest_api's HTTP Basic auth (None without a username), resolved: else USERNAME in the environment wins."""
    if not http.username:
        return None
    return HttpBasicAuth(username=http.username, password=http.password or "").resolve()


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
