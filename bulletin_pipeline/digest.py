"""One API page (a JSON list of records) -> the columns the lake needs, in one pass.

`digest_page` parses the body, validates every record with its collection's schema, serialises
each record back to its payload (compact UTF-8 JSON, keys in the server's order) and hashes it.
It imports neither dlt nor pyarrow, so it runs cheaply in worker processes (transport.py hands
it each list page as it arrives); `page_table` then makes the page's arrow table, which is what
dlt's rest_api yields for the page: dlt's incremental reads its `modified` column, the
paginator its `id` column, and the envelope writes its payloads and hashes.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import multiprocessing
import signal
from dataclasses import dataclass
from typing import Any, Dict, List, NamedTuple, Optional, Set

import orjson
from pydantic import TypeAdapter, ValidationError

from .schemas import page_validator


class DigestSpec(NamedTuple):
    """Which schema validates a collection's pages."""

    collection: str
    incremental: bool


@dataclass
class PageColumns:
    """A digested page, column by column, in plain Python types (cheap to send between processes)."""

    ids: List[Optional[int]]
    modified: List[Optional[str]]
    modified_gmt: List[Optional[str]]
    payloads: List[bytes]
    hashes: List[str]
    errors: List[Optional[str]]


def digest_page(body: bytes, spec: DigestSpec) -> PageColumns:
    """Parse, validate, serialise and hash one page; ValueError when the body is not a JSON list."""
    records = json.loads(body)  # the standard library keeps integers of any size exact
    if not isinstance(records, list):
        raise ValueError(f"a JSON {type(records).__name__}, not a list")
    errors = validation_errors(page_validator(spec.collection, spec.incremental), records)
    payloads = [serialize(record) for record in records]
    return PageColumns(
        ids=[_int_field(record, "id") for record in records],
        modified=[_str_field(record, "modified") for record in records],
        modified_gmt=[_str_field(record, "modified_gmt") for record in records],
        payloads=payloads,
        hashes=[hashlib.sha256(payload).hexdigest() for payload in payloads],
        errors=[errors.get(index) for index in range(len(records))],
    )


def serialize(record: Any) -> bytes:
    """The payload: compact UTF-8 JSON, keys in the order the server sent them."""
    try:
        return orjson.dumps(record)
    except TypeError:
        # orjson refuses integers beyond 64 bits; the standard library writes them exactly, in
        # the same compact shape
        return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


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


def warm_up(spec: DigestSpec) -> None:
    """Build the collection's validator in this process before its first page arrives."""
    page_validator(spec.collection, spec.incremental)


def start_workers(count: int, specs: Set[DigestSpec]) -> concurrent.futures.ProcessPoolExecutor:
    """`count` worker processes, started now (one warm-up each) with the validators of `specs`.

    They ignore Ctrl-C, which a terminal sends to the whole process group: the calling process
    stops them. SIGINT is blocked while they start, a mask they inherit, so not even their start-up
    can be hit (blocked once the pool exists: starting multiprocessing's resource tracker unblocks it).
    """
    pool = concurrent.futures.ProcessPoolExecutor(
        count,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=signal.signal,
        initargs=(signal.SIGINT, signal.SIG_IGN),
    )
    ordered = sorted(specs)
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        for index in range(max(count, len(ordered))):  # each submit starts a worker until `count`
            pool.submit(warm_up, ordered[index % len(ordered)])
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    return pool


def _int_field(record: Any, name: str) -> Optional[int]:
    value = record.get(name) if isinstance(record, dict) else None
    return value if type(value) is int and -(2**63) <= value < 2**63 else None


def _str_field(record: Any, name: str) -> Optional[str]:
    value = record.get(name) if isinstance(record, dict) else None
    return value if isinstance(value, str) else None


def page_table(columns: PageColumns) -> Any:
    """The page's arrow table: id, modified, modified_gmt, payload, dl_hash, error."""
    import pyarrow as pa  # here, not at the top: worker processes never build tables

    return pa.Table.from_arrays(
        [
            pa.array(columns.ids, pa.int64()),
            pa.array(columns.modified, pa.string()),
            pa.array(columns.modified_gmt, pa.string()),
            pa.array(columns.payloads, pa.binary()).cast(pa.string()),
            pa.array(columns.hashes, pa.string()),
            pa.array(columns.errors, pa.string()),
        ],
        names=["id", "modified", "modified_gmt", "payload", "dl_hash", "error"],
    )
