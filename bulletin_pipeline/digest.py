"""One API page -> the columns the lake needs, in one pass, without dlt or pyarrow (cheap in worker
processes); `modified`, the cursor dlt may move to, holds only WordPress-format values not after the site's now."""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import hashlib
import json
import multiprocessing
import os
import re
import signal
import threading
import time
from dataclasses import dataclass
from typing import Any, Dict, List, NamedTuple, Optional, Set

import orjson
from pydantic import TypeAdapter, ValidationError

from .schemas import page_validator

WP_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}")
# site-local times run at most this far ahead of UTC (UTC+14)
MAX_UTC_OFFSET = dt.timedelta(hours=14)


class DigestSpec(NamedTuple):
    """Which schema validates a collection's pages."""

    collection: str
    incremental: bool


@dataclass
class PageColumns:
    """A digested page, column by column, in plain Python types (cheap to send between processes)."""

    ids: List[Optional[int]]
    modified: List[Optional[str]]  # the cursor dlt may move to; None where it cannot be trusted
    versions: List[Optional[str]]  # what tells one version of a record from another (window.py)
    payloads: List[bytes]
    hashes: List[str]
    errors: List[Optional[str]]


def digest_page(body: bytes, spec: DigestSpec, site_now: dt.datetime) -> PageColumns:
    """Parse, validate, serialise and hash one page; ValueError when the body is not a JSON list.
    `site_now` (UTC) is the latest `modified_gmt` the cursor may reach."""
    records = json.loads(body)  # the standard library keeps integers of any size exact
    if not isinstance(records, list):
        raise ValueError(f"a JSON {type(records).__name__}, not a list")
    errors = validation_errors(page_validator(spec.collection, spec.incremental), records)
    ids = [_int_field(record, "id") for record in records]
    for index in range(len(records)):
        if ids[index] is None and index not in errors:  # pydantic takes True and ints past 64 bits
            errors[index] = ["id: not an integer of 64 bits"]
    trusted: List[Optional[str]] = [None] * len(records)
    for index, record in enumerate(records if spec.incremental else []):
        modified = _str_field(record, "modified")
        if _wp_datetime(modified) is None:
            served = record.get("modified") if isinstance(record, dict) else None
            problem = f"modified: {served!r} is not a WordPress datetime (YYYY-MM-DDTHH:MM:SS)"
            errors.setdefault(index, []).append(problem)
        elif index not in errors and _not_future(modified, _str_field(record, "modified_gmt"), site_now):
            trusted[index] = modified
    payloads = [serialize(record) for record in records]
    return PageColumns(
        ids=ids,
        modified=trusted,
        versions=[version_of(record) for record in records],
        payloads=payloads,
        hashes=[hashlib.sha256(payload).hexdigest() for payload in payloads],
        errors=["; ".join(errors[index]) if index in errors else None for index in range(len(records))],
    )


def version_of(record: Any) -> Optional[str]:
    """What tells one version of a record from another: `modified_gmt` (local `modified` repeats
    in the DST hour), else `modified`; the ledger (window.py) and the probe compare these."""
    version = (record.get("modified_gmt") or record.get("modified")) if isinstance(record, dict) else None
    return version if isinstance(version, str) else None


def serialize(record: Any) -> bytes:
    """The payload: compact UTF-8 JSON, keys in the order the server sent them."""
    try:
        return orjson.dumps(record)
    except TypeError:
        # orjson refuses integers beyond 64 bits and lone surrogates; the standard library writes
        # both exactly, a lone surrogate as its JSON escape (it has no UTF-8)
        text = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
        try:
            return text.encode("utf-8")
        except UnicodeEncodeError:
            return json.dumps(record, separators=(",", ":")).encode("utf-8")


def validation_errors(validator: TypeAdapter[List[Any]], records: List[Any]) -> Dict[int, List[str]]:
    """index -> the record's errors, validating the whole page in one pydantic call."""
    errors: Dict[int, List[str]] = {}
    try:
        validator.validate_python(records)
    except ValidationError as exc:
        for error in exc.errors(include_url=False, include_input=False):
            loc = error["loc"]
            index = loc[0] if loc and isinstance(loc[0], int) else 0
            where = ".".join(str(part) for part in loc[1:]) or "record"
            errors.setdefault(index, []).append(f"{where}: {error['msg']}")
    return errors


def warm_up(spec: DigestSpec) -> None:
    """Build the collection's validator in this process before its first page arrives."""
    page_validator(spec.collection, spec.incremental)


def trusted_cursor(modified: Optional[str], modified_gmt: Optional[str], site_now: dt.datetime) -> bool:
    """Whether `modified` may become the cursor: WordPress's format, saved no later than `site_now`."""
    return _wp_datetime(modified) is not None and _not_future(modified, modified_gmt, site_now)


def _wp_datetime(value: Optional[str]) -> Optional[dt.datetime]:
    """`value` as a naive datetime when it is in WordPress's format (a real date), else None."""
    try:
        return dt.datetime.strptime(value, "%Y-%m-%dT%H:%M:%S") if value and WP_DATETIME.fullmatch(value) else None
    except ValueError:
        return None


def _not_future(modified: Optional[str], modified_gmt: Optional[str], site_now: dt.datetime) -> bool:
    """Whether the record was saved no later than the site's now (by `modified_gmt` when valid)."""
    now = site_now.replace(tzinfo=None)
    saved_gmt = _wp_datetime(modified_gmt)
    if saved_gmt is not None:
        return saved_gmt <= now
    saved_local = _wp_datetime(modified)
    return saved_local is not None and saved_local <= now + MAX_UTC_OFFSET


def start_workers(count: int, specs: Set[DigestSpec]) -> concurrent.futures.ProcessPoolExecutor:
    """`count` worker processes, started now with the validators of `specs`, deaf to Ctrl-C (the
    caller stops them); SIGINT stays blocked while they start, a mask they inherit."""
    pool = concurrent.futures.ProcessPoolExecutor(
        count, mp_context=multiprocessing.get_context("spawn"), initializer=_start_worker, initargs=(os.getpid(),)
    )
    ordered = sorted(specs)
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        for index in range(max(count, len(ordered))):  # each submit starts a worker until `count`
            pool.submit(warm_up, ordered[index % len(ordered)])
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    return pool


def _start_worker(parent: int) -> None:
    """Ignore Ctrl-C (the caller stops the pool) and exit once the parent is gone (killed with SIGKILL)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_without, args=(parent,), name="parent-watch", daemon=True).start()


def _exit_without(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(1)
    os._exit(0)


def _int_field(record: Any, name: str) -> Optional[int]:
    value = record.get(name) if isinstance(record, dict) else None
    return value if type(value) is int and -(2**63) <= value < 2**63 else None


def _str_field(record: Any, name: str) -> Optional[str]:
    value = record.get(name) if isinstance(record, dict) else None
    return value if isinstance(value, str) else None


def page_table(columns: PageColumns) -> Any:
    """The page's arrow table, what rest_api yields for it."""
    import pyarrow as pa  # here, not at the top: worker processes never build tables

    return pa.table(
        {
            "id": pa.array(columns.ids, pa.int64()),
            "modified": pa.array(columns.modified, pa.string()),
            "version": pa.array(columns.versions, pa.string()),
            "payload": pa.array(columns.payloads, pa.binary()).cast(pa.string()),
            "dl_hash": pa.array(columns.hashes, pa.string()),
            "error": pa.array(columns.errors, pa.string()),
        }
    )
