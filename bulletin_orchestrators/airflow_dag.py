"""Airflow: many sites as one mapped task (dynamic task mapping), one task instance per site.

Put a file in your dags folder that builds the DAG:

    from bulletin_orchestrators.airflow_dag import bulletin_sites_dag
    bulletin_sites_dag({"catalog": {"base_url": "https://catalog.example.edu/wp-json/wp/v2/",
                                    "bucket_url": "s3://lake/catalog"}})

Retries are off (the pipeline retries HTTP itself, and a failed run keeps its cursor); one site's
failure never stops another, and the DAG run fails naming it.
"""

from __future__ import annotations

import logging
from typing import Any, Dict, Mapping, Optional

import pendulum
from airflow.sdk import DAG, dag, task

from bulletin_orchestrators.summary import describe
from bulletin_pipeline import resolve_settings, run_pipeline

DAILY = "0 10 * * *"
START = pendulum.datetime(2025, 1, 1, tz="UTC")
log = logging.getLogger(__name__)


def bulletin_sites_dag(
    sites: Mapping[str, Mapping[str, Any]],
    dag_id: str = "bulletin_sites",
    schedule: Optional[str] = DAILY,
    if_changed: bool = True,
) -> DAG:
    """A DAG loading every site (name -> `resolve_settings` keywords), one mapped task instance each."""
    options = {name: {"if_changed": if_changed, **dict(overrides)} for name, overrides in sites.items()}

    @dag(dag_id=dag_id, schedule=schedule, start_date=START, catchup=False, max_active_runs=1, tags=["bulletin"])
    def load_sites() -> None:
        @task(retries=0, map_index_template="{{ task.op_kwargs['name'] }}")
        def load_site(name: str) -> Dict[str, Any]:
            summary = run_pipeline(resolve_settings(**options[name]))
            log.info(describe(name, summary))
            return {
                "site": name,
                "load_id": summary.load_id,
                "loaded": summary.loaded,
                "rejected": summary.rejected,
                "cursors": {e.endpoint: e.cursor_after for e in summary.endpoints},
            }

        load_site.expand(name=list(options))

    return load_sites()
