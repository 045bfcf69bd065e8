"""List and single-item queries, with WordPress 6.1's validation, filtering and paging rules.

Pure functions over a ``Site`` (no HTTP). The rules reproduced here are the ones an incremental
loader trips over, so each is written down where it is implemented:

* Parameter errors come back as one ``rest_invalid_param`` listing every bad parameter, with
  the specific reason (``rest_out_of_bounds``, ``rest_invalid_date`` …) under ``data.details``.
* ``modified_after``/``before`` are converted to site-local wall-clock time and compared
  *strictly* against the local ``post_modified`` string at one-second resolution (MySQL).
* ``ORDER BY post_modified`` has no tie-breaker: with ``shuffle_ties`` rows that share a sort
  key come back in a fresh random order on every request, as MySQL may return them.
* Counting happens before permission checks: ``X-WP-Total`` counts rows the SQL query found, and
  media whose parent page is not public are dropped *after* the page was cut.
* A page past the end is a 400, but only when something exists at all.
"""

from __future__ import annotations

import math
import random
import re
from bisect import bisect_right
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qsl, quote_plus

from . import records as R
from .records import CollectionSpec, Record
from .site import Site

Params = dict[str, "str | list[str]"]


@dataclass
class WPError(Exception):
    """A ``WP_Error`` on its way to becoming a JSON error response."""

    code: str
    message: str
    status: int
    data: dict[str, Any] = field(default_factory=dict)

    def body(self) -> bytes:
        return R.dumps({"code": self.code, "message": self.message, "data": {"status": self.status, **self.data}})


def rest_no_route() -> WPError:
    return WPError("rest_no_route", "No route was found matching the URL and request method.", 404)


# -- query strings, the PHP way ---------------------------------------------------------------
_ARRAY_KEY = re.compile(r"^(?P<base>[^\[]+)\[(?P<index>[^\]]*)\]$")


def parse_query_string(qs: str) -> Params:
    """PHP's ``$_GET``: ``a[]=1&a[]=2`` is a list, a repeated plain key keeps its last value,
    and a key keeps the position where it first appeared."""
    params: Params = {}
    for key, value in parse_qsl(qs, keep_blank_values=True):
        m = _ARRAY_KEY.match(key)
        if m:
            base = m.group("base")
            current = params.get(base)
            if isinstance(current, list):
                current.append(value)
            else:
                params[base] = [value]
        else:
            params[key] = value
    return params


def php_urlencode(value: str) -> str:
    return quote_plus(value, safe="").replace("~", "%7E")


def build_query(params: Params) -> str:
    """``add_query_arg(urlencode_deep(...))``: lists as ``k%5B0%5D=v``; ``k=`` loses its ``=``."""
    parts: list[str] = []
    for key, value in params.items():
        if isinstance(value, list):
            parts.extend(f"{key}%5B{i}%5D={php_urlencode(v)}" for i, v in enumerate(value))
        else:
            parts.append(f"{key}={php_urlencode(value)}")
    return re.sub(r"=(&|$)", r"\1", "&".join(parts))


def page_link(base_url: str, params: Params, page: int) -> str:
    """The request's own query with ``page`` replaced in place (or appended)."""
    linked = dict(params)
    linked["page"] = str(page)
    return f"{base_url}?{build_query(linked)}"


def parse_list(value: str | list[str]) -> list[str]:
    """``wp_parse_list``: a list, or a string split on commas and whitespace."""
    if isinstance(value, list):
        return [v for v in value if v != ""]
    return [v for v in re.split(r"[\s,]+", value) if v]


# -- validation -------------------------------------------------------------------------------
_NUMERIC = re.compile(r"^\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*$")
_RFC3339 = re.compile(
    r"^(?P<y>\d{4})-(?P<mo>\d{2})-(?P<d>\d{2})[Tt ](?P<h>\d{2}):(?P<mi>\d{2}):(?P<s>\d{2})"
    r"(?:\.\d+)?(?P<zone>Z|[+-]\d{2}(?::\d{2})?)?$"
)


def _as_integer(value: Any) -> int | None:
    """``rest_is_integer`` then ``(int)``; None when PHP would call it not an integer."""
    if not isinstance(value, str) or not _NUMERIC.match(value):
        return None
    number = float(value)
    if number != round(number):
        return None
    return int(number)


def wp_sprintf_l(items: list[str]) -> str:
    if len(items) <= 2:
        return " and ".join(items)
    return ", ".join(items[:-1]) + ", and " + items[-1]


def local_datetime(value: str, site: Site) -> str:
    """``rest_parse_date`` validation, then ``WP_Date_Query::build_mysql_datetime``: the site-local
    wall-clock string the SQL compares with (zone converted, fraction dropped)."""
    m = _RFC3339.match(value)
    if not m:
        raise ValueError("not RFC 3339")
    y, mo, d = int(m["y"]), int(m["mo"]), int(m["d"])
    h, mi, s = int(m["h"]), int(m["mi"]), int(m["s"])
    if not (1 <= mo <= 12 and 1 <= d <= 31 and h <= 24 and mi <= 59 and s <= 59):
        raise ValueError("out of range")
    # PHP rolls day/hour overflow forward (Feb 30 → Mar 1) instead of failing.
    naive = datetime(y, mo, 1) + timedelta(days=d - 1, hours=h, minutes=mi, seconds=s)
    zone = m["zone"]
    if zone:
        if zone == "Z":
            tz: timezone = UTC
        else:
            sign = -1 if zone[0] == "-" else 1
            tz = timezone(sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6] or 0)))
        instant = naive.replace(tzinfo=tz)
    else:
        # A wall-clock time in the site zone; a time inside the spring-forward gap moves on,
        # as PHP's date_create does.
        instant = naive.replace(tzinfo=site.tz)
    return R.wp_date(instant.astimezone(UTC).astimezone(site.tz))


@dataclass(frozen=True)
class ListQuery:
    page: int = 1
    per_page: int = 10
    offset: int = 0
    orderby: str = "date"
    order: str = "desc"
    fields: tuple[str, ...] = ()
    # Everything that selects or orders rows; the cache key of the sorted view.
    filters: tuple[tuple[str, Any], ...] = ()

    def filter(self, name: str) -> Any:
        for key, value in self.filters:
            if key == name:
                return value
        return None


_INT_LIST_PARAMS = ("include", "exclude", "parent", "parent_exclude", "author", "author_exclude")
_DATE_PARAMS = ("after", "before", "modified_after", "modified_before")
_MEDIA_TYPES = ("image", "video", "text", "application", "audio")


def _invalid(errors: dict[str, tuple[str, str, Any]]) -> WPError:
    return WPError(
        "rest_invalid_param",
        f"Invalid parameter(s): {', '.join(errors)}",
        400,
        {
            "params": {k: msg for k, (_, msg, _) in errors.items()},
            "details": {k: {"code": code, "message": msg, "data": data} for k, (code, msg, data) in errors.items()},
        },
    )


def _validate_common(params: Params) -> dict[str, tuple[str, str, Any]]:
    """The arguments with a ``validate_callback`` (checked first, in schema order)."""
    errors: dict[str, tuple[str, str, Any]] = {}
    context = params.get("context")
    if context is not None and context not in ("view", "embed", "edit"):
        errors["context"] = ("rest_not_in_enum", "context is not one of view, embed, and edit.", None)
    for name, low, high in (("page", 1, None), ("per_page", 1, 100)):
        if name not in params:
            continue
        number = _as_integer(params[name])
        if number is None:
            errors[name] = ("rest_invalid_type", f"{name} is not of type integer.", None)
        elif high is not None and not low <= number <= high:
            msg = f"{name} must be between {low} (inclusive) and {high} (inclusive)"
            errors[name] = ("rest_out_of_bounds", msg, None)
        elif number < low:
            msg = f"{name} must be greater than or equal to {low}"
            errors[name] = ("rest_out_of_bounds", msg, None)
    return errors


def parse_list_query(site: Site, spec: CollectionSpec, params: Params) -> ListQuery:
    """Validate and normalise list parameters; raises ``WPError`` exactly where WordPress would."""
    errors = _validate_common(params)
    if errors:
        raise _invalid(errors)
    filters: dict[str, Any] = {}
    orderby, order, offset = "date", "desc", 0
    for name, raw in params.items():
        if name in ("offset", "menu_order"):
            number = _as_integer(raw)
            if number is None:
                errors[name] = ("rest_invalid_type", f"{name} is not of type integer.", None)
            elif name == "offset":
                offset = abs(number)
            elif spec.post_type == "page":
                filters[name] = number
        elif name in _INT_LIST_PARAMS:
            ids: list[int] = []
            for i, item in enumerate(parse_list(raw)):
                number = _as_integer(item)
                if number is None:
                    errors[name] = ("rest_invalid_type", f"{name}[{i}] is not of type integer.", None)
                    break
                ids.append(number)
            if ids:
                filters[name] = tuple(ids)
        elif name == "slug":
            slugs = tuple(parse_list(raw))
            if slugs:
                filters[name] = slugs
        elif name in _DATE_PARAMS:
            try:
                filters[name] = local_datetime(raw if isinstance(raw, str) else "", site)
            except ValueError:
                errors[name] = ("rest_invalid_date", "Invalid date.", None)
        elif name == "order":
            if raw not in ("asc", "desc"):
                errors[name] = ("rest_not_in_enum", "order is not one of asc and desc.", None)
            else:
                order = str(raw)
        elif name == "orderby":
            if raw not in spec.orderby:
                msg = f"orderby is not one of {wp_sprintf_l(list(spec.orderby))}."
                errors[name] = ("rest_not_in_enum", msg, None)
            else:
                orderby = str(raw)
        elif name == "status":
            # sanitize_post_statuses: anything but the default needs an editor's capabilities.
            for status in parse_list(raw):
                if status != spec.public_status:
                    errors[name] = ("rest_forbidden_status", "Status is forbidden.", {"status": 401})
                    break
        elif name == "search" and isinstance(raw, str) and raw.strip():
            filters["search"] = raw.strip()
        elif name == "media_type" and spec.post_type == "attachment":
            if raw not in _MEDIA_TYPES:
                msg = f"media_type is not one of {wp_sprintf_l(list(_MEDIA_TYPES))}."
                errors[name] = ("rest_not_in_enum", msg, None)
            else:
                filters[name] = raw
        elif name == "mime_type" and spec.post_type == "attachment" and isinstance(raw, str):
            filters[name] = raw
    if errors:
        raise _invalid(errors)
    if orderby == "relevance" and "search" not in filters:
        raise WPError("rest_no_search_term_defined", "You need to define a search term to order by relevance.", 400)
    if orderby == "include" and "include" not in filters:
        raise WPError(
            "rest_orderby_include_missing_include",
            "You need to define an include parameter to order by include.",
            400,
        )
    if params.get("context") == "edit":
        raise WPError("rest_forbidden_context", "Sorry, you are not allowed to edit posts in this post type.", 401)
    page = _as_integer(params.get("page", "1")) or 1
    per_page = _as_integer(params.get("per_page", "10")) or 10
    fields = tuple(parse_list(params["_fields"])) if "_fields" in params else ()
    return ListQuery(
        page=page,
        per_page=per_page,
        offset=offset,
        orderby=orderby,
        order=order,
        fields=fields,
        filters=tuple(sorted(filters.items())),
    )


# -- selecting and ordering ---------------------------------------------------------------------
def _matches_search(rec: Record, terms: list[str]) -> bool:
    if rec.password:  # anonymous searches skip password-protected posts (WP_Query)
        return False
    f = rec.fields
    haystack = " ".join(
        str(f[k].get("rendered", "")) for k in ("title", "content", "excerpt", "caption", "description") if k in f
    ).casefold()
    for term in terms:
        if term.startswith("-") and len(term) > 1:
            if term[1:] in haystack:
                return False
        elif term not in haystack:
            return False
    return True


def _select(site: Site, spec: CollectionSpec, q: ListQuery) -> list[Record]:
    records = site.records(spec.name)
    include = q.filter("include")
    if include is not None:  # look the ids up rather than scan the whole collection
        candidates = [records[i] for i in dict.fromkeys(include) if i in records]
    else:
        candidates = list(records.values())
    rows = [r for r in candidates if r.status == spec.public_status]
    for name, value in q.filters:
        if name == "include":
            continue
        elif name == "exclude":
            unwanted = set(value)
            rows = [r for r in rows if r.id not in unwanted]
        elif name == "parent":
            parents = set(value)
            rows = [r for r in rows if r.parent in parents]
        elif name == "parent_exclude":
            parents = set(value)
            rows = [r for r in rows if r.parent not in parents]
        elif name == "author":
            authors = set(value)
            rows = [r for r in rows if r.fields.get("author") in authors]
        elif name == "author_exclude":
            authors = set(value)
            rows = [r for r in rows if r.fields.get("author") not in authors]
        elif name == "slug":
            slugs = set(value)
            rows = [r for r in rows if r.fields.get("slug") in slugs]
        elif name == "menu_order":
            rows = [r for r in rows if r.fields.get("menu_order") == value]
        elif name == "after":
            rows = [r for r in rows if r.date > value]
        elif name == "before":
            rows = [r for r in rows if r.date < value]
        elif name == "modified_after":
            rows = [r for r in rows if r.modified > value]
        elif name == "modified_before":
            rows = [r for r in rows if r.modified < value]
        elif name == "media_type":
            rows = [r for r in rows if r.fields.get("media_type") == value]
        elif name == "mime_type":
            rows = [r for r in rows if r.fields.get("mime_type") == value]
        elif name == "search":
            terms = value.casefold().split()
            rows = [r for r in rows if _matches_search(r, terms)]
    return rows


def _sort_key(q: ListQuery) -> Callable[[Record], Any]:
    orderby = q.orderby
    if orderby == "modified":
        return lambda r: r.modified
    if orderby == "id":
        return lambda r: r.id
    if orderby == "title":
        return lambda r: r.fields["title"]["rendered"].casefold()
    if orderby in ("slug", "include_slugs"):
        if orderby == "include_slugs" and q.filter("slug"):
            position = {s: i for i, s in enumerate(q.filter("slug"))}
            return lambda r: position.get(r.fields["slug"], len(position))
        return lambda r: r.fields["slug"]
    if orderby == "menu_order":
        return lambda r: r.fields.get("menu_order", 0)
    if orderby == "parent":
        return lambda r: r.parent
    if orderby == "author":
        return lambda r: r.fields.get("author", 0)
    if orderby == "include":
        position = {i: n for n, i in enumerate(q.filter("include"))}
        return lambda r: position[r.id]
    if orderby == "relevance":
        phrase = q.filter("search").casefold()
        terms = phrase.split()

        def relevance(r: Record) -> Any:
            title = r.fields["title"]["rendered"].casefold()
            rank = 1 if phrase in title else 2 if all(t in title for t in terms) else 3
            return (-rank, r.date)

        return relevance
    return lambda r: r.date


@dataclass
class View:
    """Rows in final order, plus where each run of equal sort keys (a tie group) starts."""

    rows: list[Record]
    group_starts: list[int]


def build_view(site: Site, spec: CollectionSpec, q: ListQuery) -> View:
    rows = _select(site, spec, q)
    key = _sort_key(q)
    # Deterministic tie-break: id descending, whatever the direction.
    descending = q.order == "desc" and q.orderby not in ("include", "include_slugs", "relevance")
    if q.orderby == "relevance":
        rows.sort(key=lambda r: r.id, reverse=True)
        rows.sort(key=key, reverse=True)
    elif descending:
        rows.sort(key=lambda r: (key(r), r.id), reverse=True)
    else:
        rows.sort(key=lambda r: r.id, reverse=True)
        rows.sort(key=key)
    starts: list[int] = []
    previous: Any = object()
    for i, rec in enumerate(rows):
        k = key(rec)
        if k != previous:
            starts.append(i)
            previous = k
    return View(rows, starts)


def _slice(view: View, start: int, stop: int, rng: random.Random | None) -> list[Record]:
    rows = view.rows
    if rng is None or len(view.group_starts) == len(rows):
        return rows[start:stop]
    starts = view.group_starts
    out: list[Record] = []
    g = bisect_right(starts, start) - 1
    while g < len(starts) and starts[g] < stop:
        gs = starts[g]
        ge = starts[g + 1] if g + 1 < len(starts) else len(rows)
        group = rows[gs:ge]
        if len(group) > 1:
            # MySQL may return equal keys in any order, and a new query may pick another.
            group = rng.sample(group, len(group))
        out.extend(group[max(start, gs) - gs : min(stop, ge) - gs])
        g += 1
    return out


@dataclass
class ListResult:
    total: int
    total_pages: int
    page: int
    items: list[tuple[bytes, int]]


def _item(rec: Record, fields: tuple[str, ...], origin: str, password: str | None = None) -> tuple[bytes, int]:
    if not fields and not (password and rec.password == password):
        return R.served_bytes(rec, origin), rec.galleries
    data = R.shape(rec, anonymous=not (password and rec.password == password))
    if fields:
        data = R.filter_fields(data, list(fields))
    item = R.dumps(data)
    return R.with_origin(item, origin), rec.galleries if b"@@WPSIM_GALLERY_" in item else 0


def run_list(
    site: Site, spec: CollectionSpec, q: ListQuery, origin: str, rng: random.Random | None = None
) -> ListResult:
    """``WP_REST_Posts_Controller::get_items`` for an anonymous visitor at ``origin``."""
    with site.lock:
        view = site.memo(spec.name, ("view", q.orderby, q.order, q.filters), lambda: build_view(site, spec, q))
        per_page, page = q.per_page, q.page
        start = q.offset if q.offset else (page - 1) * per_page
        rows = _slice(view, start, start + per_page, rng)
        counted = len(view.rows)
        if rows:
            total = counted
        elif page > 1 and not q.offset:
            # WP_Query found nothing, so found_posts is 0; the controller re-runs the query
            # without paging just to count, which is what makes "past the end" detectable.
            total = counted
        else:
            total = 0
        max_pages = math.ceil(total / per_page)
        if page > max_pages and total > 0:
            raise WPError(
                "rest_post_invalid_page_number",
                "The page number requested is larger than the number of pages available.",
                400,
            )
        # Permission checks run per row after the SQL LIMIT: hidden rows leave holes.
        items = [_item(rec, q.fields, origin) for rec in rows if site.is_readable(rec)]
    return ListResult(total=total, total_pages=max_pages, page=page, items=items)


def run_item(site: Site, spec: CollectionSpec, id: int, params: Mapping[str, Any], origin: str) -> tuple[bytes, int]:
    """``get_item``: 404 for a missing id (or another type), 401 for a non-public one."""
    context = params.get("context")
    if context is not None and context not in ("view", "embed", "edit"):
        raise _invalid({"context": ("rest_not_in_enum", "context is not one of view, embed, and edit.", None)})
    with site.lock:
        rec = site.record(spec.name, id)
        if rec is None:
            raise WPError("rest_post_invalid_id", "Invalid post ID.", 404)
        if not site.is_readable(rec):
            raise WPError("rest_forbidden", "Sorry, you are not allowed to do that.", 401)
        if context == "edit":
            raise WPError("rest_forbidden_context", "Sorry, you are not allowed to edit this post.", 401)
        fields = tuple(parse_list(params["_fields"])) if "_fields" in params else ()
        password = params.get("password")
        return _item(rec, fields, origin, password if isinstance(password, str) else None)
