"""One API page (the response body) -> what the rest of the pipeline needs of it, in one pass.

`digest_parts` is the CPU-heavy half of a load: parse (msgspec), validate (pydantic, the whole
page in one call), serialise every record back to its payload and hash it. It imports neither
dlt nor pyarrow, so digest workers (`worker.py`) run it cheaply; `assemble` then builds the page's
arrow table in bulk wherever pyarrow is loaded. What travels on through dlt's rest_api (its
paginator, its incremental, our envelope transformer) is only a light row per record - `id`,
`modified`, `modified_gmt`, its page's token and its index in that page's table - so dlt's per-row
work never touches 5 KB records.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import os
import sys
from array import array
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Union

import msgspec
import orjson
from pydantic import TypeAdapter, ValidationError

from .schemas import MODELS, model_for, page_validator

# what the light rows carry of each record: the cursor (dlt's incremental), the version (our
# overlap dedup), the id (paginator contiguity, ledger) - and where the record sits: its page's
# token (see envelope.DigestedPages) and its index in that page's table
LIGHT_FIELDS = ("modified", "modified_gmt")
ROW_INDEX = "_row"
PAGE_TOKEN = "_page"

# msgspec parses integers of any size exactly (orjson turns those beyond 64 bits into floats, and
# spotting them first cost ~0.6 ms a page, a third of the parse); orjson writes the payloads.
Buffer = Union[bytes, bytearray, memoryview]  # what arrives from a pipe (frames.py) is a memoryview
_decode = msgspec.json.Decoder().decode
_dumps = orjson.dumps
_sha256 = hashlib.sha256


def loads(body: Buffer) -> Any:
    """Parse a JSON body exactly (integers of any size) and fast; ValueError when it is not JSON."""
    try:
        return _decode(body)
    except RecursionError as exc:  # msgspec has no depth limit of its own; orjson stops at 1024
        raise ValueError("nested too deeply") from exc


def serialize(record: Any) -> bytes:
    try:
        return orjson.dumps(record)
    except TypeError:
        # orjson refuses integers beyond 64 bits; stdlib json writes them exactly, in the same
        # compact UTF-8 shape (and always for that record, so its hash stays stable)
        return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


@dataclass
class PageParts:
    """What a worker sends back, no arrow (workers do not import it): the light rows, and the
    payloads and hashes already laid out as arrow string columns are (one buffer of UTF-8 bytes
    plus int32 offsets), so the parent wraps them without a copy or a Python object per record."""

    rows: List[Dict[str, Any]]
    payload_data: Buffer
    payload_offsets: Buffer
    hashes: Buffer  # 64 hex characters per record, back to back
    errors: Dict[int, str]
    parse_error: Optional[str] = None


@dataclass
class DigestedPage:
    """A page after digesting: light `rows` and `table` (id, payload, dl_hash, error) align."""

    rows: List[Dict[str, Any]]
    table: Any  # pyarrow.Table; None when the body could not be parsed
    parse_error: Optional[str] = None


def digest_parts(body: Buffer, collection: str, incremental: bool = True) -> PageParts:
    """Parse, validate, serialise and hash one page of records (any process)."""
    try:
        records = loads(body)
    except ValueError as exc:
        return PageParts([], b"", b"", b"", {}, parse_error=f"invalid JSON ({exc})")
    if not isinstance(records, list):
        return PageParts([], b"", b"", b"", {}, parse_error=f"a JSON {type(records).__name__}, not a list")
    errors = validation_errors(_validator(collection, incremental), records)
    try:
        payloads = [_dumps(record) for record in records]
    except TypeError:
        payloads = [serialize(record) for record in records]
    hashes = "".join([_sha256(payload).hexdigest() for payload in payloads]).encode("ascii")
    offsets = array("i", itertools.accumulate(map(len, payloads), initial=0))
    if sys.byteorder != "little":  # pragma: no cover - arrow buffers are little-endian
        offsets.byteswap()
    rows = [_light_row(index, record) for index, record in enumerate(records)]
    return PageParts(rows, b"".join(payloads), offsets.tobytes(), hashes, errors)


def assemble(parts: PageParts) -> DigestedPage:
    """The page's arrow table, built in bulk from a worker's (or our own) lists."""
    if parts.parse_error:
        return DigestedPage([], None, parts.parse_error)
    import pyarrow as pa

    count = len(parts.rows)
    errors = parts.errors
    hash_offsets = array("i", range(0, 64 * count + 1, 64))
    if sys.byteorder != "little":  # pragma: no cover
        hash_offsets.byteswap()
    table = pa.Table.from_arrays(
        [
            pa.array([row["id"] if type(row["id"]) is int else None for row in parts.rows], pa.int64()),
            # orjson (and json with ensure_ascii=False) writes valid UTF-8: wrap the bytes as they are
            pa.Array.from_buffers(
                pa.string(), count, [None, pa.py_buffer(parts.payload_offsets), pa.py_buffer(parts.payload_data)]
            ),
            pa.Array.from_buffers(pa.string(), count, [None, pa.py_buffer(hash_offsets), pa.py_buffer(parts.hashes)]),
            pa.array([errors.get(i) for i in range(count)], pa.string()) if errors else pa.nulls(count, pa.string()),
        ],
        names=["id", "payload", "dl_hash", "error"],
    )
    return DigestedPage(parts.rows, table)


def digest_page(body: bytes, collection: str, incremental: bool = True) -> DigestedPage:
    """`digest_parts` + `assemble`, in this process."""
    return assemble(digest_parts(body, collection, incremental))


def _light_row(index: int, record: Any) -> Dict[str, Any]:
    if not isinstance(record, dict):
        return {"id": None, ROW_INDEX: index}
    row = {"id": record.get("id"), ROW_INDEX: index}
    for name in LIGHT_FIELDS:
        if name in record:
            row[name] = record[name]
    return row


def warm_up(page_waiting: Callable[[], bool] = lambda: False) -> None:
    """Build the schemas' validators now: the first one costs ~0.1 s (pydantic's first use), each
    further one ~20 ms, which a worker pays while it waits for its first page instead of on that
    page. The likeliest come first (the default collections, incremental); once a page is
    waiting, the rest are built when a page needs them."""
    for incremental in (True, False):
        for collection in (*MODELS, "_generic"):
            if page_waiting():
                return
            _validator(collection, incremental)


@functools.cache
def _validator(collection: str, incremental: bool) -> TypeAdapter[List[Any]]:
    return page_validator(model_for(collection, incremental))


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


def default_workers() -> int:
    """One digest worker per core beyond the one dlt's extract and the HTTP loop share."""
    return max(0, (os.cpu_count() or 1) - 1)
