"""Every id a collection serves now, with its version: the site side of `reconcile` and of the
deletion sweep.

A sweep lists `orderby=id&order=asc&per_page=100&_fields=id,modified,modified_gmt`, all pages at
once within `max_connections`, then reads page 1 again. It is complete only when every page
answered 200, `X-WP-Total`/`X-WP-TotalPages` never changed (page 1 re-read included), no id came
twice and the ids add up to the total. WordPress counts media attached to unpublished pages in
`X-WP-Total` but leaves them out of the list, so for `media` the ids may fall short of the total;
the shortfall is reported as hidden. Page numbers shift when the site changes mid-sweep, so an id
missing from a sweep is never taken as gone on the count alone: `confirm_gone` asks WordPress
for it by `include=` before anything is written.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import functools
import itertools
import json
from dataclasses import dataclass, field
from typing import Any, Callable, Deque, Dict, Generator, Iterable, List, Optional, Sequence, Set, Tuple, TypeVar
from urllib.parse import urlencode

import requests

from .digest import version_of
from .errors import WordPressError
from .extraction import collection_path
from .settings import BulletinSettings
from .transport import HttpxAdapter, WordPressResponse, site_auth
from .wordpress import MAX_BLIND_WINDOWS

SWEEP_PAGE = 100  # WordPress's maximum: the fewest requests
SWEEP_FIELDS = "id,modified,modified_gmt"
# REST paths whose X-WP-Total counts items a visitor is not shown (attachments of unpublished posts)
HIDDEN_ITEM_PATHS = frozenset({"media"})
T = TypeVar("T")


@dataclass
class Listing:
    """What one sweep of a collection saw; `complete` False says why in `problem`."""

    endpoint: str
    served: Dict[int, Optional[str]] = field(default_factory=dict)  # id -> version (digest.version_of)
    total: Optional[int] = None
    problem: Optional[str] = None

    @property
    def complete(self) -> bool:
        return self.problem is None

    @property
    def hidden(self) -> int:
        """Items X-WP-Total counts that the listing does not show."""
        return max(0, (self.total or 0) - len(self.served))


class SweepIncomplete(WordPressError):
    """A sweep that cannot prove it saw every record: nothing may be concluded from its absences."""


def sweep(adapter: HttpxAdapter, settings: BulletinSettings, endpoint: str) -> Listing:
    """List every record `endpoint` serves; a listing that is not complete names its problem."""
    listing = Listing(endpoint)
    try:
        _sweep(adapter, settings, endpoint, listing)
    except WordPressError as exc:
        listing.problem = str(exc)
    return listing


def _sweep(adapter: HttpxAdapter, settings: BulletinSettings, endpoint: str, listing: Listing) -> None:
    first = _get(adapter, settings, endpoint, page=1)
    total, pages = _totals(first)
    if total is None or pages is None:
        raise SweepIncomplete("the site sent no X-WP-Total/X-WP-TotalPages (a proxy strips them?)")
    listing.total = total
    hidden_allowed = collection_path(settings, endpoint) in HIDDEN_ITEM_PATHS
    blind = 0
    fetch = functools.partial(_get, adapter, settings, endpoint)
    with contextlib.closing(_in_order(settings, fetch, range(2, pages + 1))) as rest:
        for page, answer in enumerate(itertools.chain([first], rest), start=1):
            _check_totals(answer, total, pages)
            records = _records(answer)
            blind = 0 if records else blind + 1
            if page < pages and (blind > MAX_BLIND_WINDOWS or (blind and not hidden_allowed)):
                raise SweepIncomplete(f"page {page} of {pages} lists nothing: X-WP-Total ({total}) overstates")
            for record in records:
                record_id = record.get("id")
                if type(record_id) is not int:
                    raise SweepIncomplete(f"a record without an integer id: {str(record)[:80]}")
                if record_id in listing.served:
                    raise SweepIncomplete(f"id {record_id} listed twice (the site changed during the sweep)")
                listing.served[record_id] = version_of(record)
    again = _get(adapter, settings, endpoint, page=1)
    _check_totals(again, total, pages)
    if [r.get("id") for r in _records(first)] != [r.get("id") for r in _records(again)]:
        raise SweepIncomplete("the first page changed during the sweep (the site changed)")
    count = len(listing.served)
    if count > total or (count < total and not hidden_allowed):
        raise SweepIncomplete(f"{count} ids listed but X-WP-Total says {total}")


def confirm_gone(
    adapter: HttpxAdapter, settings: BulletinSettings, endpoint: str, ids: Iterable[int]
) -> Tuple[Set[int], Dict[int, Optional[str]]]:
    """(ids WordPress does not serve now, ids it still serves -> their version), asked by `include=`
    a page of ids at a time; raises `SweepIncomplete` when any answer fails."""
    wanted = sorted(set(ids))
    still: Dict[int, Optional[str]] = {}
    batches = [wanted[i : i + SWEEP_PAGE] for i in range(0, len(wanted), SWEEP_PAGE)]
    try:
        answers = list(_in_order(settings, lambda batch: _get(adapter, settings, endpoint, 1, batch), batches))
    except WordPressError as exc:
        raise SweepIncomplete(str(exc), url=exc.url) from exc
    for answer in answers:
        for record in _records(answer):
            if type(record.get("id")) is int:
                still[record["id"]] = version_of(record)
    return set(wanted) - set(still), still


def _in_order(
    settings: BulletinSettings, fetch: Callable[[T], WordPressResponse], items: Iterable[T]
) -> Generator[WordPressResponse, None, None]:
    """`fetch` of every item, answered in order, `max_connections` in flight and as many queued;
    closing the generator (or a failure) cancels the rest."""
    connections = max(1, settings.http.max_connections)
    pool = concurrent.futures.ThreadPoolExecutor(connections, thread_name_prefix="sweep")
    pending: Deque[concurrent.futures.Future[WordPressResponse]] = collections.deque()
    try:
        for item in items:
            pending.append(pool.submit(fetch, item))
            if len(pending) >= 2 * connections:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _get(
    adapter: HttpxAdapter, settings: BulletinSettings, endpoint: str, page: int, include: Sequence[int] = ()
) -> WordPressResponse:
    params: Dict[str, Any] = {**(settings.collection(endpoint).params or {})}
    params.update(orderby="id", order="asc", per_page=SWEEP_PAGE, page=page, _fields=SWEEP_FIELDS)
    if include:
        params["include"] = ",".join(map(str, include))
    url = f"{settings.base_url}{collection_path(settings, endpoint)}?{urlencode(params)}"
    request = requests.Request("GET", url, auth=site_auth(settings.http)).prepare()  # Authorization, if any
    return adapter.fetch(url, {k: str(v) for k, v in request.headers.items()})


def _check_totals(answer: WordPressResponse, total: int, pages: int) -> None:
    now_total, now_pages = _totals(answer)
    if (now_total, now_pages) != (total, pages):
        raise SweepIncomplete(f"X-WP-Total changed from {total} to {now_total} during the sweep (the site changed)")


def _totals(answer: WordPressResponse) -> Tuple[Optional[int], Optional[int]]:
    return _int(answer.headers.get("X-WP-Total")), _int(answer.headers.get("X-WP-TotalPages"))


def _int(value: Optional[str]) -> Optional[int]:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _records(answer: WordPressResponse) -> List[Dict[str, Any]]:
    try:
        body = json.loads(answer.content)
    except ValueError as exc:
        raise SweepIncomplete(f"a page that is not JSON ({exc})") from exc
    if not isinstance(body, list) or not all(isinstance(r, dict) for r in body):
        raise SweepIncomplete("a page that is not a JSON list of records")
    return body
