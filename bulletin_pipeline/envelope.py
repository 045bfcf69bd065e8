"""A digested page (digest.py) -> arrow tables in the original Parquet contract.

Data rows are `id`, `dl_inserted_at` (one UTC value per run), `payload` (the record's JSON as
served) and `dl_hash` (SHA-256 of the payload); records failing their schema go to `rejected`
with the error, and versions already written (window.py) are skipped.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

import pyarrow as pa
import pyarrow.compute as pc

from .window import WrittenVersions

REJECTED_TABLE = "rejected"
TIMESTAMP = pa.timestamp("us", tz="UTC")
DATA_SCHEMA = pa.schema(
    [
        pa.field("id", pa.int64(), nullable=False),
        pa.field("dl_inserted_at", TIMESTAMP, nullable=False),
        pa.field("payload", pa.string(), nullable=False),
        pa.field("dl_hash", pa.string(), nullable=False),
    ]
)
REJECTED_SCHEMA = pa.schema(
    [
        pa.field("endpoint", pa.string(), nullable=False),
        pa.field("id", pa.int64()),
        pa.field("dl_inserted_at", TIMESTAMP, nullable=False),
        pa.field("error", pa.string(), nullable=False),
        pa.field("payload", pa.string(), nullable=False),
        pa.field("dl_hash", pa.string(), nullable=False),
    ]
)


@dataclass
class EnvelopeStats:
    loaded: int = 0
    rejected: int = 0
    duplicates: int = 0
    rejected_examples: List[str] = field(default_factory=list)


class Envelope:
    """Wraps the pages of one endpoint; holds its dedup ledger and counters."""

    def __init__(self, endpoint: str, inserted_at: dt.datetime, ledger: WrittenVersions) -> None:
        self.endpoint = endpoint
        self.inserted_at = inserted_at
        self.ledger = ledger
        self.stats = EnvelopeStats()

    def wrap(self, page: pa.Table) -> Tuple[Optional[pa.Table], Optional[pa.Table]]:
        """(data table or None, rejected table or None) for one digested page."""
        fresh = page.filter(pa.array(self._not_yet_written(page), pa.bool_()))
        if not fresh.num_rows:
            return None, None
        valid = pc.is_null(fresh.column("error"))
        good, bad = fresh.filter(valid), fresh.filter(pc.invert(valid))
        data = rejected = None
        if good.num_rows:
            self.stats.loaded += good.num_rows
            data = pa.Table.from_arrays(
                [good.column("id"), self._inserted_at(good), good.column("payload"), good.column("dl_hash")],
                schema=DATA_SCHEMA,
            )
        if bad.num_rows:
            self.stats.rejected += bad.num_rows
            examples = self.stats.rejected_examples
            examples.extend(bad.column("error").to_pylist()[: max(0, 3 - len(examples))])
            rejected = pa.Table.from_arrays(
                [
                    pa.repeat(pa.scalar(self.endpoint, pa.string()), bad.num_rows),
                    bad.column("id"),
                    self._inserted_at(bad),
                    bad.column("error"),
                    bad.column("payload"),
                    bad.column("dl_hash"),
                ],
                schema=REJECTED_SCHEMA,
            )
        return data, rejected

    def _not_yet_written(self, page: pa.Table) -> List[bool]:
        keep = []
        versions = page.column("version").to_pylist()
        for record_id, version in zip(page.column("id").to_pylist(), versions, strict=True):
            fresh = record_id is None or self.ledger.admit(record_id, version)
            if not fresh:
                self.stats.duplicates += 1
            keep.append(fresh)
        return keep

    def _inserted_at(self, table: pa.Table) -> pa.Array:
        return pa.repeat(pa.scalar(self.inserted_at, TIMESTAMP), table.num_rows)
