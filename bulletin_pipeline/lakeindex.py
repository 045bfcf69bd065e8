"""The lake side of `reconcile`: the newest version of every id, and the tombstones after it.

Streams an endpoint's Parquet files (id, dl_inserted_at, payload, dl_hash) and keeps, per id, the
row loaded last (ties: the later `modified_gmt`), then the `deleted` rows of that endpoint. An id
is live when no tombstone is at or after its newest version: a record deleted and later served
again is loaded again by a newer run, and that newer row makes it live.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Set

import orjson
import pyarrow as pa

from .digest import version_of
from .lake import LakeFile, LakeRoot, completed_loads, lake_files, read_batches
from .tables import table_name
from .tombstones import DELETED_TABLE

INDEX_COLUMNS = ["id", "dl_inserted_at", "payload", "dl_hash"]
TOMBSTONE_COLUMNS = ["id", "endpoint", "dl_inserted_at"]


@dataclass(frozen=True)
class Held:
    """The newest row of one id in the lake."""

    inserted_at: dt.datetime
    version: Optional[str]
    modified: Optional[str]
    dl_hash: str


@dataclass
class LakeIndex:
    endpoint: str
    newest: Dict[int, Held] = field(default_factory=dict)
    tombstoned: Dict[int, dt.datetime] = field(default_factory=dict)  # id -> its newest tombstone

    def live(self) -> Dict[int, Held]:
        """Ids whose newest version is after their newest tombstone (or that have none)."""
        return {
            record_id: held
            for record_id, held in self.newest.items()
            if record_id not in self.tombstoned or held.inserted_at > self.tombstoned[record_id]
        }

    def add(self, record_id: int, inserted_at: dt.datetime, payload: str, dl_hash: str) -> None:
        held = self.newest.get(record_id)
        if held is not None and inserted_at < held.inserted_at:
            return  # an older load: no need to read its payload
        record = _parse(payload)
        version = version_of(record)
        if held is not None and inserted_at == held.inserted_at and (version or "") <= (held.version or ""):
            return
        modified = record.get("modified") if isinstance(record, dict) else None
        self.newest[record_id] = Held(inserted_at, version, modified if isinstance(modified, str) else None, dl_hash)

    def add_tombstone(self, record_id: int, inserted_at: dt.datetime) -> None:
        if inserted_at > self.tombstoned.get(record_id, inserted_at - dt.timedelta(microseconds=1)):
            self.tombstoned[record_id] = inserted_at


def build_index(lake: LakeRoot, endpoint: str) -> LakeIndex:
    """The index of `endpoint`, file by file, from the files of completed loads only (a crashed
    run's files are removed by the next run, and never taken as held)."""
    index = LakeIndex(endpoint)
    completed = completed_loads(lake.fs, lake.dataset_path)
    for file in _completed(lake, table_name(endpoint), completed):
        for batch in read_batches(lake.fs, file.path, INDEX_COLUMNS):
            for record_id, inserted_at, payload, dl_hash in zip(*_columns(batch, INDEX_COLUMNS), strict=True):
                if record_id is not None and inserted_at is not None and payload is not None:
                    index.add(record_id, inserted_at, payload, dl_hash)
    for file in _completed(lake, DELETED_TABLE, completed):
        for batch in read_batches(lake.fs, file.path, TOMBSTONE_COLUMNS):
            for record_id, table, inserted_at in zip(*_columns(batch, TOMBSTONE_COLUMNS), strict=True):
                if table == endpoint and record_id is not None and inserted_at is not None:
                    index.add_tombstone(record_id, inserted_at)
    return index


def _completed(lake: LakeRoot, table: str, completed: Set[str]) -> List[LakeFile]:
    files = lake_files(lake.fs, lake.dataset_path, table, lake.layout)
    return [f for f in files if f.load_id is None or f.load_id in completed]


def _columns(batch: pa.RecordBatch, names: List[str]) -> List[List[Any]]:
    return [batch.column(name).to_pylist() for name in names]


def _parse(payload: str) -> Any:
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError:
        try:
            return json.loads(payload)  # integers beyond 64 bits
        except ValueError:
            return None
