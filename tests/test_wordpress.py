"""WordPress HTTP behaviour: errors in one line, retries, concurrency, HTTP/2, and a listing that
moves while it is read. Every test talks HTTP to the simulator on loopback."""

from __future__ import annotations

import datetime as dt
import socket
import time

import pytest

from bulletin_pipeline.errors import InconsistentListing, WordPressError, WordPressUnreachable
from bulletin_pipeline.pipeline import make_pipeline, stored_cursor
from tests.simulator import SimulatorServer, Site, seed_site

from .conftest import CLOCK, Lake, assert_lake_has

LATER = CLOCK + dt.timedelta(hours=1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def one_line(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text and "Traceback" not in text
    return text


class TestErrors:
    def test_unreachable_host(self, lake: Lake):
        url = f"http://127.0.0.1:{free_port()}/wp-json/wp/v2/"
        with pytest.raises(WordPressUnreachable) as err:
            lake.run(base_url=url)
        assert "cannot reach 127.0.0.1" in one_line(err.value) and "attempt" in str(err.value)

    def test_unknown_endpoint_names_the_collection(self, lake: Lake):
        with pytest.raises(WordPressError) as err:
            lake.run(endpoints=["pages", "courses"])
        message = one_line(err.value)
        assert "404 rest_no_route" in message and "'courses'" in message and "/courses?" in message

    def test_base_url_pointing_at_the_website_not_the_api(self, lake: Lake):
        with pytest.raises(WordPressError) as err:
            lake.run(base_url=lake.server.origin + "/")
        assert "instead of a JSON list" in one_line(err.value) and "wp-json/wp/v2" in str(err.value)

    def test_html_answer_with_status_200(self, lake: Lake):
        lake.server.inject(status=200, body="<!DOCTYPE html><html>maintenance</html>", content_type="text/html")
        with pytest.raises(WordPressError, match="text/html"):
            lake.run()

    def test_html_error_page_after_retries(self, lake: Lake):
        lake.server.inject(status=502, count=1000, body="<html>Bad gateway</html>", content_type="text/html")
        with pytest.raises(WordPressError) as err:
            lake.run()
        assert "HTTP 502" in one_line(err.value) and "after 3 attempt(s)" in str(err.value)

    def test_a_genuine_400_fails_at_once_naming_url_and_code(self, lake: Lake):
        lake.server.inject(
            status=400,
            body={"code": "rest_invalid_param", "message": "Invalid parameter(s): orderby", "data": {"status": 400}},
        )
        started = time.monotonic()
        with pytest.raises(WordPressError) as err:
            lake.run()
        message = one_line(err.value)
        assert "HTTP 400 rest_invalid_param" in message and "Invalid parameter(s): orderby" in message
        assert "GET http://127.0.0.1" in message
        assert lake.server.stats.statuses[400] == 1, "a 4xx must not be retried"
        assert time.monotonic() - started < 10

    def test_forbidden_collection(self, lake: Lake):
        lake.server.inject(status=401, body={"code": "rest_forbidden", "message": "Sorry", "data": {"status": 401}})
        with pytest.raises(WordPressError, match="needs authentication"):
            lake.run()


class TestNothingLost:
    def test_a_failed_collection_keeps_its_cursor_and_the_rerun_loads_what_it_missed(self, lake: Lake, site: Site):
        """media keeps failing: pages still loads; media writes nothing, keeps its cursor, and the
        next run loads what it missed."""
        lake.run()
        media_cursor = stored_cursor(make_pipeline(lake.settings()), "media")
        media_rows = len(lake.rows("media"))
        for n, page_id in enumerate(sorted(site.published_versions("pages"))[20:25]):
            site.edit("pages", page_id, at=LATER + dt.timedelta(seconds=n))
        for n, media_id in enumerate(sorted(site.published_versions("media"))[3:6]):
            site.edit("media", media_id, at=LATER + dt.timedelta(seconds=n))
        lake.server.inject(status=503, count=50, collection="media")
        with pytest.raises(WordPressError, match="HTTP 503") as failure:
            lake.run()
        assert "media" in one_line(failure.value) and "loaded: pages" in str(failure.value)
        assert_lake_has(lake, site, "pages")
        assert stored_cursor(make_pipeline(lake.settings()), "media") == media_cursor
        assert len(lake.rows("media")) == media_rows, "a failed collection must not write partial data"
        lake.server.clear_faults()
        summary = lake.run()
        assert {e.endpoint: e.loaded for e in summary.endpoints} == {"pages": 0, "media": 3}
        assert_lake_has(lake, site, "media")

    def test_failure_on_a_later_window_keeps_the_cursor(self, lake: Lake, site: Site):
        """Windows after the first are prefetched concurrently; one failing must fail the run."""

        def fail_after_first_window(collection, params):
            if collection == "pages" and params.get("offset") == "0":
                lake.server.inject(status=500, count=1000, collection="pages")  # every later request

        lake.server.before_request = fail_after_first_window
        with pytest.raises(WordPressError, match="HTTP 500"):
            lake.run(per_page=40)
        assert stored_cursor(make_pipeline(lake.settings()), "pages") is None
        assert lake.rows("pages") == []


class TestRetries:
    def test_5xx_then_success(self, lake: Lake, site: Site):
        lake.server.inject(status=503, count=2, collection="pages")
        summary = lake.run()
        assert summary.retries >= 2
        assert_lake_has(lake, site, "pages")

    def test_429_honours_retry_after(self, lake: Lake, site: Site):
        lake.server.inject(status=429, count=1, collection="pages", retry_after=1)
        started = time.monotonic()
        lake.run(endpoints=["pages"])
        assert time.monotonic() - started >= 1.0
        assert_lake_has(lake, site, "pages")

    def test_connection_reset_is_retried(self, lake: Lake, site: Site):
        lake.server.inject(reset=True, count=2, collection="pages")
        summary = lake.run(endpoints=["pages"])
        assert summary.retries >= 2 and lake.server.stats.resets == 2
        assert_lake_has(lake, site, "pages")

    def test_timeout_is_retried(self, lake: Lake, site: Site):
        lake.server.inject(status=None, delay=2.0, count=1, collection="pages")
        summary = lake.run(endpoints=["pages"], http={"total_timeout": 0.5})
        assert summary.retries >= 1
        assert_lake_has(lake, site, "pages")

    def test_backoff_is_exponential_and_capped(self):
        from bulletin_pipeline.settings import HttpSettings
        from bulletin_pipeline.transport import HttpxAdapter

        adapter = HttpxAdapter(HttpSettings())
        try:
            assert [adapter.backoff(n) for n in range(1, 7)] == [5, 10, 20, 40, 60, 60]
        finally:
            adapter.close()


class TestConcurrency:
    def test_windows_are_fetched_concurrently_within_max_connections(self, tmp_path):
        site = Site(clock=lambda: CLOCK)
        seed_site(site, pages=600, media=300, seed=5, body_kb=0.3)
        with SimulatorServer(site, latency=0.1) as server:
            lake = Lake(tmp_path, server)
            summary = lake.run(per_page=20, http={"max_connections": 8})
            assert summary.requests >= 45
            # a structural check, not a timing one: more than one request was in flight at once,
            # and never more than max_connections
            assert 2 <= server.stats.peak_concurrency <= 8
            assert_lake_has(lake, site, "pages")
            assert_lake_has(lake, site, "media")

    def test_http2_over_tls(self, tmp_path):
        site = Site(clock=lambda: CLOCK)
        seed_site(site, pages=150, media=50, seed=5, body_kb=0.3)
        with SimulatorServer(site, tls=True) as server:
            lake = Lake(tmp_path, server)
            summary = lake.run(http={"verify": server.ca_cert_path})
            assert set(summary.http_versions) == {"HTTP/2"}
            assert server.stats.http_versions["2"] == summary.requests
            assert_lake_has(lake, site, "pages")

    def test_server_that_caps_concurrency(self, tmp_path):
        site = Site(clock=lambda: CLOCK)
        seed_site(site, pages=300, media=0, seed=5, body_kb=0.3)
        with SimulatorServer(site, latency=0.02, max_concurrency=2) as server:
            lake = Lake(tmp_path, server)
            lake.run(endpoints=["pages"], per_page=20)
            assert server.stats.peak_active <= 2
            assert_lake_has(lake, site, "pages")


class TestListingMovesDuringARun:
    def _run_with(self, lake: Lake, hook, **options):
        lake.server.before_request = hook
        try:
            return lake.run(**options)
        finally:
            lake.server.before_request = None

    def test_deletion_mid_run_shifts_records_back_and_none_is_lost(self, lake: Lake, site: Site):
        ids = sorted(site.published_versions("pages"))
        start_versions = site.published_versions("pages")
        seen = {"n": 0}

        def delete_early_records(collection, params):
            if collection == "pages" and params.get("offset") not in (None, "0"):
                seen["n"] += 1
                if seen["n"] in (2, 4):
                    # removing low ids moves every later record back across window boundaries
                    site.delete("pages", ids[seen["n"]])

        summary = self._run_with(lake, delete_early_records, per_page=25, http={"max_connections": 1})
        survivors = {i: v for i, v in start_versions.items() if i in site.published_versions("pages")}
        assert_lake_has(lake, site, "pages", survivors)
        pages = {e.endpoint: e for e in summary.endpoints}["pages"]
        assert pages.loaded >= len(survivors)

    def test_a_compensated_change_with_an_unchanged_total_is_still_caught(self, lake: Lake, site: Site):
        """Delete one early record and create one: X-WP-Total stays the same, ids still shift."""
        ids = sorted(site.published_versions("pages"))
        start_versions = site.published_versions("pages")
        done = {"n": 0}

        def swap(collection, params):
            if collection == "pages" and params.get("offset") == "48" and not done["n"]:
                done["n"] = 1
                site.delete("pages", ids[3])
                site.create("pages", at=CLOCK, title="replacement")

        self._run_with(lake, swap, per_page=25, http={"max_connections": 1})
        survivors = {i: v for i, v in start_versions.items() if i in site.published_versions("pages")}
        assert_lake_has(lake, site, "pages", survivors)

    def test_edits_during_a_run_land_in_this_run_or_the_next(self, lake: Lake, site: Site):
        ids = sorted(site.published_versions("pages"))
        counter = {"n": 0}

        def edit_while_reading(collection, params):
            if collection == "pages":
                counter["n"] += 1
                page_id = ids[(counter["n"] * 37) % len(ids)]
                site.edit("pages", page_id, at=LATER + dt.timedelta(seconds=counter["n"]), title="mid-run edit")

        self._run_with(lake, edit_while_reading, per_page=25)
        lake.run()
        assert_lake_has(lake, site, "pages")

    def test_hidden_items_make_short_windows_that_are_accepted(self, lake: Lake, site: Site):
        """Media attached to unpublished pages are counted but not listed: short windows, no loop."""
        lake.run(endpoints=["media"], per_page=10)
        assert_lake_has(lake, site, "media")
        logged = [r for r in lake.server.request_log if r.path.endswith("/media")]
        assert len(logged) < 3 * (len(site.ids("media")) // 9 + 1)

    def test_a_listing_that_never_settles_fails_without_moving_the_cursor(self, lake: Lake, site: Site):
        ids = sorted(site.published_versions("pages"))

        def delete_on_every_request(collection, params):
            # every request removes more low ids than a window holds: nothing can be proven
            if collection == "pages" and params.get("offset") not in (None, "0"):
                for _ in range(12):
                    if len(ids) > 40:
                        site.delete("pages", ids.pop(0))

        with pytest.raises(InconsistentListing, match="kept changing"):
            self._run_with(
                lake,
                delete_on_every_request,
                endpoints=["pages"],
                per_page=10,
                max_reread_attempts=2,
                http={"max_connections": 1},
            )
        assert stored_cursor(make_pipeline(lake.settings()), "pages") is None


def test_rereads_are_reported_in_the_summary(lake: Lake, site: Site):
    from bulletin_pipeline.wordpress import WINDOW_OVERLAP

    ids = sorted(site.published_versions("pages"))
    done = {"n": 0}

    def delete_once(collection, params):
        if collection == "pages" and params.get("offset") not in (None, "0") and not done["n"]:
            done["n"] = 1
            # as many deletions as windows share records: the next window then skips past one
            for gone in ids[1 : 1 + WINDOW_OVERLAP]:
                site.delete("pages", gone)

    lake.server.before_request = delete_once
    summary = lake.run(endpoints=["pages"], per_page=20, http={"max_connections": 1})
    assert {e.endpoint: e.rereads for e in summary.endpoints}["pages"] >= 1


def test_a_hidden_record_where_two_windows_meet_costs_no_reread(lake: Lake, site: Site):
    """WordPress counts media attached to unpublished pages, then leaves them out of the answer. When
    the record two windows share is such an item, one shared record proves nothing and the window
    was re-read (a synchronous round trip); windows share WINDOW_OVERLAP records, so it is not."""
    from bulletin_pipeline.wordpress import WINDOW_OVERLAP

    per_page = 10
    step = per_page - WINDOW_OVERLAP
    listed = [i for i in site.ids("media") if site.record("media", i).status == "inherit"]
    visible = set(site.published_versions("media"))
    draft = next(i for i in site.ids("pages") if site.record("pages", i).status != "publish")
    hidden = 0
    for position in range(step, len(listed) - 1, step):  # where window k starts: offset k * step
        if listed[position] in visible and listed[position + 1] in visible:
            site.edit("media", listed[position], post=draft, at=CLOCK)  # now hidden, still counted
            hidden += 1
    assert hidden >= 5
    summary = lake.run(endpoints=["media"], per_page=per_page)
    assert {e.endpoint: e.rereads for e in summary.endpoints}["media"] == 0
    assert_lake_has(lake, site, "media")
