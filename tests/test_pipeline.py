"""The main job end to end: simulator over HTTP on loopback -> dlt -> Parquet lake in a temp folder."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import shutil

import duckdb
import polars as pl
import pyarrow.parquet as pq
import pytest

from bulletin_pipeline.errors import RejectedRecords
from bulletin_pipeline.pipeline import make_pipeline, stored_cursor
from tests.simulator import SimulatorServer, Site, seed_site

from .conftest import CLOCK, Lake, assert_lake_has

LATER = CLOCK + dt.timedelta(hours=1)


def test_full_load_writes_every_published_record_exactly_once(lake: Lake, site: Site):
    summary = lake.run()
    for table in ("pages", "media"):
        ids = [r["id"] for r in lake.rows(table)]
        assert len(ids) == len(set(ids)), f"duplicate rows in {table}"
        assert set(ids) == set(site.published_versions(table))
        assert_lake_has(lake, site, table)
    by_endpoint = {e.endpoint: e for e in summary.endpoints}
    assert by_endpoint["pages"].loaded == len(site.published_versions("pages"))
    assert by_endpoint["media"].loaded == len(site.published_versions("media"))
    assert by_endpoint["pages"].mode == "initial" and by_endpoint["pages"].files >= 1
    assert by_endpoint["pages"].cursor_after == max(r["modified"] for r in lake.records("pages"))


def test_unpublished_records_never_reach_the_lake(lake: Lake, site: Site):
    hidden = [i for i in site.ids("pages") if i not in site.published_versions("pages")]
    assert hidden, "the seed should contain drafts/private pages"
    lake.run()
    assert not set(hidden) & {r["id"] for r in lake.rows("pages")}


def test_incremental_run_loads_only_the_changed_records(lake: Lake, site: Site):
    lake.run()
    before = len(lake.rows("pages"))
    edited = sorted(site.published_versions("pages"))[5:8]
    for offset, page_id in enumerate(edited):
        site.edit("pages", page_id, at=LATER + dt.timedelta(seconds=offset), title=f"Edited {page_id}")
    created = site.create("pages", at=LATER + dt.timedelta(seconds=10), title="New course")
    summary = lake.run()
    new_rows = lake.rows("pages")[before:]
    assert sorted(r["id"] for r in lake.rows("pages")) != []
    new_ids = sorted(r["id"] for r in lake.rows("pages") if json.loads(r["payload"])["modified_gmt"] >= "2025-06-02T13")
    assert new_ids == sorted(edited + [created])
    assert len(lake.rows("pages")) == before + 4, new_rows
    pages = {e.endpoint: e for e in summary.endpoints}["pages"]
    assert pages.mode == "incremental" and pages.loaded == 4
    assert pages.cursor_after == site.get("pages", created)["modified"]
    assert_lake_has(lake, site, "pages")
    # nothing changed since: the overlap is re-read but nothing is written twice
    again = lake.run()
    assert {e.endpoint: e for e in again.endpoints}["pages"].loaded == 0
    assert len(lake.rows("pages")) == before + 4


def test_what_a_backfill_wrote_the_next_incremental_run_does_not_write_again(lake: Lake, site: Site):
    lake.run()
    edited = sorted(site.published_versions("pages"))[:3]
    for offset, page_id in enumerate(edited):
        site.edit("pages", page_id, at=LATER + dt.timedelta(seconds=offset), title=f"Edited {page_id}")
    backfill = {e.endpoint: e for e in lake.run(last_modified_date=f"{LATER:%Y-%m-%d}").endpoints}["pages"]
    assert backfill.mode == "backfill" and backfill.loaded >= len(edited)
    rows = len(lake.rows("pages"))
    after = {e.endpoint: e for e in lake.run().endpoints}["pages"]
    assert after.mode == "incremental" and after.loaded == 0, "the edits the backfill wrote are not written again"
    assert len(lake.rows("pages")) == rows
    assert_lake_has(lake, site, "pages")


def test_same_second_edit_after_the_cursor_is_not_missed(lake: Lake, site: Site):
    first, second = sorted(site.published_versions("pages"))[:2]
    site.edit("pages", first, at=LATER, title="edited at S")
    lake.run()
    cursor = stored_cursor(make_pipeline(lake.settings()), "pages")
    assert cursor == site.get("pages", first)["modified"]
    # another editor saves a page within the same second, after our read of that second
    site.edit("pages", second, at=LATER, title="also edited at S")
    lake.run()
    assert site.published_versions("pages")[second] in lake.versions("pages")[second]
    assert len([r for r in lake.records("pages") if r["id"] == first]) == 1, "the overlap wrote a version twice"


def test_record_edited_in_the_repeated_dst_hour_is_not_missed(lake: Lake, site: Site):
    """America/New_York falls back on 2025-11-02: local 01:00-01:59 happens twice."""
    a, b = sorted(site.published_versions("pages"))[:2]
    site.edit("pages", a, at="2025-11-02T05:50:00Z")  # 01:50 EDT
    lake.run()
    assert stored_cursor(make_pipeline(lake.settings()), "pages") == "2025-11-02T01:50:00"
    site.edit("pages", b, at="2025-11-02T06:20:00Z")  # 30 min later in real time: 01:20 EST
    assert site.get("pages", b)["modified"] == "2025-11-02T01:20:00"
    lake.run()
    assert "2025-11-02T06:20:00" in lake.versions("pages")[b]


def test_without_overlap_the_dst_edit_would_be_lost(lake: Lake, site: Site):
    """Why overlap_seconds exists: the same scenario with no overlap loses the record."""
    a, b = sorted(site.published_versions("pages"))[:2]
    site.edit("pages", a, at="2025-11-02T05:50:00Z")
    lake.run(overlap_seconds=0)
    site.edit("pages", b, at="2025-11-02T06:20:00Z")
    lake.run(overlap_seconds=0)
    assert "2025-11-02T06:20:00" not in lake.versions("pages").get(b, set())


def test_tie_block_larger_than_a_page_is_loaded_whole(tmp_path):
    site = Site(clock=lambda: CLOCK)
    summary = seed_site(site, pages=300, media=0, seed=3, body_kb=0.5, tie_block=170)
    tie = summary["tie_pages"]
    assert len(tie) == 170
    with SimulatorServer(site, shuffle_ties=True) as server:
        lake = Lake(tmp_path, server)
        lake.run(endpoints=["pages"], per_page=50)
        assert set(tie) <= {r["id"] for r in lake.rows("pages")}
        assert_lake_has(lake, site, "pages")
        # an incremental run whose window starts inside the tie second re-reads it without duplicates
        edited = tie[0]
        site.edit("pages", edited, at=LATER)
        lake.run(endpoints=["pages"], per_page=50)
        ids = [r["id"] for r in lake.rows("pages")]
        assert ids.count(edited) == 2 and len(ids) == len(set(ids)) + 1


def test_stored_cursor_is_restored_from_the_destination(lake: Lake, site: Site):
    lake.run()
    total = len(lake.rows("pages"))
    shutil.rmtree(lake.pipelines_dir)  # a fresh runner: no local pipeline state
    edited = sorted(site.published_versions("pages"))[10:12]
    for page_id in edited:
        site.edit("pages", page_id, at=LATER)
    summary = lake.run()
    pages = {e.endpoint: e for e in summary.endpoints}["pages"]
    assert pages.mode == "incremental", "state was not restored: this would be a full reload"
    assert pages.loaded == 2
    assert len(lake.rows("pages")) == total + 2


class TestPrecedence:
    def test_full_refresh_reads_everything_and_keeps_the_cursor(self, lake: Lake, site: Site):
        lake.run()
        cursor = stored_cursor(make_pipeline(lake.settings()), "pages")
        summary = lake.run(full_refresh=True)
        pages = {e.endpoint: e for e in summary.endpoints}["pages"]
        assert pages.mode == "full_refresh"
        assert pages.loaded == len(site.published_versions("pages"))
        assert pages.cursor_after == cursor

    def test_full_refresh_wins_over_last_modified_date(self, lake: Lake, site: Site):
        summary = lake.run(full_refresh=True, last_modified_date="2025-01-01")
        pages = {e.endpoint: e for e in summary.endpoints}["pages"]
        assert pages.loaded == len(site.published_versions("pages"))

    def test_first_full_refresh_establishes_a_cursor(self, lake: Lake, site: Site):
        lake.run(full_refresh=True)
        summary = lake.run()
        pages = {e.endpoint: e for e in summary.endpoints}["pages"]
        assert pages.mode == "incremental" and pages.loaded == 0

    def test_backfill_loads_from_the_date_and_never_moves_the_cursor_back(self, lake: Lake, site: Site):
        lake.run()
        cursor = stored_cursor(make_pipeline(lake.settings()), "pages")
        summary = lake.run(last_modified_date="2024-06-01")
        pages = {e.endpoint: e for e in summary.endpoints}["pages"]
        expected = [r for r in site.published_versions("pages") if site.get("pages", r)["modified"] >= "2024-06-01"]
        assert pages.mode == "backfill" and pages.loaded == len(expected) > 0
        assert stored_cursor(make_pipeline(lake.settings()), "pages") == cursor
        assert lake.run().endpoints[0].mode == "incremental"

    def test_default_baseline_applies_to_the_first_run_only(self, lake: Lake, site: Site):
        summary = lake.run(default_baseline_datetime="2024-06-01T00:00:00")
        pages = {e.endpoint: e for e in summary.endpoints}["pages"]
        assert all(r["modified"] > "2024-06-01T00:00:00" for r in lake.records("pages"))
        assert 0 < pages.loaded < len(site.published_versions("pages"))


def test_rejected_records_are_kept_counted_and_fail_strict(lake: Lake, site: Site):
    bad = sorted(site.published_versions("pages"))[3]
    site.edit("pages", bad, at=LATER, menu_order="first")  # WordPress plugins do this kind of thing
    summary = lake.run()
    assert summary.rejected == 1
    assert bad not in {r["id"] for r in lake.rows("pages")}
    rejected = lake.rows("rejected")
    assert [(r["endpoint"], r["id"]) for r in rejected] == [("pages", bad)]
    assert "menu_order" in rejected[0]["error"]
    assert json.loads(rejected[0]["payload"])["menu_order"] == "first"
    assert rejected[0]["dl_hash"] == hashlib.sha256(rejected[0]["payload"].encode()).hexdigest()
    site.edit("pages", sorted(site.published_versions("pages"))[4], at=LATER, menu_order="second")
    with pytest.raises(RejectedRecords, match="1 record"):
        lake.run(strict=True)
    assert len(lake.rows("rejected")) == 2, "strict still writes the rejected record"


def test_parquet_files_follow_the_contract(lake: Lake, site: Site):
    lake.run()
    for path in lake.files("pages"):
        parquet = pq.ParquetFile(path)
        schema = parquet.schema_arrow
        assert schema.names == ["id", "dl_inserted_at", "payload", "dl_hash"]
        assert [str(t) for t in schema.types] == ["int64", "timestamp[us, tz=UTC]", "string", "string"]
        assert {parquet.metadata.row_group(0).column(i).compression for i in range(4)} == {"SNAPPY"}
        table = parquet.read()
        for row in table.to_pylist():
            assert row["dl_hash"] == hashlib.sha256(row["payload"].encode("utf-8")).hexdigest()
        assert len(set(table.column("dl_inserted_at").to_pylist())) == 1


def test_payload_is_the_served_record(lake: Lake, site: Site):
    import httpx

    lake.run(endpoints=["pages"])
    served = httpx.get(lake.server.base_url + "pages", params={"per_page": 100, "orderby": "id", "order": "asc"}).json()
    stored = {r["id"]: r for r in lake.records("pages")}
    for record in served:
        assert stored[record["id"]].keys() == record.keys()
        for key in record:
            if key not in ("content",):  # rendered galleries are numbered per response (a WP quirk)
                assert stored[record["id"]][key] == record[key], key


def test_partition_paths_and_overrides(lake: Lake, site: Site):
    lake.run(load_date="2024-02-29", load_time="06:30:00")
    paths = [p.relative_to(lake.dataset).as_posix() for p in lake.files("pages")]
    assert paths and all(
        re.fullmatch(r"pages/load_date=2024-02-29/load_time=06:30:00/\d+\.\d+\.[0-9a-f]+\.parquet", p) for p in paths
    ), paths
    site.edit("pages", sorted(site.published_versions("pages"))[0], at=LATER)
    lake.run()
    today = [p for p in lake.files("pages") if "2024-02-29" not in str(p)]
    assert len(today) == 1 and re.search(r"load_date=\d{4}-\d\d-\d\d/load_time=\d\d:\d\d:\d\d/", str(today[0]))


def test_duckdb_polars_and_pyarrow_read_the_lake_with_hive_partitions(lake: Lake, site: Site):
    lake.run()
    site.edit("pages", sorted(site.published_versions("pages"))[0], at=LATER)
    lake.run(load_time="23:59:59")
    expected = len(site.published_versions("pages")) + 1
    pattern = str(lake.dataset / "pages" / "**" / "*.parquet")
    ((count, dates),) = duckdb.sql(
        f"select count(*), count(distinct load_time) from read_parquet('{pattern}', hive_partitioning=true)"
    ).fetchall()
    assert (count, dates) == (expected, 2)
    # polars cannot parse `HH:MM:SS` hive values as a time column (the README says so too)
    frame = pl.scan_parquet(pattern, hive_partitioning=True, try_parse_hive_dates=False).collect()
    assert frame.height == expected and "load_date" in frame.columns
    assert len(lake.rows("pages")) == expected and "load_time" in lake.rows("pages")[0]


def test_a_collection_added_by_config_alone(tmp_path):
    site = Site(clock=lambda: CLOCK)
    seed_site(site, pages=20, media=0, seed=1, body_kb=0.2)
    for n in range(5):
        site.create("posts", at=CLOCK - dt.timedelta(days=n), title=f"News {n}")
    with SimulatorServer(site) as server:
        lake = Lake(tmp_path, server)
        summary = lake.run(endpoints=["pages", "posts"])
        assert {e.endpoint: e.loaded for e in summary.endpoints}["posts"] == 5
        assert len(lake.rows("posts")) == 5
