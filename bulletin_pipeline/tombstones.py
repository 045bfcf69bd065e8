"""Deletions as data: the `deleted` table, one tombstone per id the site stopped serving.

A tombstone is written through dlt like the data (same destination, layout and pinned partition
time): `id`, `endpoint`, `dl_inserted_at` (the run's), `last_dl_hash` and `last_modified` of the
newest version the lake held. It belongs to the `bulletin` source, so it lands in the same schema
and its load is the state's newest, as a data load's is.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Iterator, List, Optional

import dlt
import pendulum
import pyarrow as pa

from .envelope import TIMESTAMP
from .extraction import LAST_LOAD_KEY, SOURCE_NAME
from .recovery import pin_partition

DELETED_TABLE = "deleted"
DELETED_SCHEMA = pa.schema(
    [
        pa.field("id", pa.int64(), nullable=False),
        pa.field("endpoint", pa.string(), nullable=False),
        pa.field("dl_inserted_at", TIMESTAMP, nullable=False),
        pa.field("last_dl_hash", pa.string()),
        pa.field("last_modified", pa.string()),
    ]
)


@dataclass(frozen=True)
class Tombstone:
    id: int
    endpoint: str
    last_dl_hash: Optional[str]
    last_modified: Optional[str]


def tombstone_table(tombstones: List[Tombstone], inserted_at: dt.datetime) -> pa.Table:
    return pa.Table.from_pylist(
        [
            {
                "id": t.id,
                "endpoint": t.endpoint,
                "dl_inserted_at": inserted_at,
                "last_dl_hash": t.last_dl_hash,
                "last_modified": t.last_modified,
            }
            for t in tombstones
        ],
        schema=DELETED_SCHEMA,
    )


def tombstone_source(tombstones: List[Tombstone], inserted_at: dt.datetime, partition: pendulum.DateTime) -> Any:
    """A `bulletin` source writing `tombstones` to `deleted` in the partition of `partition`."""
    table = tombstone_table(tombstones, inserted_at)

    @dlt.source(name=SOURCE_NAME, section=SOURCE_NAME, max_table_nesting=0)
    def bulletin() -> Any:
        @dlt.resource(name=DELETED_TABLE, write_disposition="append")
        def deleted() -> Iterator[pa.Table]:
            # the newest load of the lake is this one: the next run's state check expects it
            dlt.current.source_state()[LAST_LOAD_KEY] = dlt.current.load_package_state()["load_id"]
            pin_partition(partition)
            yield table

        return deleted()

    return bulletin()
