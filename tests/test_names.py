"""An endpoint whose name dlt normalises (`menu-items`, a WordPress core route) is written to its
table `menu_items/`: every tool that reads the lake back finds it there, and two endpoints that
would share one table are refused before anything is read.

The simulator serves pages and media only, so `menu-items` reads `pages` through its `path`.
"""

from __future__ import annotations

import datetime as dt
import pathlib
import shutil

import pytest

from bulletin_pipeline.reconcile import reconcile
from bulletin_pipeline.retention import cleanup_partitions
from bulletin_pipeline.verify import verify_lake
from tests.simulator import Site, seed_site

from .conftest import CLOCK, Lake
from .test_cli import cli, lake_args

DASHED = "menu-items"
TABLE = "menu_items"
COLLECTIONS = {DASHED: {"path": "pages"}}
TEST_SITE = {"SOURCES__BULLETIN__SITE_ID": "test-site"}


@pytest.fixture
def site() -> Site:
    site = Site(clock=lambda: CLOCK)
    seed_site(site, pages=40, media=0, seed=3, body_kb=0.2)
    return site


def write_config(folder: pathlib.Path, collections: dict) -> None:
    """A `.dlt/config.toml` in `folder` giving each collection its REST path."""
    blocks = [f'[sources.bulletin.collections.{name}]\npath = "{path}"\n' for name, path in collections.items()]
    (folder / ".dlt").mkdir(exist_ok=True)
    (folder / ".dlt" / "config.toml").write_text("\n".join(blocks))


def dashed(lake: Lake, **overrides):
    return lake.settings(endpoints=[DASHED], collections=COLLECTIONS, **overrides)


def test_a_dashed_endpoint_loads_into_its_table_and_verifies_clean(lake: Lake, site: Site):
    write_config(lake.root, {DASHED: "pages"})
    loaded = cli(*lake_args(lake), "--endpoints", DASHED, cwd=lake.root, env=TEST_SITE)
    assert loaded.returncode == 0, loaded.stdout + loaded.stderr
    published = site.published_versions("pages")
    assert {r["id"] for r in lake.records(TABLE)} == set(published)
    assert not (lake.dataset / DASHED).exists()

    checked = cli("verify", "--bucket-url", str(lake.bucket), "--endpoints", DASHED, cwd=lake.root)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    cursor = max(r["modified"] for r in lake.records(TABLE))
    assert f"{DASHED}: newest modified {cursor}, stored cursor {cursor}: ok" in checked.stdout, checked.stdout
    assert checked.stdout.rstrip().endswith(": clean"), checked.stdout


def test_reconcile_of_a_dashed_endpoint_is_in_step_and_repair_writes_nothing_twice(lake: Lake, site: Site):
    lake.run(endpoints=[DASHED], collections=COLLECTIONS)
    write_config(lake.root, {DASHED: "pages"})
    compared = cli("reconcile", *lake_args(lake), "--endpoints", DASHED, cwd=lake.root, env=TEST_SITE)
    assert compared.returncode == 0, compared.stdout + compared.stderr
    served = len(site.published_versions("pages"))
    assert f"{DASHED}: {served} served, {served} live in the lake: in step" in compared.stdout, compared.stdout

    gone = sorted(site.published_versions("pages"))[0]
    site.delete("pages", gone)
    rows = len(lake.rows(TABLE))
    report = reconcile(dashed(lake), repair=True)
    (endpoint,) = report.endpoints
    assert (endpoint.missing, endpoint.stale, endpoint.gone) == ([], [], [gone])
    assert (endpoint.loaded, endpoint.tombstones) == (0, 1)
    assert len(lake.rows(TABLE)) == rows, "repair must not load what the lake holds again"
    assert [(r["endpoint"], r["id"]) for r in lake.rows("deleted")] == [(DASHED, gone)]
    assert reconcile(dashed(lake)).in_step
    assert verify_lake(dashed(lake)).clean


def test_cleanup_lists_the_old_partitions_of_a_dashed_endpoint(lake: Lake, site: Site):
    first, second = sorted(site.published_versions("pages"))[:2]
    lake.run(endpoints=[DASHED], collections=COLLECTIONS, load_date="2024-01-01", load_time="10:00:00")
    site.edit("pages", first, at=CLOCK + dt.timedelta(hours=1))
    lake.run(endpoints=[DASHED], collections=COLLECTIONS, load_date="2024-01-05", load_time="10:00:00")
    site.edit("pages", second, at=CLOCK + dt.timedelta(hours=2))
    lake.run(endpoints=[DASHED], collections=COLLECTIONS, load_date="2024-03-01", load_time="10:00:00")
    listed = cleanup_partitions(dashed(lake), retain_days=30, remove_them=False, today=dt.date(2024, 3, 10))
    assert sorted((p.table, str(p.load_date)) for p in listed) == [(TABLE, "2024-01-01"), (TABLE, "2024-01-05")]


def test_a_dashed_endpoint_whose_state_is_lost_is_continued_from_its_table(lake: Lake, site: Site):
    lake.run(endpoints=[DASHED], collections=COLLECTIONS)
    rows = len(lake.rows(TABLE))
    # the state is gone: the local folder and the lake's copies of it (the loads stay)
    shutil.rmtree(lake.pipelines_dir)
    for state in (lake.dataset / "_dlt_pipeline_state").iterdir():
        state.unlink()
    site.edit("pages", sorted(site.published_versions("pages"))[0], at=CLOCK - dt.timedelta(minutes=10))

    summary = lake.run(endpoints=[DASHED], collections=COLLECTIONS)
    (endpoint,) = summary.endpoints
    assert endpoint.mode == "continuation", endpoint
    assert endpoint.loaded == 1 and len(lake.rows(TABLE)) == rows + 1, "only the edit is written"


def test_endpoints_that_would_share_one_table_are_refused_in_one_line(lake: Lake, tmp_path: pathlib.Path):
    write_config(tmp_path, {"page-a": "pages", "page_a": "pages"})
    result = cli(*lake_args(lake), "--endpoints", "page-a,page_a", cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "endpoints 'page-a' and 'page_a' would both be written to the table 'page_a'" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not lake.dataset.exists(), "nothing is read or written"
