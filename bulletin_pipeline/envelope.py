"""A digested page (digest.py) -> arrow tables in the Parquet contract (`id`, `dl_inserted_at`, `payload`,
`dl_hash`) and `rejected` (with the error); versions already written (window.py) are skipped."""

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
# the original Dagster pipeline's files (polars): no zone on dl_inserted_at, large strings
ORIGINAL_SCHEMA = pa.schema(
    [
        pa.field("id", pa.int64()),
        pa.field("dl_inserted_at", pa.timestamp("us")),
        pa.field("payload", pa.large_string()),
        pa.field("dl_hash", pa.large_string()),
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
        self.inserted_at = pa.scalar(inserted_at, TIMESTAMP)
        self.ledger = ledger
        self.stats = EnvelopeStats()

    def wrap(self, page: pa.Table) -> Tuple[Optional[pa.Table], Optional[pa.Table]]:
        """(data table or None, rejected table or None) for one digested page."""
        versions = zip(page.column("id").to_pylist(), page.column("version").to_pylist(), strict=True)
        fresh = [record_id is None or self.ledger.admit(record_id, version) for record_id, version in versions]
        self.stats.duplicates += fresh.count(False)
        page = page.filter(pa.array(fresh, pa.bool_()))
        valid = pc.is_null(page.column("error"))
        good, bad = page.filter(valid), page.filter(pc.invert(valid))
        self.stats.loaded += good.num_rows
        self.stats.rejected += bad.num_rows
        examples = self.stats.rejected_examples
        examples.extend(bad.column("error").to_pylist()[: max(0, 3 - len(examples))])
        return self._table(good, DATA_SCHEMA), self._table(bad, REJECTED_SCHEMA)

    def _table(self, rows: pa.Table, schema: pa.Schema) -> Optional[pa.Table]:
        """`schema`'s columns from `rows`, the run's timestamp and the endpoint; None for no rows."""
        if not rows.num_rows:
            return None
        stamps = {"dl_inserted_at": self.inserted_at, "endpoint": pa.scalar(self.endpoint, pa.string())}
        columns = [pa.repeat(stamps[name], rows.num_rows) if name in stamps else rows[name] for name in schema.names]
        return pa.Table.from_arrays(columns, schema=schema)
