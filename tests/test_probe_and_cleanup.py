"""--if-changed (one probe request per endpoint) and retention cleanup, on local disk."""

from __future__ import annotations

import datetime as dt

from bulletin_pipeline.retention import cleanup_partitions

from .conftest import CLOCK, Lake


def list_requests(lake: Lake):
    return [r for r in lake.server.request_log if r.path.endswith(("/pages", "/media"))]


def test_if_changed_skips_everything_when_nothing_changed(lake: Lake, site):
    lake.run()
    files_before = sorted(p for p in lake.dataset.rglob("*") if p.is_file())
    seen = len(lake.server.request_log)
    summary = lake.run(if_changed=True)
    assert summary.load_id is None and set(summary.skipped) == {"pages", "media"}
    assert all("no changes since" in reason for reason in summary.skipped.values())
    probes = list_requests(lake)[seen:]
    assert len(probes) == 2 and all(r.params["_fields"] == "id,modified,modified_gmt" for r in probes)
    assert sorted(p for p in lake.dataset.rglob("*") if p.is_file()) == files_before, "no load may be written"


def test_if_changed_loads_only_the_endpoints_that_changed(lake: Lake, site):
    lake.run()
    page_id = sorted(site.published_versions("pages"))[0]
    site.edit("pages", page_id, at=CLOCK + dt.timedelta(hours=1))
    summary = lake.run(if_changed=True)
    assert set(summary.skipped) == {"media"}
    assert [(e.endpoint, e.loaded) for e in summary.endpoints] == [("pages", 1)]


def test_if_changed_sees_an_edit_in_the_cursors_own_second(lake: Lake, site):
    """Comparing only the newest `modified` with the cursor would call this 'no change'."""
    a, b = sorted(site.published_versions("pages"))[:2]
    second = CLOCK + dt.timedelta(hours=1)
    site.edit("pages", a, at=second)
    lake.run()
    site.edit("pages", b, at=second)
    summary = lake.run(if_changed=True)
    assert "pages" not in summary.skipped
    assert {e.endpoint: e.loaded for e in summary.endpoints}["pages"] == 1


def test_if_changed_on_a_first_run_loads(lake: Lake, site):
    summary = lake.run(if_changed=True)
    assert not summary.skipped and summary.loaded > 0


def test_cleanup_lists_then_removes_old_partitions_keeping_the_newest(lake: Lake, site):
    lake.run(load_date="2024-01-01", load_time="10:00:00")
    site.edit("pages", sorted(site.published_versions("pages"))[0], at=CLOCK + dt.timedelta(hours=1))
    lake.run(load_date="2024-01-05", load_time="10:00:00")
    site.edit("pages", sorted(site.published_versions("pages"))[1], at=CLOCK + dt.timedelta(hours=2))
    lake.run(load_date="2024-03-01", load_time="10:00:00")
    settings = lake.settings()
    today = dt.date(2024, 3, 10)
    listed = cleanup_partitions(settings, retain_days=30, remove_them=False, today=today)
    # pages: two old partitions go, the newest stays; media changed only in the first run: its
    # only partition is the newest one and is kept however old
    assert sorted((p.table, str(p.load_date)) for p in listed) == [("pages", "2024-01-01"), ("pages", "2024-01-05")]
    assert len(lake.files("pages")) == 3, "listing must not remove anything"
    removed = cleanup_partitions(settings, retain_days=30, remove_them=True, today=today)
    assert removed == listed
    assert [p.parent.parent.name for p in lake.files("pages")] == ["load_date=2024-03-01"]
    assert lake.files("media"), "the newest partition of an endpoint is never removed"
    state = lake.dataset / "_dlt_pipeline_state"
    assert state.is_dir() and any(state.iterdir()), "dlt state is never touched"
    assert not (lake.dataset / "pages" / "load_date=2024-01-01").exists()


def test_if_changed_skips_a_collection_whose_total_counts_hidden_items(lake: Lake, site):
    """WordPress counts media attached to unpublished pages in X-WP-Total but leaves them out of
    the answer: a probe that sees every visible record of its window has nothing to load."""
    lake.run()
    draft = next(i for i in site.ids("pages") if site.record("pages", i).status != "publish")
    visible = sorted(site.published_versions("media"))
    for media_id in visible[:3]:  # hidden now, and modified inside the next probe's window
        site.edit("media", media_id, post=draft, at=CLOCK + dt.timedelta(minutes=5))
    summary = lake.run(if_changed=True)
    assert summary.load_id is None and set(summary.skipped) == {"pages", "media"}, summary.skipped
