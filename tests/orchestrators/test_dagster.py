"""Dagster (extra `dagster`): the source's assets materialised in-process through dagster-dlt
against the simulator, the sensor on the change probe, and three sites in one run, one failing."""

from __future__ import annotations

import datetime as dt
import json
import pathlib
from typing import Any, Dict, List

import dagster as dg
import dlt
import pyarrow.parquet as pq
import pytest
from dagster_dlt import DagsterDltResource

from bulletin_orchestrators.dagster import bulletin_definitions
from bulletin_pipeline.pipeline import stored_cursor
from bulletin_pipeline.sites import load_sites, site_pipeline_name
from tests.conftest import CLOCK, FAST_HTTP, Lake, assert_lake_has
from tests.simulator import Fault, SimulatorServer, Site, seed_site

# dagster's own pydantic v1 compatibility layer, on every definition it builds
pytestmark = pytest.mark.filterwarnings("ignore:The `__fields__` attribute is deprecated")

CONTRACT = ["id", "dl_inserted_at", "payload", "dl_hash"]
LATER = CLOCK - dt.timedelta(minutes=30)  # before the site's now: a cursor may move there


def site_entry(name: str, server: Any, root: pathlib.Path) -> Dict[str, Any]:
    return {
        "name": name,
        "base_url": server.base_url,
        "bucket_url": str(root / "lake" / name),
        "pipelines_dir": str(root / "pipelines"),
        "http": FAST_HTTP,
        "digest_workers": 0,
    }


def site_lake(root: pathlib.Path, name: str, server: Any) -> Lake:
    lake = Lake(root, server)
    lake.bucket = root / "lake" / name
    return lake


def materializations(result: dg.ExecuteInProcessResult) -> Dict[str, Dict[str, Any]]:
    """asset key ("bulletin/site/pages") -> its metadata values."""
    return {
        event.asset_key.to_user_string(): {k: v.value for k, v in event.materialization.metadata.items()}
        for event in result.get_asset_materialization_events()
        if event.asset_key is not None
    }


def cursor(root: pathlib.Path, name: str, endpoint: str = "pages") -> Any:
    return stored_cursor(dlt.attach(site_pipeline_name(name), pipelines_dir=str(root / "pipelines")), endpoint)


def test_assets_load_the_lake_with_metadata_and_the_sensor_launches_only_on_change(tmp_path, server, site: Site):
    bad = sorted(site.published_versions("pages"))[3]
    site.edit("pages", bad, at=LATER, menu_order="first")  # rejected by the schema, kept in `rejected`
    defs = bulletin_definitions(sites=load_sites([site_entry("catalog", server, tmp_path)]))
    assert defs.resolve_schedule_def("bulletin_daily").cron_schedule == "0 10 * * *"

    result = dg.materialize(defs.assets, resources={"dlt": DagsterDltResource()})  # type: ignore[arg-type]

    assert result.success
    lake = site_lake(tmp_path, "catalog", server)
    published = site.published_versions("pages")
    assert_lake_has(lake, site, "pages", {i: v for i, v in published.items() if i != bad})
    assert_lake_has(lake, site, "media")
    assert [(r["endpoint"], r["id"]) for r in lake.rows("rejected")] == [("pages", bad)]
    for table in ("pages", "media"):
        assert pq.read_schema(lake.files(table)[0]).names == CONTRACT
    metadata = materializations(result)
    assert sorted(metadata) == ["bulletin/catalog/media", "bulletin/catalog/pages"]
    pages, media = metadata["bulletin/catalog/pages"], metadata["bulletin/catalog/media"]
    assert (pages["rows_loaded"], pages["rejected"]) == (len(lake.rows("pages")), 1)
    assert (media["rows_loaded"], media["rejected"]) == (len(lake.rows("media")), 0)
    assert (pages["files"], media["files"]) == (len(lake.files("pages")), len(lake.files("media")))
    newest = max(json.loads(r["payload"])["modified"] for r in lake.rows("pages"))
    assert pages["cursor"] == cursor(tmp_path, "catalog") == newest
    assert [c.name for c in pages["dagster/column_schema"].columns] == CONTRACT

    sensor = defs.resolve_sensor_def("bulletin_changes")
    seen = server.controls.stats().requests
    quiet = sensor(dg.build_sensor_context())
    assert isinstance(quiet, dg.SkipReason), quiet
    assert server.controls.stats().requests - seen == 2, "a quiet tick costs one request per endpoint"

    edited = sorted(published)[10]
    site.edit("pages", edited, at=LATER, title="Changed")
    requests: List[dg.RunRequest] = sensor(dg.build_sensor_context())  # type: ignore[assignment]
    assert [r.asset_selection for r in requests] == [[dg.AssetKey(["bulletin", "catalog", "pages"])]]

    # the sensor's run loads that endpoint alone (a subset of the site's op), then all is quiet again
    media_cursor = cursor(tmp_path, "catalog", "media")
    again = dg.materialize(defs.assets, selection=requests[0].asset_selection, resources={"dlt": DagsterDltResource()})  # type: ignore[arg-type]
    assert sorted(materializations(again)) == ["bulletin/catalog/pages"]
    assert "Changed" in {json.loads(r["payload"])["title"]["rendered"] for r in lake.rows("pages")}
    assert cursor(tmp_path, "catalog") == site.local(LATER) and cursor(tmp_path, "catalog", "media") == media_cursor
    assert isinstance(sensor(dg.build_sensor_context()), dg.SkipReason)


def test_three_sites_in_one_run_the_failing_one_fails_alone_and_keeps_its_cursor(tmp_path):
    sites = {name: Site(clock=lambda: CLOCK) for name in ("alpha", "beta", "gamma")}
    for index, wp in enumerate(sites.values()):
        seed_site(wp, pages=60, media=30, seed=index, body_kb=1)
    with (
        SimulatorServer(sites["alpha"]) as a,
        SimulatorServer(sites["beta"]) as b,
        SimulatorServer(sites["gamma"]) as c,
    ):
        servers = {"alpha": a, "beta": b, "gamma": c}
        entries = [site_entry(name, srv, tmp_path) for name, srv in servers.items()]
        defs = bulletin_definitions(sites=load_sites(entries))
        first = dg.materialize(defs.assets, resources={"dlt": DagsterDltResource()})  # type: ignore[arg-type]
        assert first.success
        cursors = {name: cursor(tmp_path, name) for name in servers}

        for name, wp in sites.items():
            wp.edit("pages", sorted(wp.published_versions("pages"))[5], at=LATER, title=f"{name} edit")
        c.controls.inject(Fault(status=500, count=10_000))  # gamma keeps failing
        second = dg.materialize(defs.assets, resources={"dlt": DagsterDltResource()}, raise_on_error=False)  # type: ignore[arg-type]

    assert not second.success
    assert [e.step_key for e in second.get_step_failure_events()] == ["gamma_load"]
    landed = materializations(second)
    assert sorted(landed) == [f"bulletin/{n}/{e}" for n in ("alpha", "beta") for e in ("media", "pages")]
    for name in ("alpha", "beta"):
        assert_lake_has(site_lake(tmp_path, name, servers[name]), sites[name], "pages")
        assert cursor(tmp_path, name) == sites[name].local(LATER) > cursors[name]
    gamma = site_lake(tmp_path, "gamma", c)
    assert cursor(tmp_path, "gamma") == cursors["gamma"], "the failing site's cursor stays"
    assert "gamma edit" not in {json.loads(r["payload"])["title"]["rendered"] for r in gamma.rows("pages")}
