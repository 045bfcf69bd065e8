"""A page of WordPress records -> arrow tables in the original Parquet contract.

Every data row has exactly `id` (int64), `dl_inserted_at` (UTC timestamp, one value per run),
`payload` (the record's JSON: every field, keys in the server's order, compact UTF-8) and
`dl_hash` (SHA-256 hex of the payload's bytes). A record that fails its collection's schema goes
to the `rejected` table with the error instead; nothing is dropped silently. Versions already
written (the overlap dedup, see window.py) are skipped before anything is serialised.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import orjson
import pyarrow as pa
from pydantic import TypeAdapter, ValidationError

from .schemas import page_validator
from .window import WrittenVersions, version_of

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


def serialize(record: Any) -> bytes:
    """The payload: compact UTF-8 JSON, keys in the order the server sent them."""
    try:
        return orjson.dumps(record)
    except TypeError:
        # orjson refuses integers beyond 64 bits; the standard library writes them exactly, in
        # the same compact shape
        return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


@dataclass
class EnvelopeStats:
    loaded: int = 0
    rejected: int = 0
    duplicates: int = 0
    rejected_examples: List[str] = field(default_factory=list)


class Envelope:
    """Wraps the pages of one endpoint; holds its dedup ledger, schema and counters."""

    def __init__(self, endpoint: str, inserted_at: dt.datetime, ledger: WrittenVersions, incremental: bool) -> None:
        self.endpoint = endpoint
        self.inserted_at = inserted_at
        self.ledger = ledger
        self.validator = page_validator(endpoint, incremental)
        self.stats = EnvelopeStats()

    def wrap(self, records: List[Any]) -> Tuple[Optional[pa.Table], Optional[pa.Table]]:
        """(data table or None, rejected table or None) for one page of records."""
        fresh = [r for r in records if not self._already_written(r)]
        if not fresh:
            return None, None
        errors = validation_errors(self.validator, fresh)
        payloads = [serialize(record) for record in fresh]
        hashes = [hashlib.sha256(payload).hexdigest() for payload in payloads]
        ids = [_int_id(record) for record in fresh]
        good = [i for i in range(len(fresh)) if i not in errors]
        bad = sorted(errors)
        data = rejected = None
        if good:
            self.stats.loaded += len(good)
            data = pa.Table.from_arrays(
                [
                    pa.array([ids[i] for i in good], pa.int64()),
                    pa.repeat(pa.scalar(self.inserted_at, TIMESTAMP), len(good)),
                    _strings([payloads[i] for i in good]),
                    pa.array([hashes[i] for i in good], pa.string()),
                ],
                schema=DATA_SCHEMA,
            )
        if bad:
            self.stats.rejected += len(bad)
            messages = [errors[i] for i in bad]
            self.stats.rejected_examples.extend(messages[: max(0, 3 - len(self.stats.rejected_examples))])
            rejected = pa.Table.from_arrays(
                [
                    pa.repeat(pa.scalar(self.endpoint, pa.string()), len(bad)),
                    pa.array([ids[i] for i in bad], pa.int64()),
                    pa.repeat(pa.scalar(self.inserted_at, TIMESTAMP), len(bad)),
                    pa.array(messages, pa.string()),
                    _strings([payloads[i] for i in bad]),
                    pa.array([hashes[i] for i in bad], pa.string()),
                ],
                schema=REJECTED_SCHEMA,
            )
        return data, rejected

    def _already_written(self, record: Any) -> bool:
        record_id = _int_id(record)
        if record_id is None or self.ledger.admit(record_id, version_of(record)):
            return False
        self.stats.duplicates += 1
        return True


def validation_errors(validator: TypeAdapter[List[Any]], records: List[Any]) -> Dict[int, str]:
    """index -> one-line error, validating the whole page in one pydantic call."""
    try:
        validator.validate_python(records)
        return {}
    except ValidationError as exc:
        errors: Dict[int, List[str]] = {}
        for error in exc.errors(include_url=False, include_input=False):
            loc = error["loc"]
            index = loc[0] if loc and isinstance(loc[0], int) else 0
            where = ".".join(str(part) for part in loc[1:]) or "record"
            errors.setdefault(index, []).append(f"{where}: {error['msg']}")
        return {index: "; ".join(messages) for index, messages in errors.items()}


def _int_id(record: Any) -> Optional[int]:
    value = record.get("id") if isinstance(record, dict) else None
    return value if type(value) is int and -(2**63) <= value < 2**63 else None


def _strings(values: List[bytes]) -> pa.Array:
    """UTF-8 bytes as an arrow string column (the payloads are valid UTF-8 by construction)."""
    return pa.array(values, pa.binary()).cast(pa.string())
