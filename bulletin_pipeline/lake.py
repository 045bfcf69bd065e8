"""Reading the lake back, file by file, through the fsspec filesystem of dlt's filesystem destination
(local disk or S3): a table's Parquet files and partitions, the loads that completed, and a file's
record batches with only the columns asked (one row group in memory at a time).
"""

from __future__ import annotations

import contextlib
import posixpath
import re
from dataclasses import dataclass
from typing import Any, Iterator, List, Optional, Pattern, Sequence, Set

import dlt
import pyarrow as pa
import pyarrow.parquet as pq
from dlt.common.schema.typing import LOADS_TABLE_NAME

PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
BATCH_ROWS = 1024  # rows per batch read: ~5 MB of 5 KB payloads


@dataclass(frozen=True)
class LakeRoot:
    """Where a pipeline's dataset lives: the filesystem, its path there, its layout and its URL."""

    fs: Any
    dataset_path: str
    layout: str
    url: str

    def url_of(self, path: str) -> str:
        """A file's path on the filesystem as the user names it (`s3://...`, or the local path)."""
        relative = path[len(self.dataset_path) :] if path.startswith(self.dataset_path) else "/" + path
        return self.url + relative


@dataclass(frozen=True)
class LakeFile:
    table: str
    path: str  # on the filesystem (no protocol)
    partition: str  # the folders between the table and the file: load_date=.../load_time=...
    size: int
    load_id: Optional[str]  # from the layout's {load_id}; None when the name does not follow it


@contextlib.contextmanager
def open_lake(pipeline: dlt.Pipeline) -> Iterator[LakeRoot]:
    """The lake of `pipeline`'s filesystem destination (nothing is created or written)."""
    bucket_url = pipeline.destination.config_params.get("bucket_url", "")  # type: ignore[union-attr]
    with pipeline.destination_client() as client:
        yield LakeRoot(
            fs=client.fs_client,  # type: ignore[attr-defined]
            dataset_path=client.dataset_path.rstrip("/"),  # type: ignore[attr-defined]
            layout=client.config.layout,  # type: ignore[attr-defined]
            url=f"{str(bucket_url).rstrip('/')}/{pipeline.dataset_name}",
        )


def lake_files(fs: Any, dataset_path: str, table: str, layout: Optional[str] = None) -> List[LakeFile]:
    """Every Parquet file of `table`, sorted by path ([] when the table has none)."""
    table_path = posixpath.join(dataset_path, table)
    if not fs.isdir(table_path):
        return []
    pattern = file_pattern(layout) if layout else None
    files = []
    for path, info in sorted(fs.find(table_path, detail=True).items()):
        if not path.endswith(".parquet"):
            continue
        match = pattern.fullmatch(path[len(dataset_path) :].lstrip("/")) if pattern else None
        partition = posixpath.dirname(path[len(table_path) :].lstrip("/"))
        size = int(info.get("size") or 0)
        files.append(LakeFile(table, path, partition, size, match["load_id"] if match else None))
    return files


def partitions(files: Sequence[LakeFile]) -> List[str]:
    return sorted({f.partition for f in files})


@contextlib.contextmanager
def open_parquet(fs: Any, path: str) -> Iterator[pq.ParquetFile]:
    """A Parquet file of the lake, its footer read (schema, row count, row groups), its rows not yet."""
    with fs.open(path, "rb") as handle:
        yield pq.ParquetFile(handle)


def read_schema(fs: Any, path: str) -> pa.Schema:
    with open_parquet(fs, path) as parquet:
        return parquet.schema_arrow


def read_batches(
    fs: Any, path: str, columns: Optional[Sequence[str]] = None, batch_size: int = BATCH_ROWS
) -> Iterator[pa.RecordBatch]:
    """The file's rows in batches of `columns` (all when None); a damaged file raises pyarrow's
    errors (ArrowException) or the filesystem's (OSError)."""
    with open_parquet(fs, path) as parquet:
        yield from batches(parquet, columns, batch_size)


def batches(
    parquet: pq.ParquetFile, columns: Optional[Sequence[str]] = None, batch_size: int = BATCH_ROWS
) -> Iterator[pa.RecordBatch]:
    """An open file's rows, one row group read at a time: `iter_batches` reads ahead several, so
    its memory grows with the file."""
    for group in range(parquet.metadata.num_row_groups):
        table = parquet.read_row_group(group, columns=None if columns is None else list(columns), use_threads=False)
        yield from table.to_batches(max_chunksize=batch_size)
        del table


def completed_loads(fs: Any, dataset_path: str, schema: Optional[str] = None) -> Set[str]:
    """Ids of the loads dlt completed (those with a `_dlt_loads` entry), of `schema` when given."""
    loads = posixpath.join(dataset_path, LOADS_TABLE_NAME)
    if not fs.isdir(loads):
        return set()
    return {
        load_id
        for path in fs.ls(loads, detail=False)
        if (load_id := dlt_file_load_id(path))
        and (schema is None or posixpath.basename(path).startswith(f"{schema}__"))
    }


def dlt_file_load_id(path: str) -> Optional[str]:
    """`<name>__<load_id>[__<hash>].jsonl`, dlt's names in `_dlt_loads` and `_dlt_pipeline_state`."""
    parts = posixpath.splitext(posixpath.basename(path))[0].split("__")
    return parts[1] if len(parts) >= 2 else None


def file_pattern(layout: str) -> Optional[Pattern[str]]:
    """A regex for the paths (under the dataset) dlt makes from `layout`, capturing `load_id` and
    `file_id`; None when the layout has no `{load_id}`."""
    if "{load_id}" not in layout:
        return None
    if "{ext}" not in layout:
        layout += ".{ext}"  # as dlt does
    parts, seen, position = [], set(), 0
    for placeholder in PLACEHOLDER.finditer(layout):
        parts.append(re.escape(layout[position : placeholder.start()]))
        name = placeholder.group(1)
        if name in ("load_id", "file_id") and name not in seen:
            seen.add(name)
            parts.append(r"(?P<load_id>\d+\.\d+)" if name == "load_id" else r"(?P<file_id>[^/.]+)")
        else:
            parts.append(r"[^/]*?")
        position = placeholder.end()
    parts.append(re.escape(layout[position:]))
    return re.compile("".join(parts))
