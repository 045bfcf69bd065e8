"""`cleanup --retain-days N`: the `{table}/load_date=.../load_time=.../` folders older than N days, listed or
removed through dlt's fsspec client; dlt's bookkeeping and each table's newest partition are kept."""

from __future__ import annotations

import datetime as dt
import posixpath
import re
from dataclasses import dataclass
from typing import Any, List, Optional

from .envelope import REJECTED_TABLE
from .errors import ConfigError, DestinationError
from .pipeline import dataset_url, make_pipeline
from .settings import BulletinSettings
from .tables import table_name

DATE_DIR = re.compile(r"load_date=(\d{4}-\d{2}-\d{2})")


@dataclass(frozen=True)
class Partition:
    table: str
    load_date: dt.date
    path: str  # a load_time=... folder


def expired_partitions(
    fs: Any, dataset_path: str, tables: List[str], retain_days: int, today: dt.date
) -> List[Partition]:
    if retain_days < 0:
        raise ConfigError(f"--retain-days must be >= 0, got {retain_days}")
    cutoff = today - dt.timedelta(days=retain_days)
    expired = []
    for table in tables:
        table_path = posixpath.join(dataset_path, table)
        found = []  # (load_date, load_time folder name, its path)
        for date_dir in fs.ls(table_path, detail=False) if fs.isdir(table_path) else []:
            match = DATE_DIR.fullmatch(_name(date_dir))
            if match:
                day = dt.date.fromisoformat(match.group(1))
                found += [
                    (day, _name(t), t) for t in fs.ls(date_dir, detail=False) if _name(t).startswith("load_time=")
                ]
        for day, _, path in sorted(found)[:-1]:  # the newest partition of a table is never removed
            if day < cutoff:
                expired.append(Partition(table, day, path))
    return expired


def remove(fs: Any, partitions: List[Partition]) -> None:
    """Remove each partition, then its load_date folder once empty."""
    for partition in partitions:
        try:
            fs.rm(partition.path, recursive=True)
            parent = posixpath.dirname(partition.path.rstrip("/"))
            if not fs.ls(parent, detail=False):
                fs.rm(parent, recursive=True)
        except FileNotFoundError:
            continue
        except Exception as exc:  # noqa: BLE001 - one line for the user
            raise DestinationError(f"cannot remove {partition.path}: {exc}") from exc


def tables_for(endpoints: List[str]) -> List[str]:
    """The tables (folders) of `endpoints` and `rejected`."""
    return [*map(table_name, endpoints), REJECTED_TABLE]


def _name(path: str) -> str:
    return posixpath.basename(path.rstrip("/"))


def cleanup_partitions(
    settings: BulletinSettings, retain_days: int, remove_them: bool, today: Optional[dt.date] = None
) -> List[Partition]:
    """Partitions older than `retain_days` (removed when `remove_them`)."""
    pipeline = make_pipeline(settings)
    with pipeline.destination_client() as client:
        fs = client.fs_client  # type: ignore[attr-defined]
        dataset_path = client.dataset_path  # type: ignore[attr-defined]
        if not fs.isdir(dataset_path):  # a typo'd bucket_url must not look like a clean lake
            raise ConfigError(f"no lake at {dataset_url(pipeline)}; check --bucket-url")
        tables = tables_for(settings.endpoints)
        expired = expired_partitions(fs, dataset_path, tables, retain_days, today or dt.date.today())
        if remove_them:
            remove(fs, expired)
    return expired
