"""Airflow: the daily DAG through dlt's Airflow helper, and many sites by dynamic task mapping.

Put a file in your dags folder that builds the DAG(s), with the settings in `.dlt/config.toml` and
`.dlt/secrets.toml` beside it (dlt's helper points dlt at the dags folder):

    from bulletin_orchestrators.airflow_dag import bulletin_dag, bulletin_sites_dag
    bulletin_dag()
    bulletin_sites_dag({"catalog": {"base_url": "https://catalog.example.edu/wp-json/wp/v2/",
                                    "bucket_url": "s3://lake/catalog"}})

Retries are off (the pipeline retries HTTP itself, and a failed run keeps its cursor).
"""

from __future__ import annotations

import logging
from typing import Any, Dict, Mapping, Optional

import dlt
import pendulum
from airflow.sdk import DAG, dag, task
from dlt.helpers.airflow_helper import PipelineTasksGroup

from bulletin_orchestrators.summary import describe
from bulletin_pipeline import (
    DATASET_NAME,
    PIPELINE_NAME,
    bulletin_destination,
    bulletin_source,
    resolve_settings,
    run_pipeline,
)

DAILY = "0 10 * * *"
START = pendulum.datetime(2025, 1, 1, tz="UTC")
log = logging.getLogger(__name__)


def bulletin_dag(
    dag_id: str = "bulletin",
    schedule: Optional[str] = DAILY,
    bucket_url: Optional[str] = None,
    **source_options: Any,
) -> DAG:
    """One site, one task: `pipeline.run(bulletin_source(**source_options))` through dlt's helper.

    The helper gives the task a fresh dlt folder each time, so dlt restores the state from the lake.
    Not decomposed: the source is one load (one partition time, one lock, one state commit); split
    into parts (`decompose="serialize"`), each endpoint would be a load with a partition of its own.
    """

    @dag(dag_id=dag_id, schedule=schedule, start_date=START, catchup=False, max_active_runs=1, tags=["bulletin"])
    def load() -> None:
        group = PipelineTasksGroup(PIPELINE_NAME, use_data_folder=False, wipe_local_data=True)
        # created after the group: the helper has pointed dlt at a fresh working folder
        pipeline = dlt.pipeline(PIPELINE_NAME, destination=bulletin_destination(bucket_url), dataset_name=DATASET_NAME)
        group.add_run(pipeline, bulletin_source(**source_options), decompose="none", retries=0)

    return load()


def bulletin_sites_dag(
    sites: Mapping[str, Mapping[str, Any]],
    dag_id: str = "bulletin_sites",
    schedule: Optional[str] = DAILY,
    if_changed: bool = True,
) -> DAG:
    """Every site (name -> `resolve_settings` keywords) as one mapped task instance, named after it:
    one site's failure never stops another, and fails the DAG run."""
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
