"""Digest workers: pages parsed, validated and hashed in helper processes (transport.py, worker.py).

The lake must not depend on where a page was digested, a broken page must fail the run the same
way, and no helper process may outlive a run.
"""

from __future__ import annotations

import concurrent.futures
import time

import psutil
import pytest

from bulletin_pipeline.errors import WordPressError
from bulletin_pipeline.pipeline import make_pipeline, stored_cursor
from tests.simulator import SimulatorServer, Site, seed_site

from .conftest import CLOCK, Lake


def worker_processes() -> list:
    return [
        p
        for p in psutil.Process().children(recursive=True)
        if "bulletin_pipeline.worker" in " ".join(p.cmdline() or [])
    ]


def contents(lake: Lake, table: str) -> set:
    return {(r["id"], r["payload"], r["dl_hash"]) for r in lake.rows(table)}


def test_the_lake_is_the_same_whether_pages_are_digested_in_workers_or_not(tmp_path, server, site: Site):
    in_process = Lake(tmp_path / "in-process", server)
    workers = Lake(tmp_path / "workers", server)
    first = in_process.run(per_page=10, digest_workers=0)
    second = workers.run(per_page=10, digest_workers=1)
    for table in ("pages", "media"):
        assert contents(in_process, table) == contents(workers, table)
        assert len(contents(workers, table)) == len(site.published_versions(table)) > 50
    assert first.loaded == second.loaded and second.requests >= 38  # every window went through HTTP
    assert worker_processes() == []  # stopped with the run


def test_a_broken_page_from_a_worker_fails_the_run_and_keeps_the_cursor(tmp_path):
    site = Site(clock=lambda: CLOCK)
    seed_site(site, pages=120, media=0, seed=3, body_kb=0.3)
    with SimulatorServer(site) as server:
        lake = Lake(tmp_path, server)
        lake.run(endpoints=["pages"], per_page=10)
        cursor = stored_cursor(make_pipeline(lake.settings(endpoints=["pages"])), "pages")
        for record_id in sorted(site.published_versions("pages"))[:60]:
            site.edit("pages", record_id, at=CLOCK.replace(hour=13), title="edited")

        def truncate_a_later_window(collection: str, params: dict) -> None:
            if int(params.get("offset", 0) or 0) >= 18:  # a prefetched window, not the first
                server.before_request = None
                server.inject(status=200, body=b'[{"id": 1,', content_type="application/json; charset=UTF-8")

        server.before_request = truncate_a_later_window
        with pytest.raises(WordPressError) as failure:
            lake.run(endpoints=["pages"], per_page=10, digest_workers=1)
        message = str(failure.value)
        assert "invalid JSON" in message and "\n" not in message and "offset=" in message
        assert stored_cursor(make_pipeline(lake.settings(endpoints=["pages"])), "pages") == cursor
        assert worker_processes() == []
        # the next run loads the edits
        summary = lake.run(endpoints=["pages"], per_page=10, digest_workers=1)
        assert summary.loaded == 60


def test_digest_workers_must_not_be_negative(lake: Lake):
    from bulletin_pipeline.errors import ConfigError

    with pytest.raises(ConfigError, match="digest_workers"):
        lake.run(digest_workers=-1)


def test_a_page_whose_handling_fails_fails_its_reader_instead_of_hanging():
    """Done-callbacks that raise are swallowed by concurrent.futures: the error must reach the waiter."""

    from bulletin_pipeline.transport import Digesters

    digesters = Digesters(1)
    try:
        fetching: concurrent.futures.Future = concurrent.futures.Future()
        page = digesters.digest(fetching, ("pages", True))
        fetching.set_result(object())  # not a response: handling it raises
        with pytest.raises(AttributeError):
            page.result(timeout=10)
    finally:
        digesters.close()


def test_workers_run_this_package_even_from_a_folder_holding_another_one(tmp_path, monkeypatch):
    """`python -m` would put the current directory first; an old checkout there must not answer."""
    import httpx

    from bulletin_pipeline.transport import Digesters, RawResponse

    impostor = tmp_path / "bulletin_pipeline"
    impostor.mkdir()
    (impostor / "__init__.py").write_text("")
    (impostor / "worker.py").write_text("raise SystemExit(7)\n")
    monkeypatch.chdir(tmp_path)
    digesters = Digesters(1)
    try:
        fetching: concurrent.futures.Future = concurrent.futures.Future()
        body = b'[{"id": 1, "modified": "2024-01-01T00:00:00", "slug": "a", "status": "publish", "type": "page", '
        body += b'"link": "x", "content": {"rendered": ""}, "excerpt": {"rendered": ""}}]'
        page = digesters.digest(fetching, ("pages", True))
        fetching.set_result(RawResponse("http://wp.invalid/p", 200, httpx.Headers(), body, "HTTP/1.1", 1))
        digested = page.result(timeout=30).digested
        assert digested is not None and digested.table.column("id").to_pylist() == [1]
    finally:
        digesters.close()


def test_workers_exit_once_every_listing_ended_and_later_pages_are_digested_in_process(server):
    from bulletin_pipeline.settings import HttpSettings
    from bulletin_pipeline.transport import Transport

    transport = Transport(HttpSettings(), workers=1)
    transport.start_digesters()
    try:
        url = server.base_url + "pages?per_page=5&orderby=id&order=asc"
        assert transport.get(url, digest=("pages", True)).digested is not None
        assert len(worker_processes()) == 1
        transport.release_digesters()  # what the session does when its last listing ends
        deadline = time.monotonic() + 20
        while worker_processes() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert worker_processes() == [], "the worker exits without waiting for close()"
        later = transport.get(url + "&offset=4", digest=("pages", True))
        assert later.digested is None and later.content.startswith(b"[")  # the caller digests it
    finally:
        transport.close()


def test_a_transport_that_cannot_start_leaves_no_worker_behind(tmp_path):
    from bulletin_pipeline.settings import HttpSettings
    from bulletin_pipeline.transport import Transport

    with pytest.raises(OSError):
        Transport(HttpSettings(verify=str(tmp_path / "no-such-ca.pem")), workers=1, start_digesters=True)
    deadline = time.monotonic() + 20
    while worker_processes() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert worker_processes() == []


def test_a_waiting_page_cuts_the_validator_warm_up_short():
    from bulletin_pipeline import digest

    digest._validator.cache_clear()
    checks = []
    digest.warm_up(lambda: len(checks) >= 2 or bool(checks.append(1)))
    built = digest._validator.cache_info().currsize
    assert built == 2, "the warm-up went on although a page was waiting"
    assert digest._validator("pages", True) is digest._validator("pages", True)  # the rest: on demand
    assert digest._validator.cache_info().currsize == 2, "the default collections come first"
    digest._validator("media", True)
    assert digest._validator.cache_info().currsize == 2
