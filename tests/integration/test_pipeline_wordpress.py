"""The pipeline against a real WordPress (Debian's 6.1, MariaDB, PHP's server, loopback).

The site is shared by the whole session, so tests that depend on the cursor work on their own
subtree: a parent page with children, loaded through `collections.pages.params.parent` - a
config-only restriction of the collection, which also shows that feature on real WordPress.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

import pytest

from bulletin_pipeline.pipeline import make_pipeline, stored_cursor
from bulletin_pipeline.settings import resolve_settings

from ..conftest import Lake
from .helpers import normalize_rendered, walk

pytestmark = pytest.mark.integration


def subtree(wordpress: Any, children: int = 3, content: str = "<p>child</p>") -> tuple[int, list[int]]:
    tag = uuid.uuid4().hex[:8]
    parent = wordpress.create_page(f"test parent {tag}")
    kids = [wordpress.create_page(f"child {n} {tag}", content=content, parent=parent) for n in range(children)]
    return parent, kids


def only(parent: int) -> dict:
    return {"collections": {"pages": {"params": {"parent": parent}}}, "endpoints": ["pages"]}


def test_full_load_equals_what_the_rest_api_serves(lake: Lake, wordpress: Any):
    lake.run()
    for table in ("pages", "media"):
        served = {r["id"]: r for r in walk(wordpress, table, per_page=100, orderby="id", order="asc")}
        rows = lake.rows(table)
        stored = {r["id"]: json.loads(r["payload"]) for r in rows}
        assert len(rows) == len(stored), f"duplicate rows in {table}"
        assert set(stored) == set(served), f"{table}: ids differ"
        for row in rows:
            assert row["dl_hash"] == hashlib.sha256(row["payload"].encode("utf-8")).hexdigest()
        for record_id, record in served.items():
            mine = stored[record_id]
            assert list(mine) == list(record)
            for key, value in record.items():
                if isinstance(value, dict) and "rendered" in value:
                    assert normalize_rendered(mine[key]["rendered"]) == normalize_rendered(value["rendered"]), key
                    assert {k: v for k, v in mine[key].items() if k != "rendered"} == {
                        k: v for k, v in value.items() if k != "rendered"
                    }
                else:
                    assert mine[key] == value, (table, record_id, key)


def test_unpublished_pages_are_absent_and_the_tie_block_is_whole(lake: Lake, wordpress: Any):
    lake.run(endpoints=["pages"], per_page=50)
    loaded = {r["id"] for r in lake.rows("pages")}
    hidden = set(wordpress.ids("page", "draft") + wordpress.ids("page", "private") + wordpress.ids("page", "pending"))
    assert hidden and not hidden & loaded
    tie = set(wordpress.seed["tie"]["ids"])
    assert len(tie) >= 150 and tie <= loaded
    hidden_media = set(wordpress.seed["ids"]["media_hidden"])
    lake.run(endpoints=["media"], per_page=20)
    assert hidden_media and not hidden_media & {r["id"] for r in lake.rows("media")}


def test_edits_then_an_incremental_run_load_exactly_the_edits(lake: Lake, wordpress: Any):
    parent, kids = subtree(wordpress, children=5)
    lake.run(**only(parent))
    assert sorted(r["id"] for r in lake.rows("pages")) == sorted(kids)
    for kid in kids[1:3]:
        wordpress.edit_page(kid, title=f"edited {kid}")
    summary = lake.run(**only(parent))
    assert summary.endpoints[0].mode == "incremental" and summary.endpoints[0].loaded == 2
    ids = [r["id"] for r in lake.rows("pages")]
    assert sorted(ids) == sorted(kids + kids[1:3])


def test_same_second_edit_race(lake: Lake, wordpress: Any):
    parent, (a, b) = subtree(wordpress, children=2)
    wordpress.set_modified(b, "2025-06-01 09:00:00")
    wordpress.set_modified(a, "2025-06-01 10:00:00")
    lake.run(**only(parent))
    assert stored_cursor(make_pipeline(lake.settings(**only(parent))), "pages") == "2025-06-01T10:00:00"
    wordpress.edit_page(b, title="saved in the same second", modified_local="2025-06-01 10:00:00")
    summary = lake.run(**only(parent))
    assert summary.endpoints[0].loaded == 1
    assert "saved in the same second" in [r["title"]["rendered"] for r in lake.records("pages") if r["id"] == b]


@pytest.mark.parametrize("overlap, expect_loaded", [(7200, 1), (0, 0)])
def test_edit_in_the_repeated_dst_hour(lake: Lake, wordpress: Any, overlap: int, expect_loaded: int):
    """America/New_York, 2025-11-02: 01:50 EDT (05:50 GMT), then 01:20 EST (06:20 GMT, later)."""
    parent, (a, b) = subtree(wordpress, children=2)
    wordpress.set_modified(b, "2025-11-02 00:10:00", "2025-11-02 04:10:00")
    wordpress.set_modified(a, "2025-11-02 01:50:00", "2025-11-02 05:50:00")
    lake.run(overlap_seconds=overlap, **only(parent))
    wordpress.edit_page(
        b,
        title="edited after the clock fell back",
        modified_local="2025-11-02 01:20:00",
        modified_gmt="2025-11-02 06:20:00",
    )
    served = wordpress.rest(f"pages/{b}").json
    assert (served["modified"], served["modified_gmt"]) == ("2025-11-02T01:20:00", "2025-11-02T06:20:00")
    summary = lake.run(overlap_seconds=overlap, **only(parent))
    assert summary.endpoints[0].loaded == expect_loaded  # without the overlap, WordPress's filter drops it


def test_a_listing_whose_size_is_an_exact_multiple_of_the_window(lake: Lake, wordpress: Any):
    """Where page-number loaders request one page too many (400 rest_post_invalid_page_number)."""
    parent, kids = subtree(wordpress, children=10)
    past = wordpress.rest("pages", parent=parent, per_page=5, page=3)
    assert past.status_code == 400 and past.json["code"] == "rest_post_invalid_page_number"
    beyond = wordpress.rest("pages", parent=parent, per_page=5, offset=50)
    assert beyond.status_code == 200 and beyond.json == [] and beyond.total == 0  # WordPress counts nothing
    summary = lake.run(per_page=5, **only(parent))
    assert summary.endpoints[0].loaded == 10 and sorted(r["id"] for r in lake.rows("pages")) == sorted(kids)


def test_unstable_gallery_html_is_not_a_new_version(lake: Lake, wordpress: Any):
    gallery = wordpress.seed["ids"]["gallery"][0]
    shortcode = wordpress.get_post(gallery)["post_content"]
    parent, kids = subtree(wordpress, children=4, content=shortcode)
    alone = wordpress.rest("pages", include=kids[2]).json[0]["content"]["rendered"]
    listing = wordpress.rest("pages", parent=parent, orderby="id", order="asc").json  # kids[2] is third
    together = next(r for r in listing if r["id"] == kids[2])
    assert alone != together["content"]["rendered"], "the quirk should show: gallery-N differs per response"
    assert normalize_rendered(alone) == normalize_rendered(together["content"]["rendered"])
    lake.run(per_page=4, **only(parent))
    summary = lake.run(per_page=3, **only(parent))  # other windows: galleries are numbered differently
    assert summary.endpoints[0].loaded == 0 and len(lake.rows("pages")) == 4


def test_if_changed_probe_on_real_wordpress(lake: Lake, wordpress: Any):
    parent, kids = subtree(wordpress, children=3)
    lake.run(**only(parent))
    quiet = lake.run(if_changed=True, **only(parent))
    assert quiet.load_id is None and "pages" in quiet.skipped
    wordpress.edit_page(kids[0], title="changed")
    changed = lake.run(if_changed=True, **only(parent))
    assert not changed.skipped and changed.endpoints[0].loaded == 1


def test_settings_reach_real_wordpress_unchanged():
    # the config-only collection restriction used above is plain dlt config
    settings = resolve_settings(base_url="http://127.0.0.1/wp-json/wp/v2/", **only(7))
    assert settings.collection("pages").params == {"parent": 7}
