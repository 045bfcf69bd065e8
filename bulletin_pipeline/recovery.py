"""Crash recovery: what a run killed between or inside dlt's steps left behind, made whole.

A pending package on this runner is finished first (`finish_pending`, its partition pinned at
extract by `pin_partition`); lake files of loads without a `_dlt_loads` entry are removed
(`remove_incomplete_loads`); a kill inside normalize's commit is repaired (`repair_normalize_commit`).
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Set, cast

import dlt
import pendulum
import pyarrow.parquet as pq
from dlt.common.schema.typing import LOADS_TABLE_NAME, PIPELINE_STATE_TABLE_NAME, VERSION_TABLE_NAME
from dlt.common.storages import LoadStorage, NormalizeStorage, NormalizeStorageConfiguration
from dlt.common.storages.exceptions import CurrentLoadPackageStateNotAvailable
from dlt.common.time import ensure_pendulum_datetime

from .envelope import REJECTED_TABLE
from .errors import BulletinError
from .lake import completed_loads, dlt_file_load_id, file_pattern

PARTITION_KEY = "bulletin_partition"


@dataclass
class ResumedLoad:
    """A load an earlier run left pending that this run finished: rows per table."""

    load_ids: List[str]
    records: Dict[str, int] = field(default_factory=dict)

    @property
    def loaded(self) -> int:
        return sum(n for table, n in self.records.items() if table != REJECTED_TABLE)

    def describe(self) -> str:
        counts = ", ".join(f"{n} in {table}" for table, n in sorted(self.records.items())) or "no records"
        return f"finished a load left by an earlier run ({', '.join(self.load_ids)}): {counts}"


def pin_partition(moment: pendulum.DateTime) -> None:
    """Store the run's partition time in the package being extracted (read by `package_partition`)."""
    cast(Dict[str, Any], dlt.current.load_package_state()["state"])[PARTITION_KEY] = moment.isoformat()


def package_partition() -> pendulum.DateTime:
    """The filesystem destination's `current_datetime`: the partition pinned in the package being
    loaded, else the package's creation time, else now; the same paths on every retry."""
    try:
        state = cast(Dict[str, Any], dlt.current.load_package_state()["state"])
    except CurrentLoadPackageStateNotAvailable:
        return pendulum.now("UTC")
    moment = state.get(PARTITION_KEY) or state.get("created_at")
    return ensure_pendulum_datetime(moment, pendulum.UTC) if moment else pendulum.now("UTC")


def finish_pending(pipeline: dlt.Pipeline) -> Optional[ResumedLoad]:
    """Normalize and load what an earlier run left on this runner (None when nothing was left)."""
    repair_normalize_commit(pipeline)
    if not pipeline.has_pending_data:
        return None
    if pipeline.list_extracted_load_packages():
        pipeline.normalize()
    resumed = ResumedLoad(list(pipeline.list_normalized_load_packages()))
    for load_id in resumed.load_ids:
        jobs = pipeline.get_load_package_info(load_id).jobs
        for job in [j for state in ("new_jobs", "started_jobs", "completed_jobs") for j in jobs.get(state, [])]:
            table = job.job_file_info.table_name
            if not table.startswith("_dlt") and job.file_path.endswith(".parquet"):
                resumed.records[table] = resumed.records.get(table, 0) + pq.read_metadata(job.file_path).num_rows
    info = pipeline.load()
    if info is not None:
        info.raise_on_failed_jobs()
    return resumed


def reset_command(pipeline: dlt.Pipeline) -> str:
    """dlt's command that drops the local state and packages and restores the state from the lake
    (dlt's `drop-pending-packages`/`abort-packages` need a whole package to abort)."""
    bucket = shlex.quote(pipeline.destination.config_params.get("bucket_url", ""))  # type: ignore[union-attr]
    return (
        f"DESTINATION__FILESYSTEM__BUCKET_URL={bucket} uv run dlt pipeline "
        f"--pipelines-dir {shlex.quote(pipeline.pipelines_dir)} {pipeline.pipeline_name} sync"
    )


def repair_normalize_commit(pipeline: dlt.Pipeline) -> None:
    """A package both extracted and normalized was killed in normalize's commit: keep the whole
    normalized copy, unless one is still in the load folder's `new` (then no copy is known whole)."""
    doubled = set(pipeline.list_extracted_load_packages()) & set(pipeline.list_normalized_load_packages())
    if not doubled:
        return
    new_folder = os.path.join(pipeline.working_dir, "load", LoadStorage.NEW_PACKAGES_FOLDER)
    unsure = sorted(load_id for load_id in doubled if os.path.exists(os.path.join(new_folder, load_id)))
    if unsure:
        raise BulletinError(
            f"load package {unsure[0]} was cut off while dlt committed it and no copy of it is known to be "
            f"complete; drop it and take the state from the lake with `{reset_command(pipeline)}`, then run again "
            "(its records are read again from the lake's cursor)"
        )
    extracted = NormalizeStorage(
        False, NormalizeStorageConfiguration(normalize_volume_path=os.path.join(pipeline.working_dir, "normalize"))
    ).extracted_packages
    for load_id in sorted(doubled):
        extracted.delete_package(load_id)


def remove_incomplete_loads(pipeline: dlt.Pipeline) -> List[str]:
    """Remove (and return) the lake's files of loads without a `_dlt_loads` entry, except those a
    package pending here keeps; recognised by the layout's `{load_id}`. Only under the lake lock."""
    repair_normalize_commit(pipeline)  # the pending packages are read below
    pending = {load_id: _kept_file_ids(pipeline, load_id) for load_id in pipeline.list_normalized_load_packages()}
    with pipeline.destination_client() as client:
        fs = client.fs_client  # type: ignore[attr-defined]
        dataset = client.dataset_path.rstrip("/")  # type: ignore[attr-defined]
        if not fs.isdir(dataset):
            return []
        completed = completed_loads(fs, dataset)
        data_file = file_pattern(client.config.layout)  # type: ignore[attr-defined]
        doomed: List[str] = []
        for path in fs.find(dataset):
            relative = path[len(dataset) :].lstrip("/") if path.startswith(dataset) else path
            top = relative.split("/", 1)[0]
            if top in (LOADS_TABLE_NAME, VERSION_TABLE_NAME) or "/" not in relative:
                continue
            if top == PIPELINE_STATE_TABLE_NAME:
                load_id, file_id = dlt_file_load_id(path), None
            else:
                match = data_file.fullmatch(relative) if data_file else None
                if match is None:
                    continue
                load_id, file_id = match["load_id"], match.groupdict().get("file_id")
            if load_id in completed or (load_id in pending and (file_id is None or file_id in pending[load_id])):
                continue
            doomed.append(path)
        if doomed:
            fs.rm(doomed)
        return doomed


def completed_source_loads(pipeline: dlt.Pipeline, schema: str) -> Set[str]:
    """Ids of the loads of `schema` the lake holds as complete (dlt's `_dlt_loads` entries)."""
    with pipeline.destination_client() as client:
        return completed_loads(client.fs_client, client.dataset_path.rstrip("/"), schema)  # type: ignore[attr-defined]


def _kept_file_ids(pipeline: dlt.Pipeline, load_id: str) -> Set[str]:
    """File ids whose lake files the next load of a pending package relies on or rewrites itself."""
    jobs = pipeline.get_load_package_info(load_id).jobs
    return {j.job_file_info.file_id for state in ("completed_jobs", "started_jobs") for j in jobs.get(state, [])}
