"""Digested pages -> arrow tables in the original Parquet contract, for dlt's arrow path.

Every data row has exactly `id` (int64), `dl_inserted_at` (UTC timestamp, one value per run),
`payload` (the record's JSON) and `dl_hash` (SHA-256 hex of the payload's UTF-8 bytes); see
`digest.py` for how payload and hash are made. Records that fail validation go to the `rejected`
table with the error instead; nothing is dropped silently.

The envelope receives the light rows that came through dlt's incremental (which may have dropped
some), drops versions already written (the overlap dedup), and takes the surviving records from
their pages' tables in bulk. Data tables are handed to dlt in batches of several pages: dlt
recomputes a table's schema and contracts for every arrow item it extracts (~5 ms each), which
per 100-record page cost more than writing the Parquet. The last batch leaves when the paginator's
end-of-listing row arrives, which dlt's incremental always lets through (it has no cursor).
"""

from __future__ import annotations

import datetime as dt
import itertools
import threading
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import pyarrow as pa
import pyarrow.compute as pc

from .digest import PAGE_TOKEN, ROW_INDEX, DigestedPage
from .window import WrittenVersions, version_of

END_OF_LISTING = "_end_of_listing"
BATCH_ROWS = 1000

DATA_SCHEMA = pa.schema(
    [
        pa.field("id", pa.int64(), nullable=False),
        pa.field("dl_inserted_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("payload", pa.string(), nullable=False),
        pa.field("dl_hash", pa.string(), nullable=False),
    ]
)
REJECTED_SCHEMA = pa.schema(
    [
        pa.field("endpoint", pa.string(), nullable=False),
        pa.field("id", pa.int64()),
        pa.field("dl_inserted_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("error", pa.string(), nullable=False),
        pa.field("payload", pa.string(), nullable=False),
        pa.field("dl_hash", pa.string(), nullable=False),
    ]
)


class DigestedPages:
    """Digested pages waiting for their envelope, by token.

    Light rows carry their page's token, not the page: dlt's incremental keeps the rows at the
    highest cursor value for the whole run (its boundary dedup), and a row holding its page would
    keep every such page's table alive. Pages of one endpoint reach the envelope in the order
    they were handed to dlt, so taking a page also forgets older ones whose rows dlt dropped.
    """

    def __init__(self) -> None:
        self._tokens = itertools.count(1)
        self._pages: Dict[str, Dict[int, DigestedPage]] = {}
        self._lock = threading.Lock()

    def tag(self, endpoint: str, page: DigestedPage) -> List[Dict[str, Any]]:
        """The page's light rows, each tagged with the page's token."""
        with self._lock:
            token = next(self._tokens)
            self._pages.setdefault(endpoint, {})[token] = page
        rows, page.rows = page.rows, []
        for row in rows:
            row[PAGE_TOKEN] = token
        return rows

    def take(self, endpoint: str, token: int) -> DigestedPage:
        with self._lock:
            pages = self._pages.get(endpoint, {})
            for older in [t for t in pages if t < token]:
                del pages[older]
            return pages.pop(token)


@dataclass
class EnvelopeStats:
    loaded: int = 0
    rejected: int = 0
    duplicates: int = 0
    last_at: Optional[float] = None
    rejected_examples: List[str] = field(default_factory=list)


class Envelope:
    """Wraps the pages of one endpoint; holds that endpoint's dedup ledger, batch and counters."""

    def __init__(
        self,
        endpoint: str,
        inserted_at: dt.datetime,
        ledger: WrittenVersions,
        pages: DigestedPages,
        batch_rows: int = BATCH_ROWS,
    ) -> None:
        self.endpoint = endpoint
        self.pages = pages
        self.inserted_at = inserted_at
        self.ledger = ledger
        self.batch_rows = batch_rows
        self.stats = EnvelopeStats()
        self._batch: List[pa.Table] = []
        self._batch_len = 0

    @property
    def pending(self) -> int:
        """Records taken but not yet handed to dlt (must be 0 once the listing ended)."""
        return self._batch_len

    def wrap(self, rows: List[Any]) -> Tuple[Optional[pa.Table], Optional[pa.Table]]:
        """(data batch or None, rejected table or None) after one page's light rows."""
        picked: Dict[int, List[int]] = {}
        end = False
        admit = self.ledger.admit
        for row in rows:
            token = row.get(PAGE_TOKEN)
            if token is None:
                if not row.get(END_OF_LISTING):
                    # a record that skipped digest_page: writing nothing for it would lose it
                    raise RuntimeError(f"{self.endpoint}: a page reached the envelope without its digest")
                end = True
                continue
            record_id = row["id"]
            if type(record_id) is int and not admit(record_id, version_of(row)):
                self.stats.duplicates += 1
                continue
            indices = picked.get(token)
            if indices is None:
                indices = picked[token] = []
            indices.append(row[ROW_INDEX])

        rejected: List[pa.Table] = []
        for token, indices in picked.items():
            table = self.pages.take(self.endpoint, token).table
            assert table is not None and indices
            # usually the records that survive are one run of the page (all but the first ones,
            # which the previous window already wrote - windows overlap): a zero-copy slice then
            first, count = indices[0], len(indices)
            if indices[-1] - first == count - 1:
                taken = table.slice(first, count)
            else:
                taken = table.take(pa.array(indices, pa.int64()))
            errors = taken.column("error")
            if errors.null_count < len(taken):
                valid = pc.is_null(errors)
                rejected.append(taken.filter(pc.invert(valid)))
                taken = taken.filter(valid)
            if len(taken):
                self._batch.append(taken)
                self._batch_len += len(taken)
        rejected_table = self._rejected_table(rejected)
        data = self.flush() if end or self._batch_len >= self.batch_rows else None
        return data, rejected_table

    def flush(self) -> Optional[pa.Table]:
        if not self._batch:
            return None
        batch = pa.concat_tables(self._batch)
        self._batch, self._batch_len = [], 0
        self.stats.loaded += len(batch)
        return pa.Table.from_arrays(
            [
                batch.column("id"),
                pa.repeat(pa.scalar(self.inserted_at, pa.timestamp("us", tz="UTC")), len(batch)),
                batch.column("payload"),
                batch.column("dl_hash"),
            ],
            schema=DATA_SCHEMA,
        )

    def _rejected_table(self, parts: List[pa.Table]) -> Optional[pa.Table]:
        if not parts:
            return None
        rows = pa.concat_tables(parts)
        count = len(rows)
        self.stats.rejected += count
        errors = rows.column("error").to_pylist()
        self.stats.rejected_examples.extend(errors[: max(0, 3 - len(self.stats.rejected_examples))])
        return pa.Table.from_arrays(
            [
                pa.repeat(pa.scalar(self.endpoint, pa.string()), count),
                rows.column("id"),
                pa.repeat(pa.scalar(self.inserted_at, pa.timestamp("us", tz="UTC")), count),
                rows.column("error"),
                rows.column("payload"),
                rows.column("dl_hash"),
            ],
            schema=REJECTED_SCHEMA,
        )
