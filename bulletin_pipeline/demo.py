"""The `--demo` site: a small, deterministic WordPress-shaped REST server on the standard library.

It answers the two list routes the demo loads, `/wp-json/wp/v2/pages` and `/media`, as WordPress
6.1 does for an anonymous visitor: the same keys in the same order, site-local `modified` beside
UTC `modified_gmt`, strict `modified_after`/`modified_before`, `page`/`offset`/`per_page`,
`orderby` (date, id or modified), `order`, `_fields`, the `X-WP-Total`/`X-WP-TotalPages`/`Link`
headers and WordPress's error bodies. Its content comes from a fixed seed and a fixed clock, so
every run serves the same site and a second `--demo` run is an incremental run with nothing new.
The stateful simulator the tests use (tests/simulator/) needs dev dependencies; this one does not,
so `--demo` runs from `uv sync --no-dev`.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import random
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from operator import attrgetter
from typing import Any, NamedTuple, Optional
from urllib.parse import parse_qsl, urlencode, urlsplit
from zoneinfo import ZoneInfo

DEMO_SITE_ID = "demo: bundled WordPress-shaped site"
CLOCK = dt.datetime(2026, 1, 15, 12, 0, 0, tzinfo=dt.UTC)  # "now" on the demo site
SITE_TZ = ZoneInfo("America/New_York")
TIE_MODIFIED_GMT = dt.datetime(2025, 11, 20, 15, 30, 0, tzinfo=dt.UTC)  # a bulk edit of TIE_BLOCK pages
TIE_BLOCK = 150
ROUTE = "/wp-json/wp/v2/"
_WP_FORMAT = "%Y-%m-%dT%H:%M:%S"
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:Z|[+-]\d{2}:\d{2})?")
_INTEGER = re.compile(r"\s*[+-]?\d+\s*")
_SUBJECTS = (
    "Accounting", "Astronomy", "Biology", "Chemistry", "Computer Science", "Economics", "English",
    "Études françaises", "History", "Linguistics", "Mathematics", "Music", "Philosophy", "Physics",
    "Psychology", "Sociology", "Statistics", "Übersetzung und Kultur", "中文 Chinese",
)  # fmt: skip
_COURSES = ("Introduction to", "Topics in", "Advanced", "Seminar in", "Research Methods in", "History of")
_SENTENCES = (
    "Students examine primary sources and compare competing interpretations.",
    "Weekly problem sets build fluency with the core methods of the field.",
    "Readings draw on case studies, with discussion sections devoted to current debates.",
    "Assessment combines short papers, a midterm examination and a final project.",
    "Guest lecturers introduce research under way across the university.",
    "Prior coursework is helpful but not required; all are welcome.",
    "Lab sessions meet weekly; safety training must be completed before the first one.",
    "This course satisfies the general education requirement in quantitative reasoning.",
)


def _dumps(value: Any) -> bytes:
    """Compact JSON, non-ASCII characters as \\u escapes as WordPress writes them."""
    return json.dumps(value, separators=(",", ":")).encode("ascii")


def _wp(moment: dt.datetime, tz: dt.tzinfo = dt.UTC) -> str:
    """A WordPress REST date: the wall-clock time in `tz`, no zone, whole seconds."""
    return moment.astimezone(tz).strftime(_WP_FORMAT)


class _Entry(NamedTuple):
    """One record: what listing sorts and filters on, the record itself and its JSON bytes."""

    id: int
    date: str  # site-local, like `modified`
    modified: str
    record: dict[str, Any]
    body: bytes


def _links(rest: str, route: str, post_type: str, id: int, more: Optional[dict[str, Any]] = None) -> dict[str, Any]:
    """`_links` as WordPress prints them for a post of `post_type`, with `more` before `curies`."""
    return {
        "self": [{"href": f"{rest}/{route}/{id}"}],
        "collection": [{"href": f"{rest}/{route}"}],
        "about": [{"href": f"{rest}/types/{post_type}"}],
        "author": [{"embeddable": True, "href": f"{rest}/users/1"}],
        "replies": [{"embeddable": True, "href": f"{rest}/comments?post={id}"}],
        **(more or {}),
        "curies": [{"name": "wp", "href": "https://api.w.org/{rel}", "templated": True}],
    }


def _page(origin: str, id: int, title: str, parent: Optional[dict], media_id: int, words: list[str]) -> dict:
    """A course or department page as `/wp/v2/pages` prints it, from `slug` on."""
    rest, slug = f"{origin}/wp-json/wp/v2", re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
    more: dict[str, Any] = {"version-history": [{"count": 0, "href": f"{rest}/pages/{id}/revisions"}]}
    if parent:
        more["up"] = [{"embeddable": True, "href": f"{rest}/pages/{parent['id']}"}]
    if media_id:
        more["wp:featuredmedia"] = [{"embeddable": True, "href": f"{rest}/media/{media_id}"}]
    more["wp:attachment"] = [{"href": f"{rest}/media?parent={id}"}]
    body = "".join(f"<p>{' '.join(words[i : i + 40])}</p>\n" for i in range(0, len(words), 40))
    return {
        "guid": {"rendered": f"{origin}/?page_id={id}"}, "slug": slug, "status": "publish", "type": "page",
        "link": f"{parent['link'] if parent else origin + '/'}{slug}/", "title": {"rendered": title},
        "content": {"rendered": f"<h2>{title}</h2>\n{body}", "protected": False},
        "excerpt": {"rendered": f"<p>{' '.join(words[:55])} [&hellip;]</p>\n", "protected": False},
        "author": 1, "featured_media": media_id, "parent": parent["id"] if parent else 0, "menu_order": 0,
        "comment_status": "closed", "ping_status": "closed", "template": "", "meta": [],
        "_links": _links(rest, "pages", "page", id, more),
    }  # fmt: skip


def _media(origin: str, id: int, page: dict, uploaded: dt.datetime, size: tuple[int, int]) -> dict:
    """A JPEG attached to (and featured on) `page`, as `/wp/v2/media` prints it, from `slug` on."""
    slug, (width, height), folder = f"{page['slug']}-photo", size, f"{uploaded.astimezone(SITE_TZ):%Y/%m}"
    uploads = f"{origin}/wp-content/uploads/{folder}"
    url, thumbnail = f"{uploads}/{slug}.jpg", f"{uploads}/{slug}-150x150.jpg"
    sizes = {
        "thumbnail": {"file": f"{slug}-150x150.jpg", "width": 150, "height": 150, "filesize": 6000,
                      "mime_type": "image/jpeg", "source_url": thumbnail},
        "full": {"file": f"{slug}.jpg", "width": width, "height": height, "mime_type": "image/jpeg", "source_url": url},
    }  # fmt: skip
    image = f'<img width="150" height="150" src="{thumbnail}" class="attachment-thumbnail size-thumbnail" alt="" />'
    return {
        "guid": {"rendered": url}, "slug": slug, "status": "inherit", "type": "attachment",
        "link": f"{page['link']}{slug}/", "title": {"rendered": f"{page['title']['rendered']} (photo)"},
        "author": 1, "comment_status": "open", "ping_status": "closed", "template": "", "meta": [],
        "description": {"rendered": f"<p class=\"attachment\"><a href='{url}'>{image}</a></p>\n"},
        "caption": {"rendered": ""}, "alt_text": "", "media_type": "image", "mime_type": "image/jpeg",
        "media_details": {"width": width, "height": height, "file": f"{folder}/{slug}.jpg",
                          "filesize": width * height // 4, "sizes": sizes, "image_meta": {"caption": "", "title": ""}},
        "post": page["id"], "source_url": url, "_links": _links(f"{origin}/wp-json/wp/v2", "media", "attachment", id),
    }  # fmt: skip


class DemoSite:
    """`pages` published pages and `media` images (at most one per page), generated from `seed`.

    Pages are created over the five years before `CLOCK` and edited since, in one id sequence with
    their images; `TIE_BLOCK` of them share one `modified` second (`TIE_MODIFIED_GMT`, a bulk edit),
    the tie that makes WordPress's `orderby=modified` paging unreliable. Links point at `origin`.
    """

    def __init__(self, origin: str, pages: int = 2000, media: int = 1000, seed: int = 42) -> None:
        rng, start, span = random.Random(seed), CLOCK - dt.timedelta(days=5 * 365), 5 * 365 * 86400 * 0.98
        created = [start + dt.timedelta(seconds=int(span * (n + rng.random()) / pages)) for n in range(pages)]
        edited = [c + dt.timedelta(seconds=int((CLOCK - c).total_seconds() * rng.random() ** 2)) for c in created]
        for n in rng.sample([n for n in range(len(_SUBJECTS), pages) if created[n] < TIE_MODIFIED_GMT], TIE_BLOCK):
            edited[n] = TIE_MODIFIED_GMT
        self.collections: dict[str, list[_Entry]] = {"pages": [], "media": []}
        id = 10
        for n in range(pages):
            subject = _SUBJECTS[n % len(_SUBJECTS)]
            parent = self.collections["pages"][n % len(_SUBJECTS)].record if n >= len(_SUBJECTS) else None
            title = f"{rng.choice(_COURSES)} {subject} {100 + n // len(_SUBJECTS)}" if parent else subject
            words = " ".join(rng.choices(_SENTENCES, k=12)).split()
            media_id = id + 1 if (n + 1) * media // pages > n * media // pages else 0
            page = self._add("pages", id, created[n], edited[n], _page(origin, id, title, parent, media_id, words))
            if media_id:
                uploaded = created[n] + dt.timedelta(minutes=rng.randint(1, 30))
                size = rng.choice(((1600, 1067), (1200, 800), (1080, 1350)))
                fields = _media(origin, media_id, page, uploaded, size)
                later = uploaded + dt.timedelta(days=rng.randint(1, 300)) if rng.random() < 0.1 else uploaded
                self._add("media", media_id, uploaded, min(later, CLOCK - dt.timedelta(minutes=1)), fields)
            id += 2 if media_id else 1
        # Python's sort is stable, also reversed: records with equal dates stay in id order.
        self.views = {
            (name, orderby, order): sorted(entries, key=attrgetter(orderby), reverse=order == "desc")
            for name, entries in self.collections.items()
            for orderby in ("date", "id", "modified")
            for order in ("asc", "desc")
        }

    def _add(self, name: str, id: int, created: dt.datetime, edited: dt.datetime, fields: dict) -> dict[str, Any]:
        """Put the id and dates in WordPress's places (around `guid`) and serialise the record once."""
        date, modified = _wp(created, SITE_TZ), _wp(edited, SITE_TZ)
        head = {"id": id, "date": date, "date_gmt": _wp(created), "guid": fields.pop("guid")}
        record = {**head, "modified": modified, "modified_gmt": _wp(edited), **fields}
        self.collections[name].append(_Entry(id, date, modified, record, _dumps(record)))
        return record

    def list(self, name: str, query: dict[str, str], origin: str) -> tuple[bytes, list[tuple[str, str]]]:
        """`GET /wp/v2/<name>`: the body and headers WordPress sends, or `WPError` where it refuses."""
        errors: dict[str, tuple[str, str]] = {}
        per_page, page = _integer(query, "per_page", 10, errors, 1, 100), _integer(query, "page", 1, errors, 1)
        offset = _integer(query, "offset", 0, errors, 0)
        orderby = _choice(query, "orderby", "date", ("date", "id", "modified"), errors)
        order = _choice(query, "order", "desc", ("asc", "desc"), errors)
        bounds = {key: _site_local(query[key]) for key in ("modified_after", "modified_before") if key in query}
        errors.update({key: ("rest_invalid_date", "Invalid date.") for key, value in bounds.items() if value is None})
        if errors:
            details = {key: {"code": code, "message": message, "data": None} for key, (code, message) in errors.items()}
            params = {key: message for key, (_, message) in errors.items()}
            raise WPError(400, "rest_invalid_param", f"Invalid parameter(s): {', '.join(errors)}", params, details)
        after, before = bounds.get("modified_after"), bounds.get("modified_before")
        view = self.views[(name, orderby, order)]
        if after or before:
            view = [e for e in view if (not after or e.modified > after) and (not before or e.modified < before)]
        # WP_Query pages by `page` when `offset` is 0 or absent.
        first = offset or (page - 1) * per_page
        rows = view[first : first + per_page]
        # WP_Query counts only when it found rows; past the last page the controller counts again.
        total = len(view) if rows or (page > 1 and not offset) else 0
        total_pages = math.ceil(total / per_page)
        if page > total_pages and total > 0:
            message = "The page number requested is larger than the number of pages available."
            raise WPError(400, "rest_post_invalid_page_number", message)
        fields = {field.strip() for field in query.get("_fields", "").split(",") if field.strip()}
        items = [_dumps({k: v for k, v in e.record.items() if k in fields}) if fields else e.body for e in rows]
        headers = [("X-WP-Total", str(total)), ("X-WP-TotalPages", str(total_pages))]
        if total_pages > page:
            headers.append(("Link", f'<{origin}{ROUTE}{name}?{urlencode({**query, "page": page + 1})}>; rel="next"'))
        return b"[" + b",".join(items) + b"]", headers


class WPError(Exception):
    """A `WP_Error` as the REST server renders it: `{"code", "message", "data": {"status", ...}}`."""

    def __init__(self, status: int, code: str, message: str, params: Any = None, details: Any = None) -> None:
        super().__init__(message)
        data = {"status": status, **({"params": params, "details": details} if params else {})}
        self.status, self.body = status, _dumps({"code": code, "message": message, "data": data})


def _integer(query: dict[str, str], key: str, default: int, errors: dict, low: int, high: int = 0) -> int:
    """An integer argument checked against its schema's bounds (`high` 0: no upper bound)."""
    raw = query.get(key)
    if raw is None:
        return default
    if not _INTEGER.fullmatch(raw):
        errors[key] = ("rest_invalid_type", f"{key} is not of type integer.")
    elif high and not low <= int(raw) <= high:
        errors[key] = ("rest_out_of_bounds", f"{key} must be between {low} (inclusive) and {high} (inclusive)")
    elif int(raw) < low:
        errors[key] = ("rest_out_of_bounds", f"{key} must be greater than or equal to {low}")
    return default if key in errors else int(raw)


def _choice(query: dict[str, str], key: str, default: str, allowed: tuple[str, ...], errors: dict) -> str:
    value = query.get(key, default)
    if value not in allowed:
        listed = ", ".join(allowed[:-1]) + ("," if len(allowed) > 2 else "") + f" and {allowed[-1]}"
        errors[key] = ("rest_not_in_enum", f"{key} is not one of {listed}.")
    return value


def _site_local(value: str) -> Optional[str]:
    """`YYYY-MM-DDTHH:MM:SS`, optionally with `Z` or `+hh:mm`, as the site-local time it names."""
    if not _DATE.fullmatch(value):
        return None
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:  # matches the pattern but is no date, e.g. month 13
        return None
    return _wp(moment, SITE_TZ) if moment.tzinfo else value


class DemoHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, which the pipeline's connection pool relies on
    server: _Server

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        name = url.path[len(ROUTE) :].strip("/") if url.path.startswith(ROUTE) else ""
        query = dict(parse_qsl(url.query))
        try:
            self.admit(name, query)
            if name not in self.server.site.collections:
                raise WPError(404, "rest_no_route", "No route was found matching the URL and request method.")
            body, headers = self.server.site.list(name, query, self.server.origin)
            self._send(200, body, headers)
        except WPError as error:
            self._send(error.status, error.body, [])

    def admit(self, collection: str, query: dict[str, str]) -> None:
        """Servers built on this one (the tests' authenticated site) refuse a request here."""

    def _send(self, status: int, body: bytes, headers: list[tuple[str, str]]) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(body)))
        for key, value in headers:
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the demo's output is the pipeline's progress, not an access log."""


class _Server(ThreadingHTTPServer):
    request_queue_size = 128  # the pipeline opens dozens of connections at once
    site: DemoSite
    origin: str


class DemoServer:
    """The demo site on 127.0.0.1 at a free port, served from a daemon thread inside `with`."""

    def __init__(self, pages: int = 2000, media: int = 1000) -> None:
        self._httpd = _Server(("127.0.0.1", 0), DemoHandler)
        self._httpd.origin = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._httpd.site = self.site = DemoSite(self._httpd.origin, pages, media)
        self.base_url = f"{self._httpd.origin}{ROUTE}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="demo-site", daemon=True)

    def describe(self) -> str:
        counts = {name: len(records) for name, records in self.site.collections.items()}
        return f"WordPress-shaped site with {counts['pages']} pages and {counts['media']} media"

    def __enter__(self) -> DemoServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()
