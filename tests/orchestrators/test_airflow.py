"""The Airflow DAGs, loaded through Airflow's DagBag from a dags folder and run with `dag.test()` against the simulator.

Airflow runs in a subprocess with its own AIRFLOW_HOME (a fresh SQLite metadata database), as a deployment would.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import textwrap
from typing import Any, Dict

from tests.conftest import Lake, assert_lake_has
from tests.orchestrators.sites import closed_port_url, site_options

RUNNER = pathlib.Path(__file__).with_name("airflow_run.py")
ROOT = pathlib.Path(__file__).resolve().parents[2]


def run_dag(home: pathlib.Path, dag_file: str, dag_id: str) -> Dict[str, Any]:
    dags = home / "dags"
    dags.mkdir(parents=True, exist_ok=True)
    (dags / "bulletin.py").write_text(textwrap.dedent(dag_file))
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "PYTHONPATH": str(ROOT),
    }
    done = subprocess.run(
        [sys.executable, str(RUNNER), dag_id], env=env, cwd=home, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_sites_dag_maps_one_task_per_site(tmp_path, server, site):
    sites = {
        "catalog": site_options(tmp_path, server.base_url, "catalog"),
        "broken": site_options(tmp_path, closed_port_url(), "broken"),
    }
    outcome = run_dag(
        tmp_path / "airflow",
        f"""
        from bulletin_orchestrators.airflow_dag import bulletin_sites_dag

        bulletin_sites_dag({sites!r})
        """,
        "bulletin_sites",
    )

    assert outcome["dags"] == ["bulletin_sites"]
    assert outcome["state"] == "failed"
    states = {t["rendered"]: t["state"] for t in outcome["tasks"]}
    assert states == {"catalog": "success", "broken": "failed"}
    healthy = Lake(tmp_path / "catalog", server)
    assert_lake_has(healthy, site, "pages")
    assert_lake_has(healthy, site, "media")
    assert not (tmp_path / "broken" / "lake" / "bulletin_raw" / "pages").exists()
