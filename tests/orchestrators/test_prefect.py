"""The Prefect flow, run on Prefect's local ephemeral API against the simulator: sites land, a failing one is named."""

from __future__ import annotations

from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
from prefect.logging.handlers import APILogHandler
from prefect.settings import PREFECT_SERVER_ANALYTICS_ENABLED, temporary_settings
from prefect.testing.utilities import prefect_test_harness

from bulletin_orchestrators.prefect import bulletin_flow
from tests.conftest import Lake, assert_lake_has
from tests.orchestrators.sites import closed_port_url, site_options


@pytest.fixture(scope="module", autouse=True)
def prefect_api():
    # no telemetry from the temporary server (CI may have no DNS)
    with temporary_settings(updates={PREFECT_SERVER_ANALYTICS_ENABLED: False}):
        with prefect_test_harness(server_startup_timeout=120):
            yield


def flow_logs(flow_run_id: Any) -> str:
    APILogHandler().flush()  # logs reach the API in batches: send what is queued
    with get_client(sync_client=True) as client:
        logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
    return "\n".join(log.message for log in logs)


def test_flow_loads_each_site_and_names_the_failed_one(tmp_path, server, site):
    sites = {
        "catalog": site_options(tmp_path, server.base_url, "catalog"),
        "broken": site_options(tmp_path, closed_port_url(), "broken"),
    }

    state = bulletin_flow(sites=sites, return_state=True)

    assert state.is_failed()
    message = state.message or ""
    with pytest.raises(Exception, match=r"1 of 2 site\(s\) failed.*broken: cannot reach 127\.0\.0\.1.*loaded: catalog"):
        state.result()
    healthy = Lake(tmp_path / "catalog", server)
    assert_lake_has(healthy, site, "pages")
    assert_lake_has(healthy, site, "media")
    assert len(healthy.rows("pages")) == len(site.published_versions("pages")), message
    assert not (tmp_path / "broken" / "lake" / "bulletin_raw" / "pages").exists()
    logs = flow_logs(state.state_details.flow_run_id)
    assert f"catalog: {len(healthy.rows('pages')) + len(healthy.rows('media'))} records loaded" in logs

    # the next scheduled run: nothing changed, one probe per endpoint, nothing written
    files_before = healthy.files("pages")
    summaries = bulletin_flow(sites={"catalog": sites["catalog"]})
    assert summaries["catalog"].loaded == 0
    assert set(summaries["catalog"].skipped) == {"pages", "media"}
    assert healthy.files("pages") == files_before
