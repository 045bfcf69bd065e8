"""A small hostile WordPress-shaped server for tests (standard library only, real HTTP on loopback).

It serves the list routes of `collections` (name -> list of record dicts, which a test may edit
between runs) as WordPress answers an anonymous list request, for the parameters the pipeline
sends: `orderby` (date, id or modified), `order`, `per_page` (1..100), `offset` or `page`,
`modified_after`, `include`, `_fields`. Where the simulator is well-behaved, knobs make it misbehave:

* `total`: "honest" (the matches; 0 for a window past the end, as WordPress), None (X-WP-Total and
  X-WP-TotalPages stripped, as proxies and caching plugins do) or an int sent whatever the
  listing holds (a lie: 10, 10**8);
* `trickle`: seconds between the bytes of each list answer's body (headers go at once);
* `date_header`: "clock" (the settable `now`), a fixed aware datetime, or None (no `Date`);
* `budget`: beyond that many requests every answer is HTTP 400, so a client that never stops
  fails the test in seconds instead of hanging it.

`modified_after` must be zone-less `YYYY-MM-DDTHH:MM:SS` (what the pipeline sends; anything else
is answered 400 `rest_invalid_param`) and is compared as a string with each record's `modified`,
as WordPress's SQL compares the stored value: `...Z` and `9999-99-99 garbage` are listed when they
sort after it. A `modified` that is not a string (a plugin rewrote the field on output, so the
stored value WordPress filtered on is not the one printed) is always listed.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, List, Optional, Tuple, Union
from urllib.parse import parse_qsl, urlsplit

ROUTE = "/wp-json/wp/v2/"
WP_FORMAT = "%Y-%m-%dT%H:%M:%S"
CLOCK = dt.datetime(2025, 6, 2, 12, 0, 0, tzinfo=dt.UTC)
# behind UTC: a cursor capped at UTC "now" instead of site-local "now" runs hours ahead of the site
SITE_TZ = dt.timezone(dt.timedelta(hours=-5), "site")
_WP_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}")
Headers = List[Tuple[str, str]]


def stamp(record: Dict[str, Any], moment: dt.datetime, tz: dt.tzinfo = SITE_TZ) -> Dict[str, Any]:
    """Set `modified` (site-local) and `modified_gmt` to the aware `moment`, as an edit does."""
    record["modified"] = moment.astimezone(tz).strftime(WP_FORMAT)
    record["modified_gmt"] = moment.astimezone(dt.UTC).strftime(WP_FORMAT)
    return record


def record(collection: str, id: int, moment: dt.datetime, tz: dt.tzinfo = SITE_TZ) -> Dict[str, Any]:
    """A minimal `pages` or `media` record that passes its schema, created and modified at `moment`."""
    base: Dict[str, Any] = {"id": id, "date": moment.astimezone(tz).strftime(WP_FORMAT)}
    stamp(base, moment, tz)
    base.update(slug=f"{collection}-{id}", status="publish", type="page", link=f"https://example.edu/?p={id}")
    base["title"] = {"rendered": f"{collection} {id}"}
    if collection == "media":
        return {**base, "status": "inherit", "type": "attachment", "media_type": "image", "mime_type": "image/jpeg",
                "source_url": f"https://example.edu/wp-content/uploads/{id}.jpg"}  # fmt: skip
    text = {"rendered": f"<p>{collection} {id}</p>\n", "protected": False}
    return {**base, "content": text, "excerpt": text}


class WPError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.body = status, json.dumps({"code": code, "message": message, "data": {"status": status}})


class HostileServer:
    """`with HostileServer({"pages": [...]}) as server:` serves at `server.base_url` on 127.0.0.1."""

    def __init__(
        self,
        collections: Dict[str, List[Dict[str, Any]]],
        *,
        now: dt.datetime = CLOCK,
        total: Union[str, int, None] = "honest",
        trickle: Optional[float] = None,
        date_header: Union[str, dt.datetime, None] = "clock",
        budget: int = 500,
    ) -> None:
        self.collections, self.now, self.total, self.trickle = collections, now, total, trickle
        self.date_header, self.budget = date_header, budget
        self.requests: List[Tuple[str, Dict[str, str]]] = []  # (path, query) of every request
        self.stopped = threading.Event()
        self._lock = threading.Lock()
        self._httpd = _Server(("127.0.0.1", 0), _Handler)
        self._httpd.hostile = self
        self.base_url = f"http://127.0.0.1:{self._httpd.server_address[1]}{ROUTE}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="hostile-site", daemon=True)

    def count(self, collection: str) -> int:
        """List requests made for `collection` so far."""
        with self._lock:
            return sum(1 for path, _ in self.requests if path.rstrip("/") == ROUTE + collection)

    def answer(self, path: str, query: Dict[str, str]) -> Tuple[int, Headers, bytes]:
        with self._lock:
            self.requests.append((path, query))
            over_budget = len(self.requests) > self.budget
        headers: Headers = []
        stated = self.now if self.date_header == "clock" else self.date_header
        if isinstance(stated, dt.datetime):
            headers.append(("Date", email.utils.format_datetime(stated.astimezone(dt.UTC), usegmt=True)))
        name = path[len(ROUTE) :].strip("/") if path.startswith(ROUTE) else ""
        try:
            if over_budget:
                raise WPError(400, "hostile_budget", f"more than {self.budget} requests: the client does not stop")
            if name not in self.collections:
                raise WPError(404, "rest_no_route", "No route was found matching the URL and request method.")
            body, listing_headers = self._list(self.collections[name], query)
            return 200, headers + listing_headers, body
        except WPError as error:
            return error.status, headers, error.body.encode()

    def _list(self, records: List[Dict[str, Any]], query: Dict[str, str]) -> Tuple[bytes, Headers]:
        try:
            per_page, offset = int(query.get("per_page", "10")), int(query.get("offset", "0"))
            offset = offset or (int(query.get("page", "1")) - 1) * per_page
            include = {int(i) for i in query["include"].split(",")} if query.get("include") else None
        except ValueError:
            raise WPError(400, "rest_invalid_param", "Invalid parameter(s): per_page, offset, page, include") from None
        after, orderby = query.get("modified_after"), query.get("orderby", "date")
        if not 1 <= per_page <= 100 or offset < 0 or orderby not in ("date", "id", "modified"):
            raise WPError(400, "rest_invalid_param", "Invalid parameter(s): per_page, offset, orderby")
        if after is not None and not _WP_DATETIME.fullmatch(after):
            raise WPError(400, "rest_invalid_param", "Invalid parameter(s): modified_after")
        rows = [r for r in records if after is None or not isinstance(r.get("modified"), str) or r["modified"] > after]
        rows = [r for r in rows if include is None or r.get("id") in include]
        rows.sort(key=lambda r: r["id"] if orderby == "id" else str(r.get(orderby)))
        if query.get("order", "desc") == "desc":  # WordPress's default order
            rows.reverse()
        window = rows[offset : offset + per_page]
        if query.get("_fields"):
            fields = query["_fields"].split(",")
            window = [{k: r[k] for k in fields if k in r} for r in window]
        headers: Headers = []
        # WordPress counts only a query that returned rows: a window past the end says 0
        honest = len(rows) if window or offset == 0 else 0
        total = honest if self.total == "honest" else self.total
        if isinstance(total, int):
            headers += [("X-WP-Total", str(total)), ("X-WP-TotalPages", str(-(-total // per_page)))]
        return json.dumps(window).encode(), headers

    def __enter__(self) -> HostileServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()  # ends trickles still in progress
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as WordPress behind any web server
    server: _Server

    def do_GET(self) -> None:
        site = self.server.hostile
        url = urlsplit(self.path)
        status, headers, body = site.answer(url.path, dict(parse_qsl(url.query)))
        self.send_response_only(status)  # not send_response: it would add its own Date
        for key, value in [*headers, ("Content-Type", "application/json; charset=UTF-8")]:
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        trickle = site.trickle if status == 200 else None
        if trickle is None:
            self.wfile.write(body)
            return
        self.close_connection = True
        try:
            for index in range(len(body)):
                if site.stopped.wait(trickle):
                    return
                self.wfile.write(body[index : index + 1])
        except OSError:  # the client gave up: what a trickle is for
            return

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the tests assert on the request log, not an access log."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64  # the pipeline opens many connections at once
    hostile: HostileServer
