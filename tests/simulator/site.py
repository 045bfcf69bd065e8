"""The simulated WordPress site: records, a clock, and thread-safe edits (no HTTP here).

Why it is shaped like this:

* Times. WordPress stores every post twice — ``post_modified`` in site-local wall-clock time and
  ``post_modified_gmt`` in UTC — and the REST filters (``modified_after`` …) compare against the
  *local* column. A record therefore keeps ``modified_gmt`` as the truth and derives the local
  string from the site timezone, which reproduces the DST fall-back hour where two different
  instants share one local string.
* The clock is injectable so tests can place edits at exact seconds (ties, DST, lag windows).
* Ids come from one counter shared by all collections, as WordPress post ids do; revisions
  consume ids too, so ids are increasing but not contiguous.
* Concurrency. The HTTP server reads while tests mutate from another thread: one re-entrant lock
  guards everything, each collection has a version number bumped by every mutation, and derived
  data (a record's JSON bytes, a sorted list view) is cached against it.
"""

from __future__ import annotations

import json
import re
import threading
import unicodedata
from collections import OrderedDict
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import quote
from zoneinfo import ZoneInfo

from . import records as R
from .records import CollectionSpec, Record

T = TypeVar("T")

_MAX_VIEWS = 64
_NOT_SLUG = re.compile(r"[^a-z0-9]+")
_CONTENT_KEYS = frozenset({"title", "content", "excerpt"})


def _real_now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def to_utc(value: datetime | str) -> datetime:
    """An aware UTC datetime at whole seconds; naive values and zone-less strings are UTC."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).replace(microsecond=0)


def sanitize_title(title: str) -> str:
    """WordPress's ``sanitize_title_with_dashes``: accents dropped, other non-ASCII %-encoded."""
    if title.isascii():
        return _NOT_SLUG.sub("-", title.lower()).strip("-")[:200] or "untitled"
    decomposed = unicodedata.normalize("NFKD", title)
    out: list[str] = []
    for ch in decomposed:
        if unicodedata.combining(ch):
            continue
        if ch.isascii():
            out.append(ch.lower() if ch.isalnum() else "-")
        else:
            out.append(quote(ch, safe="").lower())
    slug = "-".join(part for part in "".join(out).split("-") if part)
    return slug[:200] or "untitled"


class Site:
    """An in-memory WordPress site: collections of records, a timezone and a clock."""

    def __init__(
        self,
        timezone: str = "America/New_York",
        clock: Callable[[], datetime] | None = None,
        url: str = "http://bulletin.example.edu",
        collections: Iterable[CollectionSpec] = R.DEFAULT_COLLECTIONS,
    ) -> None:
        self.tz = ZoneInfo(timezone)
        self.timezone = timezone
        # Used only where no server is involved (``get``); servers print their own origin.
        self.url = url.rstrip("/")
        self._clock: Callable[[], datetime] = clock or _real_now
        self.lock = threading.RLock()
        self._specs: dict[str, CollectionSpec] = {}
        self._records: dict[str, dict[int, Record]] = {}
        self._versions: dict[str, int] = {}
        self._slugs: dict[str, set[str]] = {}
        self._by_id: dict[int, Record] = {}
        self._views: OrderedDict[tuple[Any, ...], tuple[int, Any]] = OrderedDict()
        self._next_id = 1
        for spec in collections:
            self.add_collection(spec)

    # -- clock ------------------------------------------------------------------------------

    @property
    def next_id(self) -> int:
        """The id the next created record gets (ids follow creation order, like auto-increment)."""
        return self._next_id

    def now(self) -> datetime:
        """The site's current time (aware UTC, whole seconds)."""
        return to_utc(self._clock())

    def set_clock(self, dt: datetime | str) -> None:
        """Freeze the clock at ``dt`` (naive means UTC)."""
        fixed = to_utc(dt)
        self._clock = lambda: fixed

    def advance_clock(self, **delta: float) -> datetime:
        """Move a frozen clock forward, e.g. ``advance_clock(seconds=1)``; returns the new now."""
        new = self.now() + timedelta(**delta)
        self.set_clock(new)
        return new

    def local(self, dt: datetime) -> str:
        """The site-local wall-clock string WordPress stores for the UTC instant ``dt``."""
        return R.wp_date(dt.astimezone(self.tz))

    # -- collections -----------------------------------------------------------------------
    def add_collection(self, spec: CollectionSpec) -> None:
        with self.lock:
            self._specs[spec.name] = spec
            self._records.setdefault(spec.name, {})
            self._versions.setdefault(spec.name, 0)
            self._slugs.setdefault(spec.name, set())

    @property
    def collections(self) -> tuple[str, ...]:
        return tuple(self._specs)

    def spec(self, collection: str) -> CollectionSpec:
        try:
            return self._specs[collection]
        except KeyError:
            raise KeyError(f"no collection {collection!r}") from None

    def has_collection(self, collection: str) -> bool:
        return collection in self._specs

    def version(self, collection: str) -> int:
        return self._versions[collection]

    def records(self, collection: str) -> dict[int, Record]:
        """The live id → Record map. Hold ``site.lock`` while reading it from another thread."""
        return self._records[collection]

    def record(self, collection: str, id: int) -> Record | None:
        return self._records[collection].get(id)

    def count(self, collection: str) -> int:
        return len(self._records[collection])

    def memo(self, collection: str, key: tuple[Any, ...], factory: Callable[[], T]) -> T:
        """A value derived from ``collection``, recomputed after any mutation of it (LRU)."""
        with self.lock:
            full = (collection, *key)
            version = self._versions[collection]
            hit = self._views.get(full)
            if hit is not None and hit[0] == version:
                self._views.move_to_end(full)
                return hit[1]  # type: ignore[no-any-return]
            value = factory()
            self._views[full] = (version, value)
            self._views.move_to_end(full)
            while len(self._views) > _MAX_VIEWS:
                self._views.popitem(last=False)
            return value

    # -- visibility --------------------------------------------------------------------------
    def is_readable(self, rec: Record) -> bool:
        """``check_read_permission`` for an anonymous visitor (media inherit their parent's)."""
        spec = rec.spec
        if spec.public_status != "inherit":
            return rec.status == "publish"
        if rec.status != "inherit":
            return False
        seen = 0
        while rec.status == "inherit" and rec.parent and seen < 16:
            parent = self._by_id.get(rec.parent)
            if parent is None:
                return True
            rec, seen = parent, seen + 1
        return rec.status in ("publish", "inherit")

    # -- mutations ---------------------------------------------------------------------------
    def create(
        self,
        collection: str,
        *,
        id: int | None = None,
        at: datetime | str | None = None,
        **fields: Any,
    ) -> int:
        """Add a record and return its id.

        ``at`` (default: the clock) is both its date and its modification time unless
        ``date_gmt``/``modified_gmt`` are given. Any WordPress key can be set (``title``,
        ``content``, ``status``, ``password``, ``parent``/``post``, ``slug``, ``menu_order`` …);
        media also take ``width``, ``height`` and ``filesize`` for their ``media_details``.
        """
        with self.lock:
            spec = self.spec(collection)
            if id is None:
                rid = self._next_id
            elif id in self._by_id:
                raise ValueError(f"id {id} is already used")
            else:
                rid = id
            self._next_id = max(self._next_id, rid + 1)
            if "date_gmt" in fields and "modified_gmt" in fields:
                date_gmt = to_utc(fields.pop("date_gmt"))
                modified_gmt = to_utc(fields.pop("modified_gmt"))
            else:
                when = to_utc(at) if at is not None else self.now()
                date_gmt = to_utc(fields.pop("date_gmt", when))
                modified_gmt = to_utc(fields.pop("modified_gmt", when))
            title = fields.pop("title", None)
            if title is None:
                title = f"{spec.post_type.title()} {rid}"
            parent = int(fields.pop(spec.parent_key or "parent", 0) or 0)
            status = fields.pop("status", spec.public_status)
            self._check_status(spec, status)
            rec = Record(
                spec=spec,
                id=rid,
                status=status,
                password=fields.pop("password", "") or "",
                parent=parent,
                date_gmt=date_gmt,
                modified_gmt=modified_gmt,
                date=self.local(date_gmt),
                modified=self.local(modified_gmt),
                fields={},
            )
            slug = fields.pop("slug", None) or self._unique_slug(spec.name, sanitize_title(title))
            self._slugs[spec.name].add(slug)
            media_opts: dict[str, Any] = {k: fields.pop(k) for k in ("width", "height", "filesize") if k in fields}
            rec.fields = self._defaults(rec, slug, str(title), fields, media_opts)
            for key, value in fields.items():
                self._set_field(rec, key, value)
            rec.fields["link"] = fields.get("link") or self._link(rec)
            self._records[spec.name][rid] = rec
            self._by_id[rid] = rec
            self._versions[spec.name] += 1
            return rid

    def edit(self, collection: str, id: int, at: datetime | str | None = None, **changes: Any) -> None:
        """Change fields of a record and stamp it modified at ``at`` (default: the clock)."""
        with self.lock:
            rec = self._get(collection, id)
            for key, value in changes.items():
                self._set_field(rec, key, value)
            if "slug" in changes or rec.spec.parent_key in changes:
                rec.fields["link"] = changes.get("link") or self._link(rec)
            if rec.spec.revisions and _CONTENT_KEYS & changes.keys():
                # WordPress saves a revision (a post of its own, so it takes an id).
                rec.revisions.append(self._next_id)
                self._next_id += 1
            rec.modified_gmt = to_utc(at) if at is not None else self.now()
            rec.modified = self.local(rec.modified_gmt)
            rec.cached = None
            self._versions[collection] += 1

    def set_status(self, collection: str, id: int, status: str, at: datetime | str | None = None) -> None:
        """Publish, unpublish, trash … a record (stamps it modified, as ``wp_update_post``)."""
        self.edit(collection, id, at=at, status=status)

    def delete(self, collection: str, id: int) -> None:
        """Delete permanently. Child pages move up to the deleted page's parent *without*
        a new modified time (WordPress does it with a direct SQL update); attachments keep
        pointing at the gone parent, which makes them public."""
        with self.lock:
            rec = self._get(collection, id)
            del self._records[collection][id]
            del self._by_id[id]
            self._slugs[collection].discard(rec.fields.get("slug", ""))
            if rec.spec.parent_key == "parent":
                for child in self._records[collection].values():
                    if child.parent == id:
                        child.parent = rec.parent
                        child.cached = None
            self._versions[collection] += 1

    # -- reads -------------------------------------------------------------------------------
    def get(self, collection: str, id: int) -> dict[str, Any]:
        """The record as WordPress serves it to an admin (real status, unprotected content).

        URLs use ``site.url`` and galleries are numbered as in a one-record response.
        """
        with self.lock:
            rec = self._get(collection, id)
            item, _ = R.number_galleries(R.dumps(R.shape(rec, anonymous=False)), rec.galleries, 0)
        text = item.replace(R.ORIGIN_B, R.origin_json(self.url)).decode("ascii")
        return json.loads(text)  # type: ignore[no-any-return]

    def published_versions(self, collection: str) -> dict[int, str]:
        """id → ``modified_gmt`` of every record an anonymous list request can return now."""
        with self.lock:
            return {
                rec.id: R.wp_date(rec.modified_gmt)
                for rec in self._records[collection].values()
                if self.is_readable(rec)
            }

    def ids(self, collection: str) -> list[int]:
        with self.lock:
            return sorted(self._records[collection])

    # -- internals ---------------------------------------------------------------------------
    def _get(self, collection: str, id: int) -> Record:
        try:
            return self._records[self.spec(collection).name][id]
        except KeyError:
            raise KeyError(f"no record {id} in {collection!r}") from None

    @staticmethod
    def _check_status(spec: CollectionSpec, status: str) -> None:
        if status not in spec.statuses:
            raise ValueError(f"status {status!r} is not one of {spec.statuses} for {spec.name}")

    def _unique_slug(self, collection: str, slug: str) -> str:
        taken = self._slugs[collection]
        if slug not in taken:
            return slug
        n = 2
        while f"{slug}-{n}" in taken:
            n += 1
        return f"{slug}-{n}"

    def _link(self, rec: Record) -> str:
        slug = rec.fields["slug"]
        spec = rec.spec
        if spec.post_type == "page":
            path = [slug]
            parent, seen = self._by_id.get(rec.parent), 0
            while parent is not None and seen < 16:
                path.append(parent.fields["slug"])
                parent, seen = self._by_id.get(parent.parent), seen + 1
            return f"{R.ORIGIN}/{'/'.join(reversed(path))}/"
        if spec.post_type == "attachment":
            owner = self._by_id.get(rec.parent)
            if owner is not None:
                return f"{owner.fields['link']}{slug}/"
            return f"{R.ORIGIN}/{slug}/"
        return f"{R.ORIGIN}/{rec.date[:10].replace('-', '/')}/{slug}/"

    def _defaults(
        self,
        rec: Record,
        slug: str,
        title: str,
        given: dict[str, Any],
        media_opts: dict[str, Any],
    ) -> dict[str, Any]:
        spec = rec.spec
        fields: dict[str, Any] = {
            "guid": {"rendered": f"{R.ORIGIN}/?page_id={rec.id}"},
            "slug": slug,
            "title": {"rendered": R.texturize(title)},
            "author": 1,
            "comment_status": "closed",
            "ping_status": "closed",
            "template": "",
            "meta": [],
        }
        if spec.post_type == "attachment":
            uploaded = datetime.fromisoformat(rec.date)
            mime = given.pop("mime_type", "image/jpeg")
            fields.update(R.media_fields(slug=slug, uploaded=uploaded, mime_type=mime, **media_opts))
            fields.update(comment_status="open", caption={"rendered": ""}, alt_text="")
        else:
            fields.update(
                content={"rendered": "", "protected": False},
                excerpt={"rendered": "", "protected": False},
                featured_media=0,
            )
            if spec.post_type == "page":
                fields["menu_order"] = 0
            else:
                fields["guid"] = {"rendered": f"{R.ORIGIN}/?p={rec.id}"}
                fields.update(
                    comment_status="open",
                    ping_status="open",
                    sticky=False,
                    format="standard",
                    categories=[1],
                    tags=[],
                )
        # Keys a custom collection declares but this table does not know get a neutral value.
        for key in spec.keys:
            if key not in R.DERIVED_KEYS and key not in fields:
                fields[key] = {"rendered": ""} if key in R.RENDERED_KEYS else None
        return fields

    def _set_field(self, rec: Record, key: str, value: Any) -> None:
        spec = rec.spec
        if key == "status":
            self._check_status(spec, value)
            rec.status = value
        elif key == "password":
            rec.password = value or ""
        elif key in ("parent", "post") and key == (spec.parent_key or "parent"):
            rec.parent = int(value or 0)
        elif key == "date_gmt":
            rec.date_gmt = to_utc(value)
            rec.date = self.local(rec.date_gmt)
        elif key == "slug":
            self._slugs[spec.name].discard(rec.fields.get("slug", ""))
            rec.fields["slug"] = value
            self._slugs[spec.name].add(value)
        elif key == "content" and isinstance(value, str):
            rendered, rec.galleries = R.render_content(value, rec.id)
            rec.fields["content"] = {"rendered": rendered, "protected": False}
            if rec.auto_excerpt and "excerpt" in spec.keys:
                excerpt = R.auto_excerpt(rendered)
                rec.fields["excerpt"] = {"rendered": excerpt, "protected": False}
        elif key == "excerpt" and isinstance(value, str):
            rec.auto_excerpt = False
            rec.fields["excerpt"] = {"rendered": value, "protected": False}
        elif key == "title" and isinstance(value, str):
            rec.fields["title"] = {"rendered": R.texturize(value)}
        elif key in R.RENDERED_KEYS and isinstance(value, str):
            rec.fields[key] = {"rendered": value}
        elif key in spec.keys and key not in R.DERIVED_KEYS:
            rec.fields[key] = value
            if key == "content":
                rec.galleries = R.count_galleries(value.get("rendered", ""))
        else:
            raise ValueError(f"{spec.name} has no settable field {key!r}")
