"""What a WordPress answer means: one-line errors naming the URL (redacted) and what to do, when to
retry, and the site's clock."""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import socket
import time
from typing import Optional
from urllib.parse import urlsplit

import requests

from .errors import WordPressError, WordPressUnreachable, cause_chain
from .redact import Names, redact_url

MAX_RETRY_AFTER_SECONDS = 120.0


def check_answer(
    url: str, answer: requests.Response, attempts: int, authenticated: bool = False, secret_params: Names = ()
) -> None:
    """Raise a one-line WordPressError for anything that is not a JSON list page."""
    url = redact_url(url, secret_params)
    content_type = answer.headers.get("content-type", "")
    status = answer.status_code
    if status >= 400:
        try:
            body = json.loads(answer.content)
        except ValueError:
            body = None
        code = body["code"] if isinstance(body, dict) and isinstance(body.get("code"), str) else None
        if code == "rest_no_route":
            collection = urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1]
            hint = f"the collection {collection!r} does not exist on this site; check endpoints and base_url"
        elif status in (401, 403) and authenticated:
            hint = "the site refused the credentials; check sources.bulletin.http.username and password"
        elif status in (401, 403):
            hint = "the collection needs authentication: set sources.bulletin.http.username and password"
        elif code:
            hint = str(body.get("message") or "the site rejected the request")
        elif status >= 500 or status == 429:
            hint = f"the server kept failing (after {attempts} attempt(s)); try again later"
        else:
            hint = f"not a WordPress REST error ({content_type or 'no content type'}); is base_url the REST base?"
        raise WordPressError(f"GET {url} answered HTTP {status}{' ' + code if code else ''}: {hint}", url)
    body = answer.content.lstrip()
    if not body.startswith(b"["):
        what = "a JSON object" if body.startswith(b"{") else (content_type or "a non-JSON body")
        snippet = body[:40].decode("utf-8", "replace").replace("\n", " ")
        raise WordPressError(
            f"GET {url} answered {what} ({snippet!r}...) instead of a JSON list; base_url must be "
            "the REST base of the site, e.g. https://www.example.edu/wp-json/wp/v2/",
            url,
        )


def site_now(reply: requests.Response) -> dt.datetime:
    """The site's clock (UTC) by its `Date` header; ours when it has none or one a day off."""
    ours = dt.datetime.now(dt.UTC)
    try:
        theirs = email.utils.parsedate_to_datetime(reply.headers.get("date", "")).astimezone(dt.UTC)
    except (TypeError, ValueError):
        return ours
    return theirs if abs(theirs - ours) < dt.timedelta(days=1) else ours


def retry_after(reply: requests.Response) -> Optional[float]:
    """The seconds `Retry-After` asks for (a number or an HTTP date), capped; None without one."""
    value = reply.headers.get("Retry-After")
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    return max(0.0, min(seconds, MAX_RETRY_AFTER_SECONDS))


def describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def unresolved(exc: BaseException) -> bool:
    """Whether a connection failed because the host name does not resolve (DNS)."""
    return any(isinstance(e, socket.gaierror) for e in cause_chain(exc))


def unreachable(url: str, exc: BaseException, attempts: int, secret_params: Names = ()) -> WordPressUnreachable:
    url = redact_url(url, secret_params)
    host = urlsplit(url).netloc.rpartition("@")[2]
    message = f"cannot reach {host}: {describe(exc)} (after {attempts} attempt(s), GET {url}); "
    return WordPressUnreachable(message + "check base_url and that the site is up", url)
