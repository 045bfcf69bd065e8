"""Run one DAG of a dags folder the way `airflow dags test` does, in a fresh Airflow home; print the outcome as JSON.

python tests/orchestrators/airflow_run.py DAG_ID   (AIRFLOW_HOME and AIRFLOW__CORE__DAGS_FOLDER set)
"""

import json
import sys

from airflow.dag_processing.dagbag import DagBag
from airflow.utils import db


def main(dag_id: str) -> None:
    db.upgradedb()  # what `airflow db migrate` runs: a fresh metadata database
    bag = DagBag()  # the configured dags folder, parsed as the scheduler would
    if bag.import_errors:
        raise SystemExit(f"DAG import errors: {bag.import_errors}")
    run = bag.get_dag(dag_id).test()
    tasks = [
        {"task_id": ti.task_id, "map_index": ti.map_index, "rendered": ti.rendered_map_index, "state": str(ti.state)}
        for ti in run.get_task_instances()
    ]
    print(json.dumps({"dags": sorted(bag.dag_ids), "state": str(run.state), "tasks": tasks}))


if __name__ == "__main__":
    main(sys.argv[1])
