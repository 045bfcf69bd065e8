"""Continuing a lake this pipeline holds no cursor for: the original's, or ours with the state lost.

Started from `default_baseline_datetime`, such a first run would write every version the lake
already holds again. `lake_continuation` reads the collection's newest partitions instead and
returns the newest trusted `modified` found in their payloads as the cursor, with the versions
(`digest.version_of`) within `horizon_seconds` of it: the run re-reads its overlap behind that
cursor and drops what is already written, so the lake goes on with no gap and no double load.
Every `*.parquet` in `{table}/load_date=.../load_time=.../` is read (the original's
`de_bulletin_data.parquet` as well as dlt's `{load_id}.{file_id}.parquet`), `id` and `payload`
only, a row group at a time (lake.py).
"""

from __future__ import annotations

import datetime as dt
import json
import posixpath
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Optional, Tuple

import dlt
import orjson
import pyarrow as pa

from .digest import WP_DATETIME, trusted_cursor, version_of
from .errors import DestinationError, first_line
from .lake import batches, open_parquet
from .settings import WP_DATETIME_FORMAT
from .tables import table_name

DATE_PREFIX = "load_date="
TIME_PREFIX = "load_time="


@dataclass(frozen=True)
class Continuation:
    """Where a collection's first run continues the lake: the cursor and what is already written."""

    cursor: str  # the newest trusted `modified` in the lake (site-local, WordPress's format)
    versions: Dict[str, str]  # str(id) -> version within the horizon: the ledger's form (window.py)
    partitions: List[str] = field(default_factory=list)  # the partition folders read, newest first


def lake_continuation(
    fs: Any, dataset_path: str, endpoint: str, horizon_seconds: int, now: Optional[dt.datetime] = None
) -> Optional[Continuation]:
    """The continuation of `endpoint`'s table in the lake at `dataset_path` (fsspec `fs`), None when
    it holds no trusted `modified`. Partitions are read newest first (by their folder names) until
    one's newest `modified` is older than cursor - `horizon_seconds`; a `modified` after `now` (our
    clock, UTC) or not in WordPress's format never becomes the cursor."""
    site_now = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    cursor: Optional[str] = None
    kept: Dict[str, Tuple[str, str]] = {}  # id -> (modified, version), the newest version per id
    read: List[str] = []
    for partition in partitions_newest_first(fs, posixpath.join(dataset_path, table_name(endpoint))):
        read.append(partition)
        newest: Optional[str] = None
        for record_id, modified, gmt, version in partition_records(fs, partition):
            if trusted_cursor(modified, gmt, site_now):
                newest = max(newest or modified, modified)
            if version is not None and modified >= (_floor(cursor, horizon_seconds) if cursor else ""):
                if record_id not in kept or kept[record_id][1] < version:
                    kept[record_id] = (modified, version)
        if newest is None:
            continue
        cursor = max(cursor or newest, newest)
        if newest < _floor(cursor, horizon_seconds):
            break
    if cursor is None:
        return None
    floor = _floor(cursor, horizon_seconds)
    versions = {record_id: version for record_id, (modified, version) in kept.items() if modified >= floor}
    return Continuation(cursor, versions, read)


def lake_continuations(
    pipeline: dlt.Pipeline, endpoints: List[str], horizon_seconds: int
) -> Dict[str, Optional[Continuation]]:
    """`lake_continuation` of each of `endpoints` in the lake of `pipeline`'s filesystem destination."""
    if not endpoints:
        return {}
    with pipeline.destination_client() as client:
        fs, dataset_path = client.fs_client, client.dataset_path  # type: ignore[attr-defined]
        return {endpoint: lake_continuation(fs, dataset_path, endpoint, horizon_seconds) for endpoint in endpoints}


def partitions_newest_first(fs: Any, table_path: str) -> Iterator[str]:
    """`load_date=.../load_time=...` folders of a table, newest first, listing a day only when reached."""
    if not fs.isdir(table_path):
        return
    for day in sorted(_children(fs, table_path, DATE_PREFIX), reverse=True):
        yield from sorted(_children(fs, day, TIME_PREFIX), reverse=True)


def partition_records(fs: Any, partition: str) -> Iterator[Tuple[str, str, Optional[str], Optional[str]]]:
    """(str(id), modified, modified_gmt, version) of each record in a partition whose payload has a
    `modified` in WordPress's format, streamed a batch at a time."""
    for path in sorted(p for p in fs.ls(partition, detail=False) if p.endswith(".parquet")):
        try:
            with open_parquet(fs, path) as parquet:
                missing = {"id", "payload"} - set(parquet.schema_arrow.names)
                if missing:
                    raise ValueError(f"it has no {' and no '.join(sorted(missing))} column")
                for batch in batches(parquet, ["id", "payload"]):
                    ids, payloads = batch.column(0).to_pylist(), batch.column(1).to_pylist()
                    for record_id, payload in zip(ids, payloads, strict=True):
                        record = _parse(payload)
                        modified = record.get("modified") if isinstance(record, dict) else None
                        if record_id is None or not isinstance(modified, str) or not WP_DATETIME.fullmatch(modified):
                            continue
                        gmt = record.get("modified_gmt")
                        yield str(record_id), modified, gmt if isinstance(gmt, str) else None, version_of(record)
        except (OSError, ValueError, pa.ArrowException) as exc:  # ArrowInvalid is a ValueError
            raise DestinationError(
                f"cannot read {path} to continue the lake from it: {first_line(exc)}; "
                "move the file out of the lake, or start the collection with --full-refresh"
            ) from exc


def _children(fs: Any, folder: str, prefix: str) -> List[str]:
    return [p for p in fs.ls(folder, detail=False) if posixpath.basename(p.rstrip("/")).startswith(prefix)]


def _parse(payload: Optional[str]) -> Any:
    if payload is None:
        return None
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError:
        try:  # orjson refuses integers beyond 64 bits; the standard library reads them
            return json.loads(payload)
        except ValueError:
            return None


def _floor(cursor: str, horizon_seconds: int) -> str:
    moment = dt.datetime.strptime(cursor, WP_DATETIME_FORMAT) - dt.timedelta(seconds=horizon_seconds)
    return moment.strftime(WP_DATETIME_FORMAT)
