"""Run DAGs of a dags folder the way `airflow dags test` does, in a fresh Airflow home; print the outcome as JSON.

python tests/orchestrators/airflow_run.py DAG_ID[:RUNS] ...   (AIRFLOW_HOME and AIRFLOW__CORE__DAGS_FOLDER set)
"""

import json
import sys
from typing import Any, Dict, List

from airflow.dag_processing.dagbag import DagBag
from airflow.utils import db


def main(targets: List[str]) -> None:
    db.upgradedb()  # what `airflow db migrate` runs: a fresh metadata database
    runs: Dict[str, List[Any]] = {}
    for target in targets:
        dag_id, _, times = target.partition(":")
        for _ in range(int(times or 1)):
            # the dags folder parsed anew for every run, as a worker does for every task
            bag = DagBag()
            if bag.import_errors:
                raise SystemExit(f"DAG import errors: {bag.import_errors}")
            run = bag.get_dag(dag_id).test()
            tasks = [
                {"task_id": ti.task_id, "rendered": ti.rendered_map_index, "state": str(ti.state)}
                for ti in run.get_task_instances()
            ]
            runs.setdefault(dag_id, []).append({"state": str(run.state), "tasks": tasks})
    print(json.dumps({"dags": sorted(bag.dag_ids), "runs": runs}))


if __name__ == "__main__":
    main(sys.argv[1:])
