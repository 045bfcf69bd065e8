"""The real WordPress behaves as shared/research/wordpress-facts.md says, and as the
pipeline assumes. Anonymous REST reads via httpx against the seeded test site.

Expectations come from the database at test time (``wordpress.db``/``ids``) or
from the seeded special pages, so other tests creating pages do not break these.
"""

from __future__ import annotations

import math
import re
import warnings
from urllib.parse import parse_qs, urlsplit

import pytest

from .helpers import normalize_rendered, walk

pytestmark = pytest.mark.integration

_GALLERY_N = re.compile(r"\bgallery-\d+\b")

PAGE_KEYS = {
    "id",
    "date",
    "date_gmt",
    "guid",
    "modified",
    "modified_gmt",
    "slug",
    "status",
    "type",
    "link",
    "title",
    "content",
    "excerpt",
    "author",
    "featured_media",
    "parent",
    "menu_order",
    "comment_status",
    "ping_status",
    "template",
    "meta",
    "_links",
}
MEDIA_KEYS = {
    "id",
    "date",
    "date_gmt",
    "guid",
    "modified",
    "modified_gmt",
    "slug",
    "status",
    "type",
    "link",
    "title",
    "author",
    "comment_status",
    "ping_status",
    "template",
    "meta",
    "description",
    "caption",
    "alt_text",
    "media_type",
    "mime_type",
    "media_details",
    "post",
    "source_url",
    "_links",
}


def _error_code(body: dict, param: str | None = None) -> str:
    """Top-level WordPress error code, or the per-parameter code in data.details."""
    if param is None:
        return body["code"]
    return body["data"]["details"][param]["code"]


def _tie_window(wp) -> dict[str, str]:
    local = wp.seed["tie"]["modified"]  # "2022-06-15 12:00:00"
    day, clock = local.split(" ")
    assert clock == "12:00:00"
    return {"modified_after": f"{day}T11:59:59", "modified_before": f"{day}T12:00:01"}


# ---------------------------------------------------------------- paging


def test_collection_headers_and_link_next(wordpress):
    published = wordpress.ids("page", "publish")
    first = wordpress.rest("pages", per_page=100, page=1, orderby="id", order="asc")
    assert first.status_code == 200
    assert first.total == len(published)
    assert first.total_pages == math.ceil(len(published) / 100)
    assert first.headers["Access-Control-Expose-Headers"] == "X-WP-Total, X-WP-TotalPages, Link"

    # rel=next carries every query arg over; follow it to the end.
    seen, resp, hops = [], first, 0
    while True:
        seen += [p["id"] for p in resp.json]
        nxt = resp.links.get("next")
        if resp is not first:
            assert "prev" in resp.links
        if nxt is None:
            break
        q = parse_qs(urlsplit(nxt).query)
        assert q["per_page"] == ["100"] and q["orderby"] == ["id"] and q["order"] == ["asc"]
        assert q["page"] == [str(hops + 2)]
        resp, hops = wordpress.rest(nxt), hops + 1
    assert hops + 1 == first.total_pages  # the last page has no rel=next
    assert seen == published


def test_page_past_the_end_is_400(wordpress):
    last = wordpress.rest("pages", per_page=100).total_pages
    resp = wordpress.rest("pages", per_page=100, page=last + 1)
    assert resp.status_code == 400
    assert resp.json["code"] == "rest_post_invalid_page_number"
    assert resp.json["data"] == {"status": 400}


@pytest.mark.parametrize("per_page", [0, 101])
def test_per_page_out_of_bounds_is_400(wordpress, per_page):
    resp = wordpress.rest("pages", per_page=per_page)
    assert resp.status_code == 400
    assert _error_code(resp.json) == "rest_invalid_param"
    assert _error_code(resp.json, "per_page") == "rest_out_of_bounds"
    assert "between 1 (inclusive) and 100 (inclusive)" in resp.json["data"]["params"]["per_page"]


def test_date_only_modified_after_is_400(wordpress):
    resp = wordpress.rest("pages", modified_after="2024-01-01")
    assert resp.status_code == 400
    # The top-level code is rest_invalid_param; rest_invalid_date is the per-param detail.
    assert _error_code(resp.json) == "rest_invalid_param"
    assert _error_code(resp.json, "modified_after") == "rest_invalid_date"


# ---------------------------------------------------------------- modified_after / before


def test_modified_filters_are_strict_and_site_local(wordpress):
    tie = wordpress.seed["tie"]
    tie_ids = set(tie["ids"])
    assert tie["modified_gmt"] == "2022-06-15 16:00:00"  # EDT: local + 4h

    def ids(**params):
        return {p["id"] for p in walk(wordpress, "pages", per_page=100, orderby="id", **params)}

    window = _tie_window(wordpress)
    assert ids(**window) == tie_ids
    # Strict on both ends: equal to the filter value is excluded.
    assert ids(modified_after="2022-06-15T12:00:00", modified_before="2022-06-15T12:00:01") == set()
    assert ids(modified_after="2022-06-15T11:59:59", modified_before="2022-06-15T12:00:00") == set()
    # Compared with local `modified`, not `modified_gmt` (16:00 > 12:00 would include them).
    # A zoned value is converted to site-local first: 12:00Z = 08:00 local -> included;
    # 16:00Z = 12:00 local -> excluded (strict); offsets work the same way.
    assert tie_ids <= ids(modified_after="2022-06-15T12:00:00Z", modified_before="2022-06-15T12:00:01")
    assert (
        ids(
            modified_after="2022-06-15T15:59:59Z",
            modified_before="2022-06-15T16:00:01Z",
        )
        == tie_ids
    )
    assert (
        ids(
            modified_after="2022-06-15T16:00:00Z",
            modified_before="2022-06-15T16:00:01Z",
        )
        == set()
    )
    assert (
        ids(
            modified_after="2022-06-15T11:59:59-04:00",
            modified_before="2022-06-15T12:00:01-04:00",
        )
        == tie_ids
    )
    assert (
        ids(
            modified_after="2022-06-15T15:59:59+00:00",
            modified_before="2022-06-15T16:00:01+00:00",
        )
        == tie_ids
    )


def test_dst_repeated_hour_loses_and_over_includes(wordpress):
    early, late = wordpress.seed["dst"]
    assert early["modified"] == late["modified"] == "2023-11-05 01:30:00"
    assert (early["modified_gmt"], late["modified_gmt"]) == (
        "2023-11-05 05:30:00",
        "2023-11-05 06:30:00",
    )
    both = [early["id"], late["id"]]

    listed = wordpress.rest("pages", include=both, orderby="id", order="asc")
    assert [(p["modified"], p["modified_gmt"]) for p in listed.json] == [
        ("2023-11-05T01:30:00", "2023-11-05T05:30:00"),
        ("2023-11-05T01:30:00", "2023-11-05T06:30:00"),
    ]

    def ids(after):
        return [
            p["id"] for p in wordpress.rest("pages", include=both, orderby="id", order="asc", modified_after=after).json
        ]

    # 05:45Z -> 01:45 EDT local: the 06:30Z page (01:30 EST) is later but not returned.
    assert ids("2023-11-05T05:45:00Z") == []
    # 06:00Z -> 01:00 EST local: both returned, though the 05:30Z page is earlier.
    assert ids("2023-11-05T06:00:00Z") == both
    assert ids("2023-11-05T01:29:59") == both
    assert ids("2023-11-05T01:30:00") == []


# ---------------------------------------------------------------- visibility


def test_non_public_pages_are_absent(wordpress):
    listed = {p["id"] for p in walk(wordpress, "pages", per_page=100, orderby="id", _fields="id")}
    assert listed == set(wordpress.ids("page", "publish"))
    hidden = {status: wordpress.ids("page", status) for status in ("draft", "private", "pending", "future", "trash")}
    for status in ("draft", "private", "pending", "future"):
        assert hidden[status], f"seed made no {status} pages"
    all_hidden = [i for ids in hidden.values() for i in ids]
    assert not listed & set(all_hidden)

    assert wordpress.rest("pages", include=all_hidden[:100], per_page=100).json == []
    one = wordpress.rest(f"pages/{hidden['draft'][0]}")
    assert one.status_code == 401 and one.json["code"] == "rest_forbidden"
    by_status = wordpress.rest("pages", status="draft")
    assert by_status.status_code == 400
    assert _error_code(by_status.json, "status") == "rest_forbidden_status"


def test_password_protected_pages_are_listed_with_empty_content(wordpress):
    protected = wordpress.seed["ids"]["protected"]
    assert protected
    resp = wordpress.rest("pages", include=protected, per_page=100)
    assert sorted(p["id"] for p in resp.json) == sorted(protected)
    for page in resp.json:
        assert page["status"] == "publish"
        assert page["content"] == {"rendered": "", "protected": True}
        assert page["excerpt"] == {"rendered": "", "protected": True}
        assert page["title"]["rendered"]  # the title is not protected


def test_media_attached_to_non_public_pages_counted_but_not_listed(wordpress):
    hidden = set(wordpress.seed["ids"]["media_hidden"])
    assert hidden
    total_in_db = len(wordpress.ids("attachment", "inherit"))
    pages, listed = [], []
    first = wordpress.rest("media", per_page=100)
    assert first.total == total_in_db
    for n in range(1, first.total_pages + 1):
        resp = wordpress.rest("media", per_page=100, page=n)
        pages.append(len(resp.json))
        listed += [m["id"] for m in resp.json]
    assert len(listed) == len(set(listed)) == total_in_db - len(hidden)
    assert not hidden & set(listed)
    # A page before the last can hold fewer than per_page items.
    assert any(size < 100 for size in pages[:-1]), pages

    some_visible = next(iter(set(listed)))
    mixed = wordpress.rest("media", include=[*sorted(hidden)[:3], some_visible], per_page=100)
    assert mixed.total == 4
    assert [m["id"] for m in mixed.json] == [some_visible]
    single = wordpress.rest(f"media/{min(hidden)}")
    assert single.status_code == 401


# ---------------------------------------------------------------- ordering


def test_orderby_id_walk_returns_every_published_page_once(wordpress):
    published = wordpress.ids("page", "publish")
    walked = [p["id"] for p in walk(wordpress, "pages", per_page=100, orderby="id", order="asc", _fields="id")]
    assert walked == published  # ascending, complete, no duplicates
    assert set(wordpress.seed["tie"]["ids"]) <= set(walked)
    # Same inside the tie block at a small page size.
    tie = [p["id"] for p in walk(wordpress, "pages", per_page=10, orderby="id", order="asc", **_tie_window(wordpress))]
    assert tie == sorted(wordpress.seed["tie"]["ids"])


def test_orderby_modified_is_unstable_inside_a_tie(wordpress):
    tie_ids = set(wordpress.seed["tie"]["ids"])
    rows, page_sizes, totals = [], [], set()
    first = wordpress.rest("pages", per_page=10, orderby="modified", order="desc", **_tie_window(wordpress))
    for n in range(1, first.total_pages + 1):
        resp = wordpress.rest(
            "pages",
            per_page=10,
            page=n,
            orderby="modified",
            order="desc",
            **_tie_window(wordpress),
        )
        totals.add(resp.total)
        page_sizes.append(len(resp.json))
        rows += [p["id"] for p in resp.json]

    # What WordPress does guarantee: a consistent count and full pages.
    assert totals == {len(tie_ids)}
    assert len(rows) == len(tie_ids)
    assert all(size == 10 for size in page_sizes[:-1])
    assert set(rows) <= tie_ids
    # What it does not: ORDER BY post_modified has no tie-breaker, so LIMIT/OFFSET
    # pages overlap (observed: 60 distinct ids of 160 on MariaDB 10.11).
    distinct = len(set(rows))
    if distinct == len(tie_ids):
        warnings.warn(
            "orderby=modified happened to page through the tie without loss on this run; "
            "WordPress still gives no ordering guarantee among equal `modified` values",
            stacklevel=1,
        )
    else:
        assert distinct < len(tie_ids)
        assert len(rows) - distinct > 0  # duplicates, hence losses


# ---------------------------------------------------------------- items


def test_item_keys(wordpress):
    page = wordpress.rest("pages", per_page=1).json[0]
    assert set(page) == PAGE_KEYS
    # Not per_page=1: the newest media item may be a hidden one, giving [].
    media = wordpress.rest("media", per_page=20).json[0]
    assert set(media) == MEDIA_KEYS


def test_non_ascii_large_and_nested_pages(wordpress):
    ids = wordpress.seed["ids"]
    large = wordpress.rest("pages", include=ids["large"], per_page=100).json
    assert len(large) == len(ids["large"])
    for page in large:
        assert len(page["content"]["rendered"].encode()) > 50 * 1024
        assert "大きい" in page["title"]["rendered"]

    fancy = wordpress.db(
        "SELECT ID, post_title FROM {posts} WHERE post_title LIKE %s AND post_status = 'publish'",
        "%Café Über%",
    )
    assert fancy
    row = fancy[0]
    page = wordpress.rest(f"pages/{row['ID']}").json
    # é ü 中文 🎉 come back as UTF-8
    assert page["title"]["rendered"] == row["post_title"]

    nested = wordpress.rest("pages", include=ids["nested"][:100], per_page=100).json
    assert nested and all(p["parent"] != 0 for p in nested)
    parents = {p["parent"] for p in nested}
    assert parents & set(ids["sections"])
    assert parents - set(ids["sections"])  # some are grandchildren
    children = wordpress.rest("pages", parent=ids["sections"][0], per_page=100).json
    assert children and all(p["parent"] == ids["sections"][0] for p in children)


def test_uploads_are_served(wordpress):
    # the seeded uploads: other tests of the session add attachments without a file behind them
    media = [m for m in wordpress.rest("media", per_page=100).json if "filesize" in m["media_details"]]
    assert media, "no seeded upload listed"
    resp = wordpress.client.get(media[0]["source_url"])
    assert resp.status_code == 200
    assert resp.headers["content-type"] == media[0]["mime_type"]
    assert len(resp.content) == media[0]["media_details"]["filesize"]


# ---------------------------------------------------------------- rendered HTML


def test_gallery_rendering_differs_between_responses_while_modified_does_not(wordpress):
    gallery = wordpress.seed["ids"]["gallery"]
    together = wordpress.rest("pages", include=gallery, orderby="include", per_page=100).json
    assert [p["id"] for p in together] == gallery

    differs, differs_beyond_numbering = [], []
    for page in together:
        alone = wordpress.rest("pages", include=[page["id"]]).json[0]
        assert (alone["modified"], alone["modified_gmt"]) == (
            page["modified"],
            page["modified_gmt"],
        )
        listed_html, alone_html = (
            page["content"]["rendered"],
            alone["content"]["rendered"],
        )
        # Alone, it is the request's first gallery.
        assert "id='gallery-1'" in alone_html
        if listed_html != alone_html:
            differs.append(page["id"])
        if _GALLERY_N.sub("gallery-N", listed_html) != _GALLERY_N.sub("gallery-N", alone_html):
            differs_beyond_numbering.append(page["id"])
        assert normalize_rendered(listed_html) == normalize_rendered(alone_html)

    # In the list the k-th gallery is gallery-k, so all but the first differ...
    assert len(differs) >= len(gallery) - 1
    assert f"id='gallery-{len(gallery)}'" in together[-1]["content"]["rendered"]
    # ...and once a block-editor page was rendered in the request, wpautop wraps
    # some shortcode output in <p> (observed on 6 of the 12 seeded gallery pages).
    assert differs_beyond_numbering, "expected the <p> wrapper difference on some gallery page"


def test_normalize_rendered_examples():
    alone = (
        "<p>Intro</p>\n\n\t\t<style>#gallery-1 {}</style>\n"
        "\t\t<div id='gallery-1'><dd id='gallery-1-650'>x</dd>\n\t\t</div>\n\n<p>Outro</p>\n"
    )
    listed = (
        "<p>Intro</p>\n<p>\n\t\t<style>#gallery-7 {}</style>\n"
        "\t\t<div id='gallery-7'><dd id='gallery-7-650'>x</dd>\n\t\t</div>\n</p>\n<p>Outro</p>\n"
    )
    assert alone != listed
    assert normalize_rendered(alone) == normalize_rendered(listed)
    # Ordinary classes that merely start with "gallery-" are kept.
    assert "gallery-columns-3" in normalize_rendered("<div class='gallery gallery-columns-3'></div>")
    # Real content changes still show.
    assert normalize_rendered("<p>a</p>") != normalize_rendered("<p>b</p>")


# ---------------------------------------------------------------- the fixture itself


def test_fixture_edit_helpers_roundtrip(wordpress):
    """The helpers pipeline tests rely on do what they say (on a page of our own)."""
    page_id = wordpress.create_page("Fixture roundtrip é 中文", "<p>v1</p>", modified_local="2021-03-14 01:59:59")
    got = wordpress.rest(f"pages/{page_id}").json
    # EST (DST starts at 02:00 that day)
    assert (got["modified"], got["modified_gmt"]) == (
        "2021-03-14T01:59:59",
        "2021-03-14T06:59:59",
    )

    stored = wordpress.edit_page(page_id, content="<p>v2</p>", modified_local="2021-07-04 10:00:00")
    assert stored["modified_gmt"] == "2021-07-04 14:00:00"  # EDT
    got = wordpress.rest(f"pages/{page_id}").json
    assert got["content"]["rendered"].strip() == "<p>v2</p>"
    assert got["modified"] == "2021-07-04T10:00:00"

    wordpress.set_modified(page_id, "2023-11-05 01:30:00", "2023-11-05 06:30:00")
    assert wordpress.get_post(page_id)["post_modified_gmt"] == "2023-11-05 06:30:00"

    # Without modified_local, WordPress stamps "now".
    stamped = wordpress.edit_page(page_id, title="Now stamped")
    assert stamped["modified"] > "2024-01-01 00:00:00"

    wordpress.unpublish(page_id)
    assert wordpress.rest("pages", include=[page_id]).json == []
    wordpress.publish(page_id)
    assert [p["id"] for p in wordpress.rest("pages", include=[page_id]).json] == [page_id]
    wordpress.trash(page_id)
    assert wordpress.get_post(page_id)["post_status"] == "trash"
    assert wordpress.rest("pages", include=[page_id]).json == []
    wordpress.delete(page_id)
    assert wordpress.db("SELECT ID FROM {posts} WHERE ID = %d", page_id) == []
