"""Partitions in the original Dagster pipeline's exact format, for the tests that continue its lake.

As its design describes them: `{dataset}/{endpoint}/load_date=YYYY-MM-DD/load_time=HH:MM:SS/
de_bulletin_data.parquet` (`paths.parquet_file_name`), written by polars with Snappy; columns `id`
Int64, `dl_inserted_at` Datetime (polars' default: microseconds, no zone), `payload` String (the
record as `json.dumps` writes it) and `dl_hash` (SHA-256 hex of the payload's UTF-8).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import pathlib
from typing import Any, Dict, List

import polars as pl

FILE_NAME = "de_bulletin_data.parquet"
SCHEMA = {"id": pl.Int64, "dl_inserted_at": pl.Datetime("us"), "payload": pl.Utf8, "dl_hash": pl.Utf8}


def write_original_partition(
    dataset: pathlib.Path, endpoint: str, inserted_at: dt.datetime, records: List[Dict[str, Any]]
) -> pathlib.Path:
    """One run of the original for one endpoint: its partition folder holding one file; returns the file."""
    moment = inserted_at.astimezone(dt.UTC).replace(tzinfo=None, microsecond=0)
    folder = dataset / endpoint / f"load_date={moment:%Y-%m-%d}" / f"load_time={moment:%H:%M:%S}"
    folder.mkdir(parents=True, exist_ok=True)
    payloads = [json.dumps(record) for record in records]
    frame = pl.DataFrame(
        {
            "id": [record["id"] for record in records],
            "dl_inserted_at": [moment] * len(records),
            "payload": payloads,
            "dl_hash": [hashlib.sha256(payload.encode("utf-8")).hexdigest() for payload in payloads],
        },
        schema=SCHEMA,
    )
    path = folder / FILE_NAME
    frame.write_parquet(path, compression="snappy")
    return path
