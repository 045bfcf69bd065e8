"""The WordPress simulator, over real HTTP on loopback, against the WordPress 6.1 facts.

Each test names the WordPress behaviour it pins down; the pipeline's own tests rely on the
simulator reproducing exactly these.
"""

from __future__ import annotations

import math
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from tests.simulator import SimulatorServer, Site, seed_site

CLOCK = datetime(2024, 6, 1, 12, 0, 0, tzinfo=UTC)


def walk(client: httpx.Client, url: str, **params: Any) -> tuple[list[int], list[httpx.Response]]:
    """Fetch page 1..X-WP-TotalPages; returns every id seen and every response."""
    params = {"per_page": 100, **params}
    first = client.get(url, params={**params, "page": 1})
    first.raise_for_status()
    responses = [first]
    for page in range(2, int(first.headers["X-WP-TotalPages"]) + 1):
        r = client.get(url, params={**params, "page": page})
        r.raise_for_status()
        responses.append(r)
    return [item["id"] for r in responses for item in r.json()], responses


@pytest.fixture(scope="module")
def seeded() -> tuple[Site, dict[str, Any]]:
    site = Site()
    site.set_clock(CLOCK)
    info = seed_site(site, pages=2000, media=1000, seed=7, body_kb=2, tie_block=175)
    return site, info


@pytest.fixture(scope="module")
def server(seeded: tuple[Site, dict[str, Any]]) -> Iterator[SimulatorServer]:
    with SimulatorServer(seeded[0]) as srv:
        yield srv


@pytest.fixture(scope="module")
def shuffling(seeded: tuple[Site, dict[str, Any]]) -> Iterator[SimulatorServer]:
    with SimulatorServer(seeded[0], shuffle_ties=True) as srv:
        yield srv


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as c:
        yield c


@pytest.fixture
def small() -> Iterator[tuple[Site, SimulatorServer]]:
    """A fresh, hand-built site for exact assertions."""
    site = Site()
    site.set_clock(CLOCK)
    with SimulatorServer(site) as srv:
        yield site, srv


# -- paging -----------------------------------------------------------------------------------
def test_list_headers_and_link_next_on_all_but_last_page(
    server: SimulatorServer, seeded: tuple[Site, dict[str, Any]], client: httpx.Client
) -> None:
    site, _ = seeded
    total = len(site.published_versions("pages"))
    ids, responses = walk(client, server.base_url + "pages", orderby="id", order="asc")
    assert len(responses) == math.ceil(total / 100) == 20
    for number, r in enumerate(responses, start=1):
        assert r.headers["Content-Type"] == "application/json; charset=UTF-8"
        assert int(r.headers["X-WP-Total"]) == total
        assert int(r.headers["X-WP-TotalPages"]) == len(responses)
        links = r.links
        if number < len(responses):
            nxt = links["next"]["url"]
            assert nxt.startswith(server.base_url + "pages?")
            assert f"page={number + 1}" in nxt and "orderby=id" in nxt and "per_page=100" in nxt
        else:
            assert "next" not in links
        assert ("prev" in links) == (number > 1)
    assert sorted(ids) == sorted(site.published_versions("pages"))
    assert len(ids) == len(set(ids))


def test_link_header_carries_query_args_and_can_be_followed(server: SimulatorServer, client: httpx.Client) -> None:
    params: dict[str, str | int] = {
        "modified_after": "2020-01-01T00:00:00",
        "orderby": "id",
        "order": "asc",
        "per_page": 50,
    }
    r1 = client.get(server.base_url + "pages", params=params)
    nxt = r1.links["next"]["url"]
    assert "modified_after=2020-01-01T00%3A00%3A00" in nxt
    assert nxt.endswith("&page=2")
    r2 = client.get(nxt)
    assert r2.status_code == 200
    assert r2.json()[0]["id"] > r1.json()[-1]["id"]
    assert r2.links["prev"]["url"].endswith("&page=1")


def test_page_past_the_end_is_400(server: SimulatorServer, client: httpx.Client) -> None:
    r = client.get(server.base_url + "pages", params={"per_page": 100})
    last = int(r.headers["X-WP-TotalPages"])
    past = client.get(server.base_url + "pages", params={"per_page": 100, "page": last + 1})
    assert past.status_code == 400
    assert past.json() == {
        "code": "rest_post_invalid_page_number",
        "message": "The page number requested is larger than the number of pages available.",
        "data": {"status": 400},
    }


def test_empty_result_is_an_empty_list_not_an_error(small: tuple[Site, SimulatorServer], client: httpx.Client) -> None:
    _, srv = small
    r = client.get(srv.base_url + "pages")
    assert r.status_code == 200 and r.json() == []
    assert r.headers["X-WP-Total"] == "0" and r.headers["X-WP-TotalPages"] == "0"
    assert client.get(srv.base_url + "pages", params={"page": 3}).json() == []


@pytest.mark.parametrize("per_page", ["0", "101", "abc"])
def test_per_page_out_of_bounds_is_400(server: SimulatorServer, client: httpx.Client, per_page: str) -> None:
    r = client.get(server.base_url + "pages", params={"per_page": per_page})
    assert r.status_code == 400
    body = r.json()
    assert body["code"] == "rest_invalid_param"
    assert body["message"] == "Invalid parameter(s): per_page"
    if per_page != "abc":
        msg = "per_page must be between 1 (inclusive) and 100 (inclusive)"
        assert body["data"]["params"]["per_page"] == msg
        assert body["data"]["details"]["per_page"]["code"] == "rest_out_of_bounds"


def test_other_invalid_params_are_400(server: SimulatorServer, client: httpx.Client) -> None:
    for params in ({"page": "0"}, {"orderby": "rand"}, {"order": "up"}, {"status": "draft"}):
        r = client.get(server.base_url + "pages", params=params)
        assert r.status_code == 400, params
        assert r.json()["code"] == "rest_invalid_param"
    r = client.get(server.base_url + "media", params={"status": "inherit"})
    assert r.status_code == 200


# -- ordering ---------------------------------------------------------------------------------
def test_orderby_id_walk_returns_every_published_id_once(
    shuffling: SimulatorServer, seeded: tuple[Site, dict[str, Any]], client: httpx.Client
) -> None:
    site, _ = seeded
    for collection in ("pages", "media"):
        ids, _ = walk(client, shuffling.base_url + collection, orderby="id", order="desc")
        assert len(ids) == len(set(ids))
        assert set(ids) == set(site.published_versions(collection))


def test_orderby_modified_with_a_tie_block_loses_and_duplicates_rows(
    shuffling: SimulatorServer, server: SimulatorServer, seeded: tuple[Site, dict[str, Any]], client: httpx.Client
) -> None:
    """WordPress adds no tie-breaker to ORDER BY post_modified (175 pages share one second)."""
    site, info = seeded
    assert len(info["tie_pages"]) == 175
    published = set(site.published_versions("pages"))
    ids, _ = walk(client, shuffling.base_url + "pages", orderby="modified", order="desc")
    assert len(ids) == len(published)  # as many rows as X-WP-Total...
    assert len(set(ids)) < len(published)  # ...but some twice, so others never
    missing = published - set(ids)
    assert missing and missing <= set(info["tie_pages"])
    # Without shuffling (ties broken by id) the same walk is complete.
    ids, _ = walk(client, server.base_url + "pages", orderby="modified", order="desc")
    assert set(ids) == published and len(ids) == len(published)


# -- dates ------------------------------------------------------------------------------------
def test_modified_after_is_strict_and_site_local(small: tuple[Site, SimulatorServer], client: httpx.Client) -> None:
    site, srv = small
    pid = site.create("pages", title="Winter", at="2024-01-26T15:00:25Z")  # 10:00:25 EST
    assert site.get("pages", pid)["modified"] == "2024-01-26T10:00:25"

    def ids(**params: str) -> list[int]:
        r = client.get(srv.base_url + "pages", params=params)
        assert r.status_code == 200, r.text
        return [p["id"] for p in r.json()]

    assert ids(modified_after="2024-01-26T10:00:25") == []  # equal is excluded
    assert ids(modified_after="2024-01-26T10:00:24") == [pid]
    assert ids(modified_after="2024-01-26T10:00:24.999") == [pid]  # fraction dropped
    assert ids(modified_after="2024-01-26T15:00:25Z") == []  # converted to 10:00:25 local
    assert ids(modified_after="2024-01-26T15:00:24Z") == [pid]
    assert ids(modified_after="2024-01-26T10:00:24-05:00") == [pid]
    assert ids(modified_before="2024-01-26T10:00:25") == []
    assert ids(modified_before="2024-01-26T10:00:26") == [pid]
    # A UTC value that *reads* later than the local one must not be compared as a string.
    assert ids(modified_after="2024-01-26T12:00:00") == []
    assert ids(modified_after="2024-01-26T12:00:00Z") == [pid]


def test_dst_fall_back_hour_follows_local_wall_clock(small: tuple[Site, SimulatorServer], client: httpx.Client) -> None:
    site, srv = small
    first = site.create("pages", title="First 01:30", at="2023-11-05T05:30:00Z")  # EDT
    second = site.create("pages", title="Second 01:30", at="2023-11-05T06:30:00Z")  # EST
    assert site.get("pages", first)["modified"] == site.get("pages", second)["modified"] == "2023-11-05T01:30:00"
    r = client.get(srv.base_url + "pages", params={"modified_after": "2023-11-05T05:45:00Z"})
    assert r.json() == []  # neither, though the second is later in UTC
    r = client.get(srv.base_url + "pages", params={"modified_after": "2023-11-05T01:29:59"})
    assert {p["id"] for p in r.json()} == {first, second}


@pytest.mark.parametrize("value", ["2024-01-01", "yesterday", "2024-13-01T00:00:00"])
def test_invalid_dates_are_rejected(server: SimulatorServer, client: httpx.Client, value: str) -> None:
    r = client.get(server.base_url + "pages", params={"modified_after": value})
    assert r.status_code == 400
    body = r.json()
    # WordPress wraps the per-argument rest_invalid_date in rest_invalid_param.
    assert body["code"] == "rest_invalid_param"
    assert body["data"]["details"]["modified_after"]["code"] == "rest_invalid_date"


# -- visibility -------------------------------------------------------------------------------
def test_unpublished_pages_hidden_and_password_content_protected(
    small: tuple[Site, SimulatorServer], client: httpx.Client
) -> None:
    site, srv = small
    public = site.create("pages", title="Public", content="<p>hello</p>")
    locked = site.create("pages", title="Locked", content="<p>secret</p>", password="pw")
    hidden = {s: site.create("pages", title=s, status=s) for s in ("draft", "private", "pending", "future", "trash")}
    r = client.get(srv.base_url + "pages")
    listed = {p["id"]: p for p in r.json()}
    assert set(listed) == {public, locked}
    assert r.headers["X-WP-Total"] == "2"
    assert listed[locked]["content"] == {"rendered": "", "protected": True}
    assert listed[locked]["excerpt"] == {"rendered": "", "protected": True}
    assert listed[public]["content"] == {"rendered": "<p>hello</p>", "protected": False}
    assert list(listed[public]) == [
        "id", "date", "date_gmt", "guid", "modified", "modified_gmt", "slug", "status", "type",
        "link", "title", "content", "excerpt", "author", "featured_media", "parent",
        "menu_order", "comment_status", "ping_status", "template", "meta", "_links",
    ]  # fmt: skip
    draft = hidden["draft"]
    assert client.get(srv.base_url + "pages", params={"include": str(draft)}).json() == []
    single = client.get(srv.base_url + f"pages/{draft}")
    assert single.status_code == 401 and single.json()["code"] == "rest_forbidden"
    missing = client.get(srv.base_url + "pages/999999")
    assert missing.status_code == 404 and missing.json()["code"] == "rest_post_invalid_id"
    ok = client.get(srv.base_url + f"pages/{public}")
    assert ok.status_code == 200 and ok.json()["id"] == public
    assert site.get("pages", locked)["content"]["rendered"] == "<p>secret</p>"  # admin view


def test_media_of_hidden_pages_counted_but_left_out(small: tuple[Site, SimulatorServer], client: httpx.Client) -> None:
    site, srv = small
    page = site.create("pages", title="Course")
    draft = site.create("pages", title="Draft course", status="draft")
    media = [site.create("media", title=f"img-{i}", post=draft if i == 2 else page) for i in range(5)]
    r1 = client.get(srv.base_url + "media", params={"per_page": 2, "orderby": "id", "order": "asc"})
    r2 = client.get(srv.base_url + "media", params={"per_page": 2, "orderby": "id", "order": "asc", "page": 2})
    assert r1.headers["X-WP-Total"] == r2.headers["X-WP-Total"] == "5"
    assert r1.headers["X-WP-TotalPages"] == "3"
    assert [m["id"] for m in r1.json()] == media[:2]
    assert [m["id"] for m in r2.json()] == [media[3]]  # a short page before the last one
    assert set(site.published_versions("media")) == set(media) - {media[2]}
    item = r1.json()[0]
    assert len(item) == 25 and item["status"] == "inherit" and item["post"] == page
    assert item["media_details"]["sizes"]["full"]["source_url"] == item["source_url"]
    assert client.get(srv.base_url + f"media/{media[2]}").status_code == 401


def test_fields_keeps_requested_keys_in_wordpress_order(server: SimulatorServer, client: httpx.Client) -> None:
    r = client.get(server.base_url + "pages", params={"_fields": "title,modified_gmt,id", "per_page": 5})
    assert r.status_code == 200
    for item in r.json():
        assert list(item) == ["id", "modified_gmt", "title"]
    r = client.get(server.base_url + "pages", params={"_fields": "id,title.rendered", "per_page": 1})
    assert set(r.json()[0]["title"]) == {"rendered"}


# -- routes -----------------------------------------------------------------------------------
def test_unknown_routes_and_html_outside_the_api(server: SimulatorServer, client: httpx.Client) -> None:
    r = client.get(server.base_url + "courses")
    assert r.status_code == 404
    assert r.json() == {
        "code": "rest_no_route",
        "message": "No route was found matching the URL and request method.",
        "data": {"status": 404},
    }
    assert r.headers["Content-Type"] == "application/json; charset=UTF-8"
    index = client.get(server.origin + "/wp-json/")
    assert "wp/v2" in index.json()["namespaces"]
    html = client.get(server.origin + "/about-us/")
    assert html.status_code == 200 and html.headers["Content-Type"].startswith("text/html")
    assert html.text.lstrip().startswith("<!DOCTYPE html>")
    assert client.get(server.origin + "/?rest_route=/wp/v2/pages").json()[0]["type"] == "page"


def test_json_is_encoded_like_php(small: tuple[Site, SimulatorServer], client: httpx.Client) -> None:
    site, srv = small
    site.create("pages", title="Café 中文 😀", content="<p>a/b</p>")
    raw = client.get(srv.base_url + "pages").content
    assert raw.isascii()
    assert b"Caf\\u00e9 \\u4e2d\\u6587 \\ud83d\\ude00" in raw
    assert b"<p>a\\/b<\\/p>" in raw and b'":' in raw and b": " not in raw


def test_gallery_ids_are_numbered_per_response(small: tuple[Site, SimulatorServer], client: httpx.Client) -> None:
    site, srv = small
    a = site.create("pages", title="A", content='<p>a</p>[gallery ids="1,2,3"]', at="2024-01-02T00:00:00Z")
    b = site.create("pages", title="B", content='<p>b</p>[gallery ids="4,5"]', at="2024-01-01T00:00:00Z")
    both = {p["id"]: p["content"]["rendered"] for p in client.get(srv.base_url + "pages").json()}
    assert "id='gallery-1'" in both[a] and "id='gallery-2'" in both[b]
    alone = client.get(srv.base_url + f"pages/{b}").json()["content"]["rendered"]
    assert "id='gallery-1'" in alone and "#gallery-1 img" in alone


# -- controls ---------------------------------------------------------------------------------
def test_fault_injection(small: tuple[Site, SimulatorServer], client: httpx.Client) -> None:
    site, srv = small
    site.create("pages", title="x")
    url = srv.base_url + "pages"
    srv.inject(status=503, count=1)
    r = client.get(url)
    assert r.status_code == 503 and r.headers["Content-Type"].startswith("text/html")
    assert client.get(url).status_code == 200
    srv.inject(status=429, retry_after=1, collection="pages")
    assert client.get(srv.base_url + "media").status_code == 200  # other collection untouched
    r = client.get(url)
    assert r.status_code == 429 and r.headers["Retry-After"] == "1"
    srv.inject(status=200, body="<html>maintenance</html>")
    r = client.get(url)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html")
    srv.inject(status=200, body=b'[{"id": 1,', content_type="application/json; charset=UTF-8")
    with pytest.raises(ValueError):
        client.get(url).json()
    srv.inject(reset=True)
    with pytest.raises(httpx.TransportError):
        client.get(url)
    assert client.get(url).status_code == 200
    srv.inject(status=None, delay=1.0)
    with pytest.raises(httpx.ReadTimeout):
        client.get(url, timeout=0.2)
    assert client.get(url).status_code == 200
    assert 0 in [entry.status for entry in srv.request_log]  # the reset is logged as status 0
    statuses = srv.stats.statuses
    assert statuses[503] == 1 and statuses[429] == 1 and srv.stats.resets == 1


def test_before_request_hook_mutates_the_site_mid_walk(
    small: tuple[Site, SimulatorServer], client: httpx.Client
) -> None:
    site, srv = small
    ids = [site.create("pages", title=f"p{i}", at=f"2024-01-01T00:00:{i:02d}Z") for i in range(30)]
    seen: list[dict[str, Any]] = []

    def hook(collection: str, params: dict[str, Any]) -> None:
        seen.append(params)
        if params.get("page") == "3":
            site.delete("pages", ids[-1])  # the newest row: everything shifts up by one

    srv.before_request = hook
    walked, responses = walk(client, srv.base_url + "pages", per_page=10)
    assert [p.get("page") for p in seen] == ["1", "2", "3"]
    assert len(walked) == 29 and len(set(walked)) == 29
    assert ids[-1] in walked and ids[9] not in walked  # shifted past the page boundary: lost
    assert [e.params.get("page") for e in srv.request_log] == ["1", "2", "3"]


def test_latency_and_max_concurrency() -> None:
    with SimulatorServer(Site(), latency=0.2, max_concurrency=2) as slow:
        errors: list[httpx.HTTPError] = []

        def fetch() -> None:
            try:
                httpx.get(slow.base_url + "pages", timeout=10).raise_for_status()
            except httpx.HTTPError as exc:
                errors.append(exc)

        started = time.perf_counter()
        threads = [threading.Thread(target=fetch) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - started
        assert not errors
        stats = slow.stats
        assert stats.peak_active == 2 and stats.peak_concurrency >= 3
        assert elapsed >= 0.6 - 0.05  # 6 requests, 2 at a time, 0.2 s each


def test_workers_queue_requests_and_never_reject_them() -> None:
    """The capacity profile: 2 PHP workers of 0.2 s; 6 requests at once all get 200, 2 at a time."""
    with SimulatorServer(Site(), workers=2, service_time=0.2, stats_path="/__stats") as srv:
        statuses: list[int] = []
        start = threading.Barrier(6)

        def fetch() -> None:
            start.wait()
            statuses.append(httpx.get(srv.base_url + "pages", timeout=10).status_code)

        started = time.perf_counter()
        threads = [threading.Thread(target=fetch) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - started
        assert statuses == [200] * 6
        assert elapsed >= 0.6 - 0.05  # three rounds of two
        assert srv.stats.peak_concurrency == 6 and srv.stats.peak_active == 2
        # what the benchmark reads: the route is outside /wp-json and not counted itself
        counters = httpx.get(srv.origin + "/__stats", params={"reset": "1"}).json()
        assert counters["peak_in_flight"] == 6 and counters["peak_in_service"] == 2
        assert counters["requests"] == 6 and counters["statuses"] == {"200": 6} and counters["rejected"] == 0
        after = httpx.get(srv.origin + "/__stats").json()
        assert after["requests"] == 0 and after["peak_in_flight"] == 0


def test_http2_over_tls_is_negotiated(small: tuple[Site, SimulatorServer]) -> None:
    site, _ = small
    site.create("pages", title="secure")
    with SimulatorServer(site, tls=True) as srv:
        assert srv.base_url.startswith("https://127.0.0.1:")
        assert srv.ca_cert_path and os.path.exists(srv.ca_cert_path)
        trust = ssl.create_default_context(cafile=srv.ca_cert_path)
        with httpx.Client(http2=True, verify=trust) as c:
            r = c.get(srv.base_url + "pages")
        assert r.status_code == 200 and r.http_version == "HTTP/2"
        assert r.json()[0]["link"].startswith("https://127.0.0.1:")
        with httpx.Client(verify=trust) as c:
            assert c.get(srv.base_url + "pages").http_version == "HTTP/1.1"
        assert srv.stats.http_versions == {"2": 1, "1.1": 1}


def test_stop_releases_the_port() -> None:
    site = Site()
    srv = SimulatorServer(site).start()
    port = srv.port
    assert httpx.get(srv.base_url + "pages").status_code == 200
    srv.stop()
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))  # EADDRINUSE while anything still listens there
    with pytest.raises(httpx.ConnectError):
        httpx.get(srv.base_url + "pages")


# -- the data model ---------------------------------------------------------------------------
def test_site_mutations() -> None:
    site = Site()
    site.set_clock("2024-03-01T12:00:00Z")
    parent = site.create("pages", title="Department")
    child = site.create("pages", title="Course", parent=parent)
    image = site.create("media", title="photo", post=child)
    assert parent < child < image
    assert site.get("pages", child)["link"] == "http://bulletin.example.edu/department/course/"
    site.advance_clock(hours=1)
    site.edit("pages", child, title="Course 2")
    after = site.get("pages", child)
    assert after["modified_gmt"] == "2024-03-01T13:00:00" and after["modified"] == "2024-03-01T08:00:00"
    assert after["title"] == {"rendered": "Course 2"}
    assert after["_links"]["version-history"][0]["count"] == 1
    assert site.create("pages", title="next") > image + 1  # the revision took an id
    site.advance_clock(hours=1)
    site.delete("pages", parent)
    moved = site.get("pages", child)
    assert moved["parent"] == 0 and moved["modified_gmt"] == "2024-03-01T13:00:00"
    site.set_status("pages", child, "private")
    assert child not in site.published_versions("pages")
    assert image not in site.published_versions("media")
    with pytest.raises(ValueError):
        site.set_status("pages", child, "bogus")


def test_seed_is_deterministic_and_realistic() -> None:
    def build() -> tuple[Site, dict[str, Any]]:
        site = Site()
        site.set_clock(CLOCK)
        return site, seed_site(site, pages=300, media=150, seed=3, body_kb=3, tie_block=20)

    (a, info_a), (b, info_b) = build(), build()
    assert a.published_versions("pages") == b.published_versions("pages")
    assert info_a == info_b
    some = sorted(a.published_versions("pages"))[100]
    assert a.get("pages", some) == b.get("pages", some)
    pages = [a.get("pages", i) for i in a.ids("pages")]
    statuses = {p["status"] for p in pages}
    assert "publish" in statuses and len(statuses) > 1  # some unpublished pages too
    assert any(p["parent"] for p in pages)
    assert any(not p["title"]["rendered"].isascii() or not p["content"]["rendered"].isascii() for p in pages)
    assert len({a.get("pages", i)["modified"] for i in info_a["tie_pages"]}) == 1
    for first, second in info_a["dst_pages"]:
        pa, pb = a.get("pages", first), a.get("pages", second)
        assert pa["modified"] == pb["modified"] and pa["modified_gmt"] != pb["modified_gmt"]
    assert info_a["hidden_media"] and info_a["gallery_pages"]
    body = next(p for p in pages if re.match(r"[A-Z]+ \d+", p["title"]["rendered"]))
    assert 2500 < len(body["content"]["rendered"]) < 6000


def test_runs_as_a_separate_process() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.simulator", "--pages", "40", "--media", "10"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert re.fullmatch(r"BASE_URL=http://127\.0\.0\.1:\d+/wp-json/wp/v2/", line)
        r = httpx.get(line.split("=", 1)[1] + "pages", timeout=10)
        assert r.status_code == 200 and int(r.headers["X-WP-Total"]) > 30
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
