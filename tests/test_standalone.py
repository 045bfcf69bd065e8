"""The source on its own: `dlt.pipeline(...).run(bulletin_source())`, as dagster-dlt or Airflow run it."""

from __future__ import annotations

import pathlib
import time
from typing import Any, List

import dlt
import pytest
from dlt.pipeline.exceptions import PipelineStepFailed

from bulletin_pipeline import DATASET_NAME, PIPELINE_NAME, bulletin_destination, bulletin_source
from bulletin_pipeline.errors import LakeLocked, cause_chain
from bulletin_pipeline.lock import LOCK_NAME
from bulletin_pipeline.pipeline import stored_cursor
from tests.conftest import CLOCK, FAST_HTTP, Lake, assert_lake_has
from tests.simulator import SimulatorServer, Site, seed_site


def runner(lake: Lake, folder: str = "pipelines") -> dlt.Pipeline:
    """A dlt pipeline as any runner makes it; `folder` apart is another machine."""
    return dlt.pipeline(
        PIPELINE_NAME,
        destination=bulletin_destination(str(lake.bucket)),
        dataset_name=DATASET_NAME,
        pipelines_dir=str(lake.root / folder),
    )


def source(lake: Lake, **overrides: Any) -> Any:
    return bulletin_source(base_url=lake.server.base_url, site_id="test-site", http=FAST_HTTP, **overrides)


def lock_released(lake: Lake, within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while (lake.dataset / LOCK_NAME).exists():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def ids_written(lake: Lake, table: str = "pages") -> List[int]:
    return [row["id"] for row in lake.rows(table)]


def test_a_plain_dlt_run_loads_the_contract_and_moves_on_incrementally(lake: Lake, site: Site):
    pipeline = runner(lake)
    once = source(lake)
    pipeline.run(once)
    assert_lake_has(lake, site, "pages")
    assert_lake_has(lake, site, "media")
    row = lake.rows("pages")[0]
    assert set(row) >= {"id", "dl_inserted_at", "payload", "dl_hash", "load_date", "load_time"}
    assert len(ids_written(lake)) == len(site.published_versions("pages"))
    assert stored_cursor(pipeline, "pages") is not None
    assert lock_released(lake)

    # a fresh runner (state from the lake) after some edits: only the new versions are written
    edited = sorted(site.published_versions("pages"))[:3]
    site.advance_clock(minutes=5)
    for record_id in edited:
        site.edit("pages", record_id, title="edited")
    fresh = runner(lake, "another-machine")
    fresh.run(source(lake))
    written = ids_written(lake)
    assert len(written) == len(site.published_versions("pages")) + len(edited)
    assert_lake_has(lake, site, "pages")
    assert lock_released(lake)

    # the same source object again (as an orchestrator keeps it), from the first machine: nothing new
    runner(lake).run(once)
    assert len(ids_written(lake)) == len(written)


def test_a_run_that_read_its_state_before_another_load_writes_nothing(lake: Lake, site: Site):
    first, second = runner(lake, "runner-a"), runner(lake, "runner-b")
    first.run(source(lake))  # restores the state once, then keeps it in its own folder
    site.advance_clock(minutes=5)
    site.edit("pages", sorted(site.published_versions("pages"))[0], title="edited")
    second.run(source(lake))
    before = ids_written(lake)
    assert len(before) == len(site.published_versions("pages")) + 1
    with pytest.raises(PipelineStepFailed) as failed:
        first.run(source(lake))  # its state predates second's load: it would write the edit again
    assert any(isinstance(e, LakeLocked) for e in cause_chain(failed.value))
    assert "after this run read its state" in str(failed.value)
    assert ids_written(lake) == before
    assert lock_released(lake)


def test_a_run_of_some_endpoints_leaves_the_lake_runnable(lake: Lake, site: Site):
    """dagster-dlt materialises a subset as `source.with_resources(...)`: that run must record its
    load too, or every later run finds a load newer than its state and stops."""
    runner(lake).run(source(lake))
    site.advance_clock(minutes=5)
    site.edit("pages", sorted(site.published_versions("pages"))[0], title="edited")
    site.edit("media", sorted(site.published_versions("media"))[0], title="edited")
    runner(lake, "runner-b").run(source(lake).with_resources("pages_envelope"))
    assert len(ids_written(lake)) == len(site.published_versions("pages")) + 1
    assert len(ids_written(lake, "media")) == len(site.published_versions("media"))
    runner(lake, "runner-c").run(source(lake))
    assert len(ids_written(lake)) == len(site.published_versions("pages")) + 1, "the pages edit written once"
    assert len(ids_written(lake, "media")) == len(site.published_versions("media")) + 1
    assert_lake_has(lake, site, "media")


def test_two_sites_in_one_process(tmp_path: pathlib.Path, server: Any, site: Site):
    other_site = Site(clock=lambda: CLOCK)
    seed_site(other_site, pages=30, media=5, seed=11, body_kb=1)
    with SimulatorServer(other_site) as other_server:
        lakes = [Lake(tmp_path / "one", server), Lake(tmp_path / "two", other_server)]
        for each in lakes:
            runner(each).run(bulletin_source(base_url=each.server.base_url, site_id=each.server.base_url))
        assert len(ids_written(lakes[0])) == len(site.published_versions("pages"))
        assert len(ids_written(lakes[1])) == len(other_site.published_versions("pages"))
