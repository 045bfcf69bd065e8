"""The shape of a WordPress REST record, and its serialised bytes.

Why a separate module: the data model (``site.py``) decides *what* a record is; this module
decides *how WordPress prints it* — the exact key sets and order of each collection, the
``{"rendered": ...}`` objects, ``_links``, the password rule, and the two tokens that make caching
possible:

* ``ORIGIN`` stands for the scheme+host+port a client reached. WordPress prints absolute URLs
  everywhere (``link``, ``guid``, ``_links``, image ``src``); the same cached bytes can then be
  served by any number of servers, each filling in its own origin once per record
  (``served_bytes``, cached on the record beside the tokenised bytes).
* ``gallery_token(j)`` stands for the number of the j-th ``[gallery]`` of a record. WordPress
  numbers galleries by their position *in the response* (``id='gallery-N'``), so an unchanged
  record can render different bytes in two responses; the number is filled in at assembly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .wpjson import dumps

ORIGIN = "@@WPSIM_ORIGIN@@"
ORIGIN_B = ORIGIN.encode("ascii")
_REST = ORIGIN + "/wp-json/wp/v2"

PAGE_KEYS = (
    "id", "date", "date_gmt", "guid", "modified", "modified_gmt", "slug", "status", "type", "link",
    "title", "content", "excerpt", "author", "featured_media", "parent", "menu_order",
    "comment_status", "ping_status", "template", "meta", "_links",
)  # fmt: skip
MEDIA_KEYS = (
    "id", "date", "date_gmt", "guid", "modified", "modified_gmt", "slug", "status", "type", "link",
    "title", "author", "comment_status", "ping_status", "template", "meta", "description",
    "caption", "alt_text", "media_type", "mime_type", "media_details", "post", "source_url",
    "_links",
)  # fmt: skip
POST_KEYS = (
    "id", "date", "date_gmt", "guid", "modified", "modified_gmt", "slug", "status", "type", "link",
    "title", "content", "excerpt", "author", "featured_media", "comment_status", "ping_status",
    "sticky", "template", "format", "meta", "categories", "tags", "_links",
)  # fmt: skip

# Keys computed from the record's attributes, never stored in ``Record.fields``.
DERIVED_KEYS = frozenset(
    {"id", "date", "date_gmt", "modified", "modified_gmt", "status", "type", "parent", "post"} | {"_links"}
)
RENDERED_KEYS = frozenset({"guid", "title", "content", "excerpt", "caption", "description"})
PROTECTABLE_KEYS = ("content", "excerpt")

_ORDERBY_POSTS = (
    "author", "date", "id", "include", "modified", "parent", "relevance", "slug",
    "include_slugs", "title",
)  # fmt: skip


@dataclass(frozen=True)
class CollectionSpec:
    """One REST collection (``/wp/v2/<name>``) and the WordPress post type behind it."""

    name: str
    post_type: str
    keys: tuple[str, ...]
    # The one status an anonymous list query selects (WP_Query ``post_status``).
    public_status: str
    statuses: tuple[str, ...]
    orderby: tuple[str, ...]
    # Where ``post_parent`` shows: "parent" (pages), "post" (media) or None (posts).
    parent_key: str | None
    revisions: bool = True


PAGES = CollectionSpec(
    name="pages",
    post_type="page",
    keys=PAGE_KEYS,
    public_status="publish",
    statuses=("publish", "future", "draft", "pending", "private", "trash"),
    orderby=(*_ORDERBY_POSTS, "menu_order"),
    parent_key="parent",
)
POSTS = CollectionSpec(
    name="posts",
    post_type="post",
    keys=POST_KEYS,
    public_status="publish",
    statuses=("publish", "future", "draft", "pending", "private", "trash"),
    orderby=_ORDERBY_POSTS,
    parent_key=None,
)
MEDIA = CollectionSpec(
    name="media",
    post_type="attachment",
    keys=MEDIA_KEYS,
    public_status="inherit",
    statuses=("inherit", "private", "trash"),
    orderby=_ORDERBY_POSTS,
    parent_key="post",
    revisions=False,
)
DEFAULT_COLLECTIONS = (PAGES, MEDIA, POSTS)


@dataclass(eq=False, slots=True)
class Record:
    """One stored post. ``fields`` holds the WordPress-shaped values of the non-derived keys."""

    spec: CollectionSpec
    id: int
    status: str
    password: str
    parent: int
    date_gmt: datetime
    modified_gmt: datetime
    date: str  # site-local ``post_date`` as WordPress prints it
    modified: str  # site-local ``post_modified`` (what modified_after compares against)
    fields: dict[str, Any]
    revisions: list[int] = field(default_factory=list)
    auto_excerpt: bool = True
    galleries: int = 0
    # Anonymous-view bytes with ORIGIN and gallery tokens still in place; None when stale.
    cached: bytes | None = None
    # (origin, the `cached` bytes it was made from, those bytes with the origin filled in)
    served: tuple[str, bytes, bytes] | None = None


def wp_date(dt: datetime) -> str:
    """WordPress's REST date format: ``2024-01-26T10:00:25`` (no zone, no fraction)."""
    return dt.replace(tzinfo=None, microsecond=0).isoformat()


def gallery_token(j: int) -> str:
    return f"@@WPSIM_GALLERY_{j}@@"


_GALLERY_TOKENS_B = [gallery_token(j).encode("ascii") for j in range(64)]
_SHORTCODE_GALLERY = re.compile(r"\[gallery(?P<attrs>[^\]]*)\]")
_IDS = re.compile(r"ids=[\"']?(?P<ids>[0-9, ]+)")
_TAG = re.compile(r"<[^>]*>")
_STYLE = re.compile(r"<(style|script)[^>]*>.*?</\1>", re.S)
_SHORTCODE = re.compile(r"\[/?[a-z_]+[^\]]*\]")
_GALLERY_DIV = re.compile(r"<div id='gallery-.*?</div>\n", re.S)


def gallery_html(j: int, post_id: int, items: list[tuple[str, str]]) -> str:
    """What WordPress 6.1's ``gallery_shortcode`` prints; ``items`` are (link, thumbnail src)."""
    n = gallery_token(j)
    figures = "".join(
        "<figure class='gallery-item'>\n\t\t\t<div class='gallery-icon landscape'>\n\t\t\t\t"
        f'<a href=\'{link}\'><img width="150" height="150" src="{src}" '
        'class="attachment-thumbnail size-thumbnail" alt="" decoding="async" loading="lazy" />'
        "</a>\n\t\t\t</div></figure>"
        for link, src in items
    )
    return (
        f"\n\t\t<style type='text/css'>\n\t\t\t#gallery-{n} {{\n\t\t\t\tmargin: auto;\n\t\t\t}}\n"
        f"\t\t\t#gallery-{n} .gallery-item {{\n\t\t\t\tfloat: left;\n\t\t\t\tmargin-top: 10px;\n"
        "\t\t\t\ttext-align: center;\n\t\t\t\twidth: 33%;\n\t\t\t}\n"
        f"\t\t\t#gallery-{n} img {{\n\t\t\t\tborder: 2px solid #cfcfcf;\n\t\t\t}}\n"
        f"\t\t\t#gallery-{n} .gallery-caption {{\n\t\t\t\tmargin-left: 0;\n\t\t\t}}\n"
        "\t\t\t/* see gallery_shortcode() in wp-includes/media.php */\n\t\t</style>"
        f"<div id='gallery-{n}' class='gallery galleryid-{post_id} gallery-columns-3 "
        f"gallery-size-thumbnail'>{figures}\n\t\t</div>\n"
    )


def render_content(raw: str, post_id: int) -> tuple[str, int]:
    """Expand ``[gallery ids="..."]`` shortcodes; returns (rendered html, number of galleries)."""
    if "[gallery" not in raw:
        return raw, 0
    count = 0

    def expand(m: re.Match[str]) -> str:
        nonlocal count
        ids_match = _IDS.search(m.group("attrs"))
        ids = [int(x) for x in re.split(r"[ ,]+", ids_match.group("ids")) if x] if ids_match else []
        items = [(f"{ORIGIN}/?attachment_id={i}", f"{ORIGIN}/wp-content/uploads/gallery-{i}-150x150.jpg") for i in ids]
        count += 1
        return gallery_html(count - 1, post_id, items)

    return _SHORTCODE_GALLERY.sub(expand, raw), count


def count_galleries(rendered: str) -> int:
    count = 0
    while gallery_token(count) in rendered:
        count += 1
    return count


def auto_excerpt(content: str, words: int = 55) -> str:
    """``wp_trim_excerpt`` + ``wpautop``: first 55 words of the text, then `` [&hellip;]``."""
    size = 1500
    while True:
        head = content[:size]
        if "<style" in head:
            head = _GALLERY_DIV.sub("", _STYLE.sub("", head))
        text = _TAG.sub("", head)
        if "[" in text:
            text = _SHORTCODE.sub("", text)
        parts = text.split()
        if len(parts) > words or size >= len(content):
            break
        size *= 4
    if not parts:
        return ""
    more = len(parts) > words
    return f"<p>{' '.join(parts[:words])}{' [&hellip;]' if more else ''}</p>\n"


def _links(rec: Record) -> dict[str, Any]:
    spec = rec.spec
    base = f"{_REST}/{spec.name}"
    links: dict[str, Any] = {
        "self": [{"href": f"{base}/{rec.id}"}],
        "collection": [{"href": base}],
        "about": [{"href": f"{_REST}/types/{spec.post_type}"}],
        "author": [{"embeddable": True, "href": f"{_REST}/users/{rec.fields.get('author', 1)}"}],
        "replies": [{"embeddable": True, "href": f"{_REST}/comments?post={rec.id}"}],
    }
    if spec.revisions:
        links["version-history"] = [{"count": len(rec.revisions), "href": f"{base}/{rec.id}/revisions"}]
        if rec.revisions:
            last = rec.revisions[-1]
            links["predecessor-version"] = [{"id": last, "href": f"{base}/{rec.id}/revisions/{last}"}]
    if spec.parent_key == "parent" and rec.parent:
        links["up"] = [{"embeddable": True, "href": f"{base}/{rec.parent}"}]
    featured = rec.fields.get("featured_media", 0)
    if featured:
        links["wp:featuredmedia"] = [{"embeddable": True, "href": f"{_REST}/media/{featured}"}]
    if spec.post_type != "attachment":
        links["wp:attachment"] = [{"href": f"{_REST}/media?parent={rec.id}"}]
    if spec.post_type == "post":
        links["wp:term"] = [
            {"taxonomy": "category", "embeddable": True, "href": f"{_REST}/categories?post={rec.id}"},
            {"taxonomy": "post_tag", "embeddable": True, "href": f"{_REST}/tags?post={rec.id}"},
        ]
    links["curies"] = [{"name": "wp", "href": "https://api.w.org/{rel}", "templated": True}]
    return links


def shape(rec: Record, *, anonymous: bool = True) -> dict[str, Any]:
    """The record as WordPress's ``view`` context prints it, keys in WordPress order.

    ``anonymous`` applies the password rule: a protected post's content and excerpt print as
    ``{"rendered": "", "protected": true}`` to a visitor who has not given the password.
    """
    f = rec.fields
    out: dict[str, Any] = {}
    for key in rec.spec.keys:
        if key == "id":
            out[key] = rec.id
        elif key == "date":
            out[key] = rec.date
        elif key == "date_gmt":
            out[key] = wp_date(rec.date_gmt)
        elif key == "modified":
            out[key] = rec.modified
        elif key == "modified_gmt":
            out[key] = wp_date(rec.modified_gmt)
        elif key == "status":
            out[key] = rec.status
        elif key == "type":
            out[key] = rec.spec.post_type
        elif key == "parent":
            out[key] = rec.parent
        elif key == "post":
            out[key] = rec.parent or None
        elif key == "_links":
            out[key] = _links(rec)
        elif key in PROTECTABLE_KEYS and rec.password:
            out[key] = (
                {"rendered": "", "protected": True}
                if anonymous
                else {"rendered": f[key]["rendered"], "protected": True}
            )
        else:
            out[key] = f[key]
    return out


def record_bytes(rec: Record) -> bytes:
    """The anonymous view of ``rec`` as JSON bytes (tokens in place), cached on the record."""
    cached = rec.cached
    if cached is None:
        cached = rec.cached = dumps(shape(rec))
    return cached


def served_bytes(rec: Record, origin: str) -> bytes:
    """``record_bytes`` with ``origin`` filled in, cached on the record too: filling it in per
    response (a replace over ~0.6 MB, ~0.4 ms) cost ~0.16 s a benchmark run, CPU the loader under
    test on the same machine competes for."""
    cached = record_bytes(rec)
    served = rec.served
    if served is None or served[0] != origin or served[1] is not cached:
        served = rec.served = (origin, cached, with_origin(cached, origin))
    return served[2]


def with_origin(item: bytes, origin: str) -> bytes:
    return item.replace(ORIGIN_B, origin_json(origin))


def filter_fields(data: dict[str, Any], fields: list[str]) -> dict[str, Any]:
    """``rest_filter_response_fields``: keep the requested (possibly dotted) keys, data order."""
    tree: dict[str, Any] = {}
    for path in fields:
        node = tree
        parts = path.split(".")
        for i, part in enumerate(parts):
            if node is True:
                break
            if i == len(parts) - 1:
                node[part] = True
            else:
                node = node.setdefault(part, {})
    return _intersect(data, tree)


def _intersect(data: dict[str, Any], tree: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        want = tree.get(key)
        if want is True:
            out[key] = value
        elif isinstance(want, dict) and isinstance(value, dict):
            out[key] = _intersect(value, want)
    return out


def number_galleries(item: bytes, galleries: int, counter: int) -> tuple[bytes, int]:
    """Fill in this record's gallery numbers, continuing the response-wide ``counter``."""
    for j in range(galleries):
        counter += 1
        item = item.replace(_GALLERY_TOKENS_B[j], str(counter).encode("ascii"))
    return item, counter


def origin_json(origin: str) -> bytes:
    """The origin as it must appear inside a JSON string (slashes escaped like PHP)."""
    return origin.replace("/", "\\/").encode("ascii")


def assemble(items: list[tuple[bytes, int]], *, array: bool = True) -> bytes:
    """Join record bytes (origin filled in: ``served_bytes``) into one response body, numbering
    galleries."""
    parts: list[bytes] = []
    counter = 0
    for item, galleries in items:
        if galleries:
            item, counter = number_galleries(item, galleries, counter)
        parts.append(item)
    return b"[" + b",".join(parts) + b"]" if array else b"".join(parts)


_ENTITY = re.compile(r"&(?!#?[A-Za-z0-9]+;)")


def texturize(text: str) -> str:
    """The bits of ``wptexturize`` a plain title hits: ``&`` → ``&#038;``, ``'`` → ``&#8217;``."""
    return _ENTITY.sub("&#038;", text).replace("'", "&#8217;").replace(" -- ", " &#8211; ")


_IMAGE_SIZES = (
    ("medium", 300, 300, False),
    ("large", 1024, 1024, False),
    ("thumbnail", 150, 150, True),
    ("medium_large", 768, 0, False),
    ("1536x1536", 1536, 1536, False),
)
_IMAGE_META = {
    "aperture": "0", "credit": "", "camera": "", "caption": "", "created_timestamp": "0",
    "copyright": "", "focal_length": "0", "iso": "0", "shutter_speed": "0", "title": "",
    "orientation": "0", "keywords": [],
}  # fmt: skip
_EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", "application/pdf": "pdf"}


def _fit(width: int, height: int, max_w: int, max_h: int, crop: bool) -> tuple[int, int] | None:
    if crop:
        return (max_w, max_h) if width >= max_w and height >= max_h else None
    scale = min(max_w / width, (max_h / height) if max_h else 1e9)
    if scale >= 1:
        return None
    return max(1, round(width * scale)), max(1, round(height * scale))


def media_fields(
    *,
    slug: str,
    uploaded: datetime,
    mime_type: str = "image/jpeg",
    width: int = 1600,
    height: int = 1067,
    filesize: int = 250_000,
) -> dict[str, Any]:
    """``source_url``/``guid``/``media_details``/``description`` of an upload, like WordPress.

    ``uploaded`` is the site-local upload time; it picks the ``uploads/YYYY/MM`` folder.
    """
    folder = f"{uploaded:%Y/%m}"
    ext = _EXTENSIONS.get(mime_type, "bin")
    stem = slug
    file = f"{stem}.{ext}"
    url = f"{ORIGIN}/wp-content/uploads/{folder}/{file}"
    media_type = "image" if mime_type.startswith("image/") else "file"
    if media_type == "image":
        sizes: dict[str, Any] = {}
        for name, max_w, max_h, crop in _IMAGE_SIZES:
            fitted = _fit(width, height, max_w, max_h, crop)
            if fitted is None:
                continue
            w, h = fitted
            sized = f"{stem}-{w}x{h}.{ext}"
            sizes[name] = {
                "file": sized,
                "width": w,
                "height": h,
                "filesize": max(2_000, filesize * w * h // (width * height)),
                "mime_type": mime_type,
                "source_url": f"{ORIGIN}/wp-content/uploads/{folder}/{sized}",
            }
        sizes["full"] = {
            "file": file,
            "width": width,
            "height": height,
            "mime_type": mime_type,
            "source_url": url,
        }
        details: dict[str, Any] = {
            "width": width,
            "height": height,
            "file": f"{folder}/{file}",
            "filesize": filesize,
            "sizes": sizes,
            "image_meta": dict(_IMAGE_META),
        }
        shown = sizes.get("medium", sizes["full"])
        description = (
            f'<p class="attachment"><a href=\'{url}\'><img width="{shown["width"]}" '
            f'height="{shown["height"]}" src="{shown["source_url"]}" '
            'class="attachment-medium size-medium" alt="" decoding="async" loading="lazy" />'
            "</a></p>\n"
        )
    else:
        details = {"filesize": filesize, "sizes": {}}
        description = f"<p class=\"attachment\"><a href='{url}'>{slug}</a></p>\n"
    return {
        "guid": {"rendered": url},
        "description": {"rendered": description},
        "media_type": media_type,
        "mime_type": mime_type,
        "media_details": details,
        "source_url": url,
    }
