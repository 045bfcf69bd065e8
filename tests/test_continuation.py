"""lake_continuation on real Parquet files: the original's format and ours, read newest first."""

from __future__ import annotations

import datetime as dt
import hashlib
import pathlib
from typing import Any, Dict, List, Optional

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bulletin_pipeline.continuation import lake_continuation
from bulletin_pipeline.digest import serialize
from bulletin_pipeline.envelope import DATA_SCHEMA
from bulletin_pipeline.errors import DestinationError

from .original import write_original_partition

NOW = dt.datetime(2025, 6, 2, 12, 0, 0, tzinfo=dt.UTC)
HORIZON = 7200 + 86400  # window.ledger_horizon of the default settings


def record(record_id: int, modified: Any, gmt: Optional[str] = None) -> Dict[str, Any]:
    """A WordPress-shaped record; `modified_gmt` four hours after the local time unless given."""
    if gmt is None and isinstance(modified, str) and len(modified) == 19:
        gmt = (dt.datetime.fromisoformat(modified) + dt.timedelta(hours=4)).strftime("%Y-%m-%dT%H:%M:%S")
    return {"id": record_id, "modified": modified, "modified_gmt": gmt, "title": {"rendered": f"Page {record_id}"}}


def write_ours(dataset: pathlib.Path, endpoint: str, at: dt.datetime, records: List[Dict[str, Any]]) -> pathlib.Path:
    """A partition as this pipeline writes it: dlt's `{load_id}.{file_id}.parquet`, the contract's schema."""
    folder = dataset / endpoint / f"load_date={at:%Y-%m-%d}" / f"load_time={at:%H:%M:%S}"
    folder.mkdir(parents=True, exist_ok=True)
    payloads = [serialize(r).decode("utf-8") for r in records]
    table = pa.Table.from_arrays(
        [
            pa.array([r["id"] for r in records], pa.int64()),
            pa.array([at] * len(records), DATA_SCHEMA.field("dl_inserted_at").type),
            pa.array(payloads, pa.string()),
            pa.array([hashlib.sha256(p.encode()).hexdigest() for p in payloads], pa.string()),
        ],
        schema=DATA_SCHEMA,
    )
    path = folder / f"{at.timestamp():.7f}.{hashlib.sha256(str(at).encode()).hexdigest()[:10]}.parquet"
    pq.write_table(table, path, compression="snappy")
    return path


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def continue_from(dataset: pathlib.Path, endpoint: str = "pages"):
    return lake_continuation(fsspec.filesystem("file"), str(dataset), endpoint, HORIZON, now=NOW)


def test_no_partitions_means_no_continuation(tmp_path: pathlib.Path):
    assert continue_from(tmp_path) is None
    (tmp_path / "pages" / "load_date=2025-06-01").mkdir(parents=True)
    assert continue_from(tmp_path) is None
    write_ours(tmp_path, "media", at("2025-06-01T10:00:00"), [record(1, "2025-06-01T05:00:00")])
    assert continue_from(tmp_path) is None, "another collection's partitions are not this one's"


def test_the_originals_partition_gives_the_cursor_and_the_versions_within_the_horizon(tmp_path: pathlib.Path):
    records = [
        record(10, "2025-06-02T07:59:59"),
        record(11, "2025-06-02T07:59:59"),  # the same second as the newest: both are kept
        record(12, "2025-06-01T06:00:00"),  # 25 h 59 min 59 s back: within the horizon
        record(13, "2025-06-01T05:59:58"),  # 26 h 1 s back: beyond it
        record(14, "2019-01-01T00:00:00"),
    ]
    write_original_partition(tmp_path, "pages", at("2025-06-02T10:00:00"), records)
    found = continue_from(tmp_path)
    assert found is not None
    assert found.cursor == "2025-06-02T07:59:59"
    assert found.versions == {
        "10": "2025-06-02T11:59:59",
        "11": "2025-06-02T11:59:59",
        "12": "2025-06-01T10:00:00",
    }
    assert [pathlib.PurePath(p).name for p in found.partitions] == ["load_time=10:00:00"]


def test_our_newer_partition_and_the_originals_are_read_together(tmp_path: pathlib.Path):
    write_original_partition(
        tmp_path,
        "pages",
        at("2025-06-01T10:00:00"),
        [record(1, "2025-06-01T05:00:00"), record(2, "2025-06-01T05:30:00"), record(3, "2025-05-20T00:00:00")],
    )
    write_ours(
        tmp_path,
        "pages",
        at("2025-06-02T10:00:00"),
        [record(2, "2025-06-02T05:00:00"), record(4, "2025-06-02T06:00:00")],
    )
    found = continue_from(tmp_path)
    assert found is not None and found.cursor == "2025-06-02T06:00:00"
    # id 2's newer version wins; id 1 from the original is within 26 h of the cursor, id 3 is not
    assert found.versions == {
        "1": "2025-06-01T09:00:00",
        "2": "2025-06-02T09:00:00",
        "4": "2025-06-02T10:00:00",
    }
    assert len(found.partitions) == 2


def test_the_walk_stops_at_the_first_partition_older_than_the_horizon(tmp_path: pathlib.Path):
    write_ours(tmp_path, "pages", at("2025-06-02T10:00:00"), [record(1, "2025-06-02T05:00:00")])
    write_ours(tmp_path, "pages", at("2025-05-31T10:00:00"), [record(2, "2025-05-31T05:00:00")])
    oldest = tmp_path / "pages" / "load_date=2025-05-01" / "load_time=10:00:00"
    oldest.mkdir(parents=True)
    (oldest / "de_bulletin_data.parquet").write_bytes(b"not parquet: opening it would fail")
    found = continue_from(tmp_path)
    assert found is not None and found.cursor == "2025-06-02T05:00:00"
    assert found.versions == {"1": "2025-06-02T09:00:00"}
    assert [pathlib.PurePath(p).parent.name for p in found.partitions] == [
        "load_date=2025-06-02",
        "load_date=2025-05-31",
    ]


def test_an_unreadable_file_within_the_horizon_is_a_one_line_error(tmp_path: pathlib.Path):
    write_ours(tmp_path, "pages", at("2025-06-02T10:00:00"), [record(1, "2025-06-02T05:00:00")])
    broken = tmp_path / "pages" / "load_date=2025-06-02" / "load_time=09:00:00"
    broken.mkdir(parents=True)
    (broken / "de_bulletin_data.parquet").write_bytes(b"cut off")
    with pytest.raises(DestinationError) as caught:
        continue_from(tmp_path)
    message = str(caught.value)
    assert "de_bulletin_data.parquet" in message and "--full-refresh" in message and "\n" not in message


def test_a_file_without_the_contracts_columns_is_named(tmp_path: pathlib.Path):
    folder = tmp_path / "pages" / "load_date=2025-06-02" / "load_time=10:00:00"
    folder.mkdir(parents=True)
    pq.write_table(pa.table({"id": [1], "body": ["{}"]}), folder / "other.parquet")
    with pytest.raises(DestinationError, match="other.parquet.*no payload column"):
        continue_from(tmp_path)


def test_an_untrusted_modified_never_becomes_the_cursor(tmp_path: pathlib.Path):
    write_ours(
        tmp_path,
        "pages",
        at("2025-06-02T10:00:00"),
        [
            record(1, "2099-01-01T00:00:00"),  # future-dated: loaded, but never the cursor
            record(2, "2025-06-02T09:00:00Z", gmt="2025-06-02T13:00:00"),  # not WordPress's format
            record(3, 1748851200, gmt="2025-06-02T08:00:00"),
            record(4, "2025-06-02T03:00:00"),
        ],
    )
    found = continue_from(tmp_path)
    assert found is not None and found.cursor == "2025-06-02T03:00:00"
    # the future version is written: a run drops it until it changes, as the ledger does
    assert found.versions == {"1": "2099-01-01T04:00:00", "4": "2025-06-02T07:00:00"}


def test_a_partition_with_no_trusted_modified_does_not_end_the_walk(tmp_path: pathlib.Path):
    write_ours(tmp_path, "pages", at("2025-06-02T10:00:00"), [record(1, "2099-01-01T00:00:00")])
    write_original_partition(tmp_path, "pages", at("2025-04-01T10:00:00"), [record(2, "2025-04-01T05:00:00")])
    found = continue_from(tmp_path)
    assert found is not None and found.cursor == "2025-04-01T05:00:00"
    assert set(found.versions) == {"1", "2"}


def test_only_future_records_give_no_continuation(tmp_path: pathlib.Path):
    write_ours(tmp_path, "pages", at("2025-06-02T10:00:00"), [record(1, "2099-01-01T00:00:00")])
    assert continue_from(tmp_path) is None


def test_a_large_partition_is_read_in_batches_whole(tmp_path: pathlib.Path):
    start = dt.datetime(2025, 6, 2, 0, 0, 0)
    records = [record(i, (start + dt.timedelta(seconds=i)).strftime("%Y-%m-%dT%H:%M:%S")) for i in range(1, 5001)]
    write_original_partition(tmp_path, "pages", at("2025-06-02T10:00:00"), records)
    found = continue_from(tmp_path)
    assert found is not None and found.cursor == "2025-06-02T01:23:20"
    assert len(found.versions) == 5000


def test_partitions_are_ordered_by_folder_not_by_file_time(tmp_path: pathlib.Path):
    """A partition written later with an earlier --load-date/--load-time still sorts by its folder."""
    write_ours(tmp_path, "pages", at("2025-06-02T10:00:00"), [record(1, "2025-06-02T05:00:00")])
    write_ours(tmp_path, "pages", at("2025-06-02T09:00:00"), [record(2, "2025-06-02T06:00:00")])
    found = continue_from(tmp_path)
    assert found is not None and found.cursor == "2025-06-02T06:00:00"
    assert [pathlib.PurePath(p).name for p in found.partitions] == ["load_time=10:00:00", "load_time=09:00:00"]
