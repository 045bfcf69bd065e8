"""A page of WordPress records -> one pyarrow table in the original Parquet contract.

Every data row has exactly `id` (int64), `dl_inserted_at` (UTC timestamp, one value per run),
`payload` (the record's JSON) and `dl_hash` (SHA-256 hex of the payload's UTF-8 bytes).
The payload is the record as served, re-serialised with orjson: keys keep the server's order,
floats use the shortest round-trip form and strings are emitted as UTF-8 without escapes, so the
same JSON from the server always gives the same payload and hash. Records that fail validation go
to the `rejected` table with the error instead; nothing is dropped silently.

One arrow table per API page lets dlt take its arrow path (no row-by-row normalisation).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple, Type

import orjson
import pyarrow as pa
from pydantic import ValidationError

from .schemas import WordPressObject, page_validator
from .window import WrittenVersions, version_of

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


def serialize(record: Any) -> bytes:
    try:
        return orjson.dumps(record)
    except TypeError:
        # orjson refuses integers beyond 64 bits; stdlib json writes them exactly, in the same
        # compact UTF-8 shape (and always for that record, so its hash stays stable)
        return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def payload_hash(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


@dataclass
class EnvelopeStats:
    loaded: int = 0
    rejected: int = 0
    duplicates: int = 0
    pages: int = 0
    last_at: Optional[float] = None
    rejected_examples: List[str] = field(default_factory=list)


class Envelope:
    """Wraps the pages of one endpoint; holds that endpoint's dedup ledger and counters."""

    def __init__(
        self,
        endpoint: str,
        model: Type[WordPressObject],
        inserted_at: dt.datetime,
        ledger: WrittenVersions,
    ) -> None:
        self.endpoint = endpoint
        self.validator = page_validator(model)
        self.inserted_at = inserted_at
        self.ledger = ledger
        self.stats = EnvelopeStats()

    def wrap(self, records: List[Any]) -> Tuple[Optional[pa.Table], Optional[pa.Table]]:
        """(data table or None, rejected table or None) for one page of records."""
        fresh: List[Any] = []
        for record in records:
            if isinstance(record, dict) and type(record.get("id")) is int:
                if self.ledger.is_written(record["id"], version_of(record)):
                    self.stats.duplicates += 1
                    continue
            fresh.append(record)
        if not fresh:
            return None, None
        errors = self._errors(fresh)

        ids: List[int] = []
        payloads: List[bytes] = []
        hashes: List[str] = []
        rejected: List[Tuple[Optional[int], str, bytes, str]] = []
        for index, record in enumerate(fresh):
            payload = serialize(record)
            digest = payload_hash(payload)
            record_id = record.get("id") if isinstance(record, dict) else None
            if type(record_id) is not int:
                record_id = None
            if index in errors:
                rejected.append((record_id, errors[index], payload, digest))
            else:
                ids.append(record_id)  # type: ignore[arg-type]
                payloads.append(payload)
                hashes.append(digest)
            if record_id is not None:
                self.ledger.add(record_id, version_of(record))
        self.stats.loaded += len(ids)
        self.stats.rejected += len(rejected)
        for _, error, _, _ in rejected[: max(0, 3 - len(self.stats.rejected_examples))]:
            self.stats.rejected_examples.append(error)
        return self._data_table(ids, payloads, hashes), self._rejected_table(rejected)

    def _errors(self, records: List[Any]) -> Dict[int, str]:
        """index -> one-line error, validating the whole page in one pydantic call."""
        try:
            self.validator.validate_python(records)
            return {}
        except ValidationError as exc:
            errors: Dict[int, List[str]] = {}
            for error in exc.errors(include_url=False, include_input=False):
                loc = error["loc"]
                index = loc[0] if loc and isinstance(loc[0], int) else 0
                where = ".".join(str(part) for part in loc[1:]) or "record"
                errors.setdefault(index, []).append(f"{where}: {error['msg']}")
            return {index: "; ".join(messages) for index, messages in errors.items()}

    def _data_table(self, ids: List[int], payloads: List[bytes], hashes: List[str]) -> Optional[pa.Table]:
        if not ids:
            return None
        count = len(ids)
        return pa.Table.from_arrays(
            [
                pa.array(ids, pa.int64()),
                pa.repeat(pa.scalar(self.inserted_at, pa.timestamp("us", tz="UTC")), count),
                # orjson always writes valid UTF-8: reinterpret the bytes instead of re-validating
                pa.array(payloads, pa.binary()).view(pa.string()),
                pa.array(hashes, pa.string()),
            ],
            schema=DATA_SCHEMA,
        )

    def _rejected_table(self, rows: List[Tuple[Optional[int], str, bytes, str]]) -> Optional[pa.Table]:
        if not rows:
            return None
        count = len(rows)
        return pa.Table.from_arrays(
            [
                pa.array([self.endpoint] * count, pa.string()),
                pa.array([r[0] for r in rows], pa.int64()),
                pa.array([self.inserted_at] * count, pa.timestamp("us", tz="UTC")),
                pa.array([r[1] for r in rows], pa.string()),
                pa.array([r[2] for r in rows], pa.binary()).cast(pa.string()),
                pa.array([r[3] for r in rows], pa.string()),
            ],
            schema=REJECTED_SCHEMA,
        )
