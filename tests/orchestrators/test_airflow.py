"""The Airflow DAGs, loaded through Airflow's DagBag from a dags folder and run with `dag.test()` against the simulator.

Airflow runs once per module in a subprocess with its own AIRFLOW_HOME (a fresh SQLite metadata database) and a
dags folder laid out as a deployment's: the DAG file and `.dlt/config.toml` beside it.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import textwrap
from typing import Any, Dict

import pytest

from tests.conftest import CLOCK, FAST_HTTP, Lake, assert_lake_has
from tests.orchestrators.sites import closed_port_url, site_options
from tests.simulator import SimulatorServer, Site, seed_site

RUNNER = pathlib.Path(__file__).with_name("airflow_run.py")
ROOT = pathlib.Path(__file__).resolve().parents[2]


class Deployment:
    def __init__(self, root: pathlib.Path, server: SimulatorServer, site: Site, outcome: Dict[str, Any]) -> None:
        self.root, self.server, self.site, self.outcome = root, server, site, outcome

    def lake(self, name: str) -> Lake:
        return Lake(self.root / name, self.server)


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("airflow")
    site = Site(clock=lambda: CLOCK)
    seed_site(site, pages=260, media=120, seed=7, body_kb=1)
    with SimulatorServer(site) as server:
        dags = root / "home" / "dags"
        (dags / ".dlt").mkdir(parents=True)
        single = site_options(root, server.base_url, "single")
        http = "\n".join(f"{key} = {json.dumps(value)}" for key, value in FAST_HTTP.items())
        (dags / ".dlt" / "config.toml").write_text(
            f'[sources.bulletin]\nbase_url = "{single["base_url"]}"\nbucket_url = "{single["bucket_url"]}"\n'
            f'site_id = "single"\n\n[sources.bulletin.http]\n{http}\n'
        )
        sites = {
            "catalog": site_options(root, server.base_url, "catalog"),
            "broken": site_options(root, closed_port_url(), "broken"),
        }
        (dags / "bulletin.py").write_text(
            textwrap.dedent(f"""
            from bulletin_orchestrators.airflow_dag import bulletin_dag, bulletin_sites_dag

            bulletin_dag()
            bulletin_sites_dag({sites!r})
            """)
        )
        env = {
            **os.environ,
            "AIRFLOW_HOME": str(root / "home"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "PYTHONPATH": str(ROOT),
        }
        # the helper DAG twice: the second run starts from a fresh dlt folder, its state from the lake
        done = subprocess.run(
            [sys.executable, str(RUNNER), "bulletin:2", "bulletin_sites"],
            env=env,
            cwd=root,
            capture_output=True,
            text=True,
            timeout=300,
        )
        (root / "airflow.log").write_text(done.stdout + done.stderr)  # the task logs, for a failure's message
        assert done.returncode == 0, done.stderr[-3000:] + done.stdout[-3000:]
        yield Deployment(root, server, site, json.loads(done.stdout.strip().splitlines()[-1]))


def test_dagbag_finds_both_dags(deployment: Deployment):
    assert deployment.outcome["dags"] == ["bulletin", "bulletin_sites"]


def test_helper_dag_loads_then_resumes_from_the_lake(deployment: Deployment):
    first, second = deployment.outcome["runs"]["bulletin"]
    assert first["state"] == second["state"] == "success", deployment.outcome
    lake = deployment.lake("single")
    assert_lake_has(lake, deployment.site, "pages")
    assert_lake_has(lake, deployment.site, "media")
    # the second run restored the cursor and the written versions from the lake: nothing written twice
    assert len(lake.rows("pages")) == len(deployment.site.published_versions("pages"))
    assert len({row["load_time"] for row in lake.rows("pages")}) == 1


def test_sites_dag_maps_one_task_per_site(deployment: Deployment):
    (run,) = deployment.outcome["runs"]["bulletin_sites"]
    assert run["state"] == "failed"
    assert {t["rendered"]: t["state"] for t in run["tasks"]} == {"catalog": "success", "broken": "failed"}
    lake = deployment.lake("catalog")
    assert_lake_has(lake, deployment.site, "pages")
    assert_lake_has(lake, deployment.site, "media")
    assert not (deployment.root / "broken" / "lake" / "bulletin_raw" / "pages").exists()
