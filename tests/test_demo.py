"""The `--demo` site (`bulletin_pipeline.demo`) answers like WordPress for what the pipeline
uses, over real HTTP, and ships without dev dependencies."""

from __future__ import annotations

import collections
import datetime as dt
import pathlib
import subprocess
import sys
import tomllib
from typing import Any, Dict, Iterator, List

import httpx
import pytest

from bulletin_pipeline.demo import DemoServer, DemoSite

ROOT = pathlib.Path(__file__).resolve().parents[1]
# WordPress 6.1's keys, in its order, for an anonymous `view` of a page and of an attachment.
PAGE_KEYS = [
    "id", "date", "date_gmt", "guid", "modified", "modified_gmt", "slug", "status", "type", "link", "title",
    "content", "excerpt", "author", "featured_media", "parent", "menu_order", "comment_status", "ping_status",
    "template", "meta", "_links",
]  # fmt: skip
MEDIA_KEYS = [
    "id", "date", "date_gmt", "guid", "modified", "modified_gmt", "slug", "status", "type", "link", "title",
    "author", "comment_status", "ping_status", "template", "meta", "description", "caption", "alt_text",
    "media_type", "mime_type", "media_details", "post", "source_url", "_links",
]  # fmt: skip
NO_ROUTE = (
    b'{"code":"rest_no_route","message":"No route was found matching the URL and request method.",'
    b'"data":{"status":404}}'
)


@pytest.fixture(scope="module")
def server() -> Iterator[DemoServer]:
    with DemoServer() as srv:
        yield srv


@pytest.fixture(scope="module")
def client(server: DemoServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=10) as c:
        yield c


@pytest.fixture(scope="module")
def listing(client: httpx.Client) -> List[Dict[str, Any]]:
    """Every page's id and modified, read in `orderby=id` pages of 100."""
    rows: List[Dict[str, Any]] = []
    for page in range(1, 21):
        response = client.get("pages", params={"orderby": "id", "order": "asc", "per_page": 100, "page": page})
        rows += [{"id": r["id"], "modified": r["modified"]} for r in response.json()]
    return rows


def test_records_have_wordpress_keys_in_order_and_site_local_modified(client: httpx.Client) -> None:
    pages = client.get("pages", params={"per_page": 100}).json()
    media = client.get("media", params={"per_page": 100}).json()
    assert [list(r) for r in pages] == [PAGE_KEYS] * 100
    assert [list(r) for r in media] == [MEDIA_KEYS] * 100
    assert {r["status"] for r in pages} == {"publish"} and {r["type"] for r in media} == {"attachment"}
    for record in pages + media:
        local = dt.datetime.fromisoformat(record["modified"])
        gmt = dt.datetime.fromisoformat(record["modified_gmt"])
        assert gmt - local in (dt.timedelta(hours=4), dt.timedelta(hours=5)), record["id"]  # New York: EDT / EST
        assert record["_links"]["self"][0]["href"].endswith(f"/{record['id']}")
    # the default order is date, newest first
    assert [r["date"] for r in pages] == sorted((r["date"] for r in pages), reverse=True)
    assert 500 < len(pages[0]["content"]["rendered"]) < 2000


def test_headers_count_and_link_to_the_next_page(client: httpx.Client) -> None:
    first = client.get("pages", params={"per_page": 100, "orderby": "id"})
    assert first.status_code == 200
    assert first.headers["content-type"] == "application/json; charset=UTF-8"
    assert (first.headers["x-wp-total"], first.headers["x-wp-totalpages"]) == ("2000", "20")
    assert first.content.startswith(b'[{"id":') and b", " not in first.content[:200]  # compact JSON
    url, rel = first.headers["link"].split("; ")
    assert rel == 'rel="next"'
    second = client.get(url.strip("<>"))
    assert "page=2" in url and second.status_code == 200
    assert {r["id"] for r in second.json()}.isdisjoint(r["id"] for r in first.json())
    last = client.get("media", params={"per_page": 100, "page": 10})
    assert last.headers["x-wp-total"] == "1000" and "link" not in last.headers


def test_orderby_id_is_stable_and_offset_overrides_page(client: httpx.Client, listing: List[Dict[str, Any]]) -> None:
    ids = [r["id"] for r in listing]
    assert len(ids) == len(set(ids)) == 2000 and ids == sorted(ids)
    params = {"orderby": "id", "order": "asc", "per_page": 10}
    window = client.get("pages", params={**params, "offset": 95, "page": 7})
    assert [r["id"] for r in window.json()] == ids[95:105]
    assert window.headers["x-wp-total"] == "2000"  # counted over the whole result, offset or not
    backwards = client.get("pages", params={**params, "order": "desc", "offset": 1990})
    assert [r["id"] for r in backwards.json()] == ids[9::-1]
    past_the_end = client.get("pages", params={**params, "offset": 2000})
    assert past_the_end.json() == [] and past_the_end.headers["x-wp-total"] == "0"  # WordPress counts only hits


def test_modified_after_and_before_are_strict_on_site_local_time(
    client: httpx.Client, listing: List[Dict[str, Any]]
) -> None:
    tie, tied = collections.Counter(r["modified"] for r in listing).most_common(1)[0]
    assert tied == 150  # one bulk edit: 150 distinct pages in one `modified` second
    after = client.get("pages", params={"modified_after": tie, "per_page": 100, "_fields": "id,modified"})
    newer = {r["id"] for r in listing if r["modified"] > tie}
    assert int(after.headers["x-wp-total"]) == len(newer) and {r["modified"] > tie for r in after.json()} == {True}
    one_second_earlier = (dt.datetime.fromisoformat(tie) - dt.timedelta(seconds=1)).isoformat()
    with_the_tie = client.get("pages", params={"modified_after": one_second_earlier})
    assert int(with_the_tie.headers["x-wp-total"]) == len(newer) + tied
    before = client.get("pages", params={"modified_before": tie})
    assert int(before.headers["x-wp-total"]) == sum(r["modified"] < tie for r in listing)
    # a UTC or offset time names the same instant, compared in the site's zone (EST in November)
    gmt = (dt.datetime.fromisoformat(tie) + dt.timedelta(hours=5)).isoformat()
    for zoned in (gmt + "Z", gmt + "+00:00", tie + "-05:00"):
        assert client.get("pages", params={"modified_after": zoned}).headers["x-wp-total"] == str(len(newer))


def test_fields_keeps_the_requested_keys_in_record_order(client: httpx.Client) -> None:
    rows = client.get("media", params={"_fields": "modified_gmt, id,nonexistent,modified", "per_page": 3}).json()
    assert [list(r) for r in rows] == [["id", "modified", "modified_gmt"]] * 3


@pytest.mark.parametrize(
    "params, code, key",
    [
        ({"per_page": "0"}, "rest_out_of_bounds", "per_page"),
        ({"per_page": "101"}, "rest_out_of_bounds", "per_page"),
        ({"per_page": "ten"}, "rest_invalid_type", "per_page"),
        ({"page": "0"}, "rest_out_of_bounds", "page"),
        ({"offset": "-1"}, "rest_out_of_bounds", "offset"),
        ({"orderby": "title"}, "rest_not_in_enum", "orderby"),
        ({"order": "up"}, "rest_not_in_enum", "order"),
        ({"modified_after": "yesterday"}, "rest_invalid_date", "modified_after"),
        ({"modified_after": "2025-13-01T00:00:00"}, "rest_invalid_date", "modified_after"),
        ({"modified_before": "2025-11-20"}, "rest_invalid_date", "modified_before"),
    ],
)
def test_invalid_parameters_are_refused_like_wordpress(client: httpx.Client, params, code, key) -> None:
    response = client.get("pages", params=params)
    body = response.json()
    assert response.status_code == 400 and body["code"] == "rest_invalid_param"
    assert body["message"] == f"Invalid parameter(s): {key}" and body["data"]["status"] == 400
    assert body["data"]["details"][key]["code"] == code and key in body["data"]["params"]


def test_past_the_last_page_and_unknown_routes(client: httpx.Client, server: DemoServer) -> None:
    past = client.get("pages", params={"per_page": 100, "page": 21})
    assert past.status_code == 400 and past.json()["code"] == "rest_post_invalid_page_number"
    # nothing matches: no total, so no page is "past the end"
    empty = client.get("pages", params={"page": 3, "modified_after": "2030-01-01T00:00:00"})
    assert empty.status_code == 200 and empty.json() == [] and empty.headers["x-wp-total"] == "0"
    for url in ("posts", "users", server.base_url.replace("/v2/", "/v3/") + "pages"):
        missing = client.get(url)
        assert missing.status_code == 404 and missing.content == NO_ROUTE, url


def test_the_site_is_the_same_every_run() -> None:
    one, two = DemoSite("http://127.0.0.1:1"), DemoSite("http://127.0.0.1:1")
    for name in ("pages", "media"):
        assert [e.body for e in one.collections[name]] == [e.body for e in two.collections[name]]
    assert (len(one.collections["pages"]), len(one.collections["media"])) == (2000, 1000)


def test_the_demo_site_needs_no_dev_dependency() -> None:
    """`--demo` must run from `uv sync --no-dev`: the server uses the standard library only, and
    the CLI that runs it nothing from the dev group or tests/."""
    groups = tomllib.loads((ROOT / "pyproject.toml").read_text())["dependency-groups"]["dev"]
    names = {g.split("[")[0].split(">")[0].split("=")[0].strip().replace("-", "_") for g in groups}
    dev = sorted(names - {"bulletin_pipeline"} | {"tests"})  # the group names the project for its extras
    probe = (
        "import sys, sysconfig; before = set(sys.modules); import bulletin_pipeline.demo\n"
        "installed = tuple({sysconfig.get_path('purelib'), sysconfig.get_path('platlib')})\n"
        "print(sorted(m for m in set(sys.modules) - before if (getattr(sys.modules[m], '__file__', None) or '')"
        ".startswith(installed)))\n"
        f"import bulletin_pipeline.cli; print(sorted(m for m in sys.modules if m.split('.')[0] in {dev!r}))"
    )
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["[]", "[]"]
