"""`reconcile`, the deletion sweep and the `deleted` table, against the simulator over loopback HTTP.

Removals of every kind become tombstones, a restored record is live again, a sweep that cannot
prove it saw everything writes nothing, and `reconcile --repair` heals a lake with a partition
file removed on purpose without moving any cursor.
"""

from __future__ import annotations

import datetime as dt
import json
import pathlib
import re
from typing import Dict, Set

import duckdb
import pytest

from bulletin_pipeline.pipeline import make_pipeline, stored_cursor
from bulletin_pipeline.sweep import sweep
from bulletin_pipeline.transport import HttpxAdapter
from bulletin_pipeline.verify import verify_lake
from tests.hostile import HostileServer, record

from .conftest import CLOCK, Lake, assert_lake_has
from .test_cli import ROOT, cli, lake_args
from .test_standalone import runner, source

README = ROOT / "README.md"
TEST_SITE = {"SOURCES__BULLETIN__SITE_ID": "test-site", "SOURCES__BULLETIN__HTTP__MAX_ATTEMPTS": "2"}


def current_site_query(dataset: pathlib.Path, endpoint: str) -> str:
    """README's "current site" query, pointed at this lake and endpoint."""
    block = re.search(r"<!-- current-site -->\s*```sql\n(.*?)```", README.read_text(), re.S)
    assert block, "README lost its current-site query"
    query = block.group(1).replace("bulletin_raw/pages/", f"bulletin_raw/{endpoint}/")
    if not (dataset / "deleted").exists():  # as README says: no tombstone yet, no `where`
        query = re.sub(r"where not exists \(.*?\n\)\n", "", query, flags=re.S)
    return query.replace("bulletin_raw/", f"{dataset}/").replace("'pages'", f"'{endpoint}'")


def current_site(lake: Lake, endpoint: str) -> Dict[int, str]:
    """id -> modified_gmt of what README's query says the site serves now."""
    rows = duckdb.sql(current_site_query(lake.dataset, endpoint)).fetchall()
    ids = [r[0] for r in rows]
    assert len(ids) == len(set(ids)), "the query must give one row per id"
    return {r[0]: json.loads(r[1])["modified_gmt"] for r in rows}


def tombstones(lake: Lake) -> Set[tuple]:
    return {(r["endpoint"], r["id"]) for r in lake.rows("deleted")}


def live_ids(site, collection: str) -> Set[int]:
    return set(site.published_versions(collection))


def test_removals_become_tombstones_and_a_restored_record_is_live_again(lake: Lake, site):
    lake.run()
    pages = sorted(live_ids(site, "pages"))
    media_by_parent: Dict[int, list] = {}
    for media_id in live_ids(site, "media"):
        media_by_parent.setdefault(site.record("media", media_id).parent, []).append(media_id)
    restored = next(p for p in pages if media_by_parent.get(p))  # a page with attachments
    trashed, unpublished = [p for p in pages if p != restored and not media_by_parent.get(p)][:2]
    deleted_media = next(m for ms in media_by_parent.values() for m in ms if m not in media_by_parent[restored])
    before = {("pages", i) for i in live_ids(site, "pages")} | {("media", i) for i in live_ids(site, "media")}

    moment = CLOCK + dt.timedelta(hours=1)
    site.set_status("pages", trashed, "trash", at=moment)
    site.set_status("pages", unpublished, "draft", at=moment)
    site.delete("media", deleted_media)
    site.set_status("pages", restored, "trash", at=moment)  # its attachments are hidden with it
    now = {("pages", i) for i in live_ids(site, "pages")} | {("media", i) for i in live_ids(site, "media")}
    removed = before - now
    assert {("pages", trashed), ("pages", unpublished), ("media", deleted_media), ("pages", restored)} <= removed
    assert any(e == "media" and i in media_by_parent[restored] for e, i in removed)

    first = cli(*lake_args(lake), "--sweep-deletions", cwd=lake.root, env=TEST_SITE)
    assert first.returncode == 0, first.stderr
    assert tombstones(lake) == removed
    assert len(lake.rows("deleted")) == len(removed)
    deleted_row = next(r for r in lake.rows("deleted") if r["id"] == trashed)
    held = next(r for r in lake.rows("pages") if r["id"] == trashed)
    assert deleted_row["last_dl_hash"] == held["dl_hash"] and deleted_row["last_modified"]
    verified = verify_lake(lake.settings())
    assert verified.clean and {t.table: t.rows for t in verified.tables}["deleted"] == len(removed), verified

    site.set_status("pages", restored, "publish", at=moment + dt.timedelta(hours=1))
    second = cli(*lake_args(lake), "--sweep-deletions", cwd=lake.root, env=TEST_SITE)
    assert second.returncode == 0, second.stderr
    assert len(lake.rows("deleted")) == len(removed), "a still-deleted id is not tombstoned twice"
    assert current_site(lake, "pages") == site.published_versions("pages"), "the restored page is live again"

    # its attachments came back without a new `modified`: no incremental run reads them, reconcile does
    check = cli("reconcile", *lake_args(lake), cwd=lake.root, env=TEST_SITE)
    assert check.returncode == 1 and re.search(r"media: .* missing", check.stdout), check.stdout
    repair = cli("reconcile", "--repair", *lake_args(lake), cwd=lake.root, env=TEST_SITE)
    assert repair.returncode == 0, repair.stdout + repair.stderr
    for endpoint in ("pages", "media"):
        assert current_site(lake, endpoint) == site.published_versions(endpoint)
    assert len(lake.rows("deleted")) == len(removed)
    clean = cli("reconcile", *lake_args(lake), cwd=lake.root, env=TEST_SITE)
    assert clean.returncode == 0 and clean.stdout.count(": in step") == 2, clean.stdout

    tombstone_file = lake.files("deleted")[0]
    tombstone_file.write_bytes(tombstone_file.read_bytes()[:-64])
    assert [f.file for f in verify_lake(lake.settings()).faults] == [str(tombstone_file)], "verify reads `deleted` too"


def test_reconcile_repair_heals_a_lake_with_a_partition_file_removed(lake: Lake, site):
    lake.run(load_time="10:00:00")
    edited = sorted(live_ids(site, "pages"))[:3]
    for page in edited:
        site.edit("pages", page, at=CLOCK + dt.timedelta(hours=1), title="edited")
    lake.run(load_time="11:00:00")
    cursor = stored_cursor(make_pipeline(lake.settings()), "pages")
    first_file = next(f for f in lake.files("pages") if "load_time=10" in str(f))
    first_file.unlink()  # every page but the three edited ones leaves the lake

    check = cli("reconcile", *lake_args(lake), "--endpoints", "pages", cwd=lake.root, env=TEST_SITE)
    assert check.returncode == 1
    missing = len(live_ids(site, "pages")) - len(edited)
    assert f"{missing} missing" in check.stdout and "no longer served" not in check.stdout, check.stdout

    lake.server.reset_stats()
    repair = cli("reconcile", "--repair", *lake_args(lake), "--endpoints", "pages", cwd=lake.root, env=TEST_SITE)
    assert repair.returncode == 0, repair.stdout + repair.stderr
    assert f"{missing} record(s) loaded" in repair.stdout
    assert any("include" in r.params for r in lake.server.request_log), "the repair asks for the ids it lacks"
    assert_lake_has(lake, site, "pages")
    assert stored_cursor(make_pipeline(lake.settings()), "pages") == cursor, "a repair never moves the cursor"
    assert not (lake.dataset / "deleted").exists()

    again = cli("reconcile", *lake_args(lake), "--endpoints", "pages", cwd=lake.root, env=TEST_SITE)
    assert again.returncode == 0 and "pages:" in again.stdout and ": in step" in again.stdout, again.stdout

    for page in edited[:2]:  # stale in the lake: the repair loads them before any incremental run
        site.edit("pages", page, at=CLOCK + dt.timedelta(hours=2), title="edited again")
    stale = cli("reconcile", "--repair", *lake_args(lake), "--endpoints", "pages", cwd=lake.root, env=TEST_SITE)
    assert stale.returncode == 0 and "2 record(s) loaded" in stale.stdout, stale.stdout + stale.stderr
    rows = len(lake.rows("pages"))
    after = {e.endpoint: e for e in lake.run(load_time="12:00:00").endpoints}["pages"]
    assert after.loaded == 0 and len(lake.rows("pages")) == rows, "the next run writes nothing the repair wrote"


def test_a_sweep_interrupted_by_a_503_writes_nothing(lake: Lake, site):
    lake.run()
    gone = sorted(live_ids(site, "pages"))[150]
    site.delete("pages", gone)

    def fail_page_two(collection, params):
        if collection == "pages" and params.get("page") == "2" and "include" not in params:
            lake.server.inject(status=503, count=10, collection="pages")

    lake.server.before_request = fail_page_two
    result = cli("reconcile", "--repair", *lake_args(lake), cwd=lake.root, env=TEST_SITE)
    assert result.returncode == 1
    assert re.search(r"pages: sweep incomplete, nothing compared and no tombstones written \(.*HTTP 503", result.stdout)
    assert "media:" in result.stdout and "media: sweep incomplete" not in result.stdout
    assert tombstones(lake) == set(), "an interrupted sweep never yields a tombstone"


def test_a_total_that_changes_mid_sweep_writes_nothing(lake: Lake, site):
    lake.run()
    gone = sorted(live_ids(site, "pages"))[5]

    def delete_during_the_sweep(collection, params):
        if collection == "pages" and params.get("page") == "3":
            site.delete("pages", gone)

    lake.server.before_request = delete_during_the_sweep
    one_at_a_time = {**TEST_SITE, "SOURCES__BULLETIN__HTTP__MAX_CONNECTIONS": "1"}
    result = cli(*lake_args(lake), "--endpoints", "pages", "--sweep-deletions", cwd=lake.root, env=one_at_a_time)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "pages: deletion sweep incomplete, no tombstones written (X-WP-Total changed" in result.stdout
    assert tombstones(lake) == set()


def test_an_id_a_shifting_listing_skipped_is_confirmed_served_not_tombstoned(lake: Lake, site):
    """A deletion on page 2 (already read) and a creation keep the total but shift page 3 by one:
    its first record is never listed. Every id a sweep lacks is asked for by `include=` first."""
    lake.run()
    pages = sorted(live_ids(site, "pages"))
    gone, skipped = pages[150], pages[200]

    def shift_during_the_sweep(collection, params):
        if collection == "pages" and params.get("page") == "3" and site.record("pages", gone) is not None:
            site.delete("pages", gone)
            site.create("pages", at=CLOCK)

    lake.server.before_request = shift_during_the_sweep
    summary = lake.run(endpoints=["pages"], http={"max_connections": 1}, sweep_deletions=True)
    listing = summary.deletions["pages"].listing
    assert listing.complete and skipped not in listing.served and gone in listing.served
    assert any(r.params.get("include") == str(skipped) for r in lake.server.request_log)
    assert summary.deletions["pages"].tombstones == 0 and tombstones(lake) == set()

    lake.server.before_request = None
    summary = lake.run(endpoints=["pages"], sweep_deletions=True)
    assert summary.deletions["pages"].tombstones == 1 and tombstones(lake) == {("pages", gone)}


def test_hidden_media_do_not_make_a_sweep_incomplete(lake: Lake, site):
    owner = next(m for m in (site.record("media", i) for i in live_ids(site, "media")) if m.parent).parent
    site.set_status("pages", owner, "draft", at=CLOCK)
    adapter = HttpxAdapter(lake.settings().http)
    try:
        listing = sweep(adapter, lake.settings(), "media")
    finally:
        adapter.close()
    assert listing.complete, listing.problem
    assert listing.hidden > 0 and listing.total == len(listing.served) + listing.hidden
    assert set(listing.served) == live_ids(site, "media")


@pytest.mark.parametrize("total", [10**8, 10])
def test_a_lying_total_makes_a_sweep_incomplete_and_bounded(tmp_path, total):
    pages = [record("pages", i, CLOCK) for i in range(1, 301)]
    with HostileServer({"pages": pages}, total=total) as server:
        settings = Lake(tmp_path, server).settings()
        adapter = HttpxAdapter(settings.http)
        try:
            listing = sweep(adapter, settings, "pages")
        finally:
            adapter.close()
    assert not listing.complete and "X-WP-Total" in (listing.problem or "")
    assert len(server.requests) < 120, "a total that lies high must not be read to its end"


def test_reconcile_of_an_empty_lake_reports_everything_missing(lake: Lake, site):
    result = cli("reconcile", *lake_args(lake), cwd=lake.root, env=TEST_SITE)
    assert result.returncode == 1
    assert f"pages: {len(live_ids(site, 'pages'))} served, 0 live in the lake" in result.stdout
    assert not lake.dataset.exists() or not any(lake.dataset.rglob("*.parquet")), "read-only by default"


def test_reconcile_refuses_a_lake_another_site_loaded(lake: Lake, site):
    lake.run()
    other = cli("reconcile", *lake_args(lake), cwd=lake.root, env={"SOURCES__BULLETIN__SITE_ID": "another-site"})
    assert other.returncode == 2 and "belongs to 'test-site', not 'another-site'" in other.stderr, other.stderr
    assert len(other.stderr.strip().splitlines()) == 1 and "Traceback" not in other.stderr


def test_reconcile_help_and_bad_input(tmp_path):
    assert cli("reconcile", "--help", cwd=tmp_path).returncode == 0
    bad = cli("reconcile", "--base-url", "ftp://nope", cwd=tmp_path)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and "is not an http(s) URL" in bad.stderr


def test_a_plain_dlt_runner_goes_on_after_a_tombstone_load(lake: Lake, site):
    """A tombstone load is the lake's newest load in the state, as a data load is: the runner that
    wrote it (or read the state after it) runs on; the source's check for newer loads stays quiet."""
    lake.run()
    site.delete("pages", sorted(live_ids(site, "pages"))[0])
    summary = lake.run(sweep_deletions=True)
    assert summary.deletions["pages"].tombstones == 1
    site.advance_clock(minutes=5)
    edited = sorted(live_ids(site, "pages"))[0]
    site.edit("pages", edited)
    runner(lake).run(source(lake))
    assert_lake_has(lake, site, "pages")
    assert len(lake.rows("deleted")) == 1
