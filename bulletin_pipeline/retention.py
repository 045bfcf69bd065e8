"""`cleanup --retain-days N`: list (and with --yes remove) partitions older than N days.

Only `{table}/load_date=.../load_time=.../` folders of the collections and `rejected` are touched,
through dlt's fsspec client; dlt's bookkeeping and each table's newest partition are always kept.
"""

from __future__ import annotations

import datetime as dt
import posixpath
import re
from dataclasses import dataclass
from typing import Any, List, Tuple

from .envelope import REJECTED_TABLE
from .errors import ConfigError, DestinationError

_DATE_DIR = re.compile(r"^load_date=(\d{4}-\d{2}-\d{2})$")


@dataclass(frozen=True)
class Partition:
    table: str
    load_date: dt.date
    path: str  # the load_date=... folder, or a load_time=... folder inside it


def _name(path: str) -> str:
    return posixpath.basename(path.rstrip("/"))


def find_partitions(fs: Any, dataset_path: str, tables: List[str]) -> List[Tuple[str, List[Tuple[str, str]]]]:
    """[(table, [(load_date, load_time folder path), ...sorted])] for tables that exist."""
    found = []
    for table in tables:
        table_path = posixpath.join(dataset_path, table)
        if not fs.isdir(table_path):
            continue
        entries: List[Tuple[str, str]] = []
        for date_dir in fs.ls(table_path, detail=False):
            match = _DATE_DIR.match(_name(date_dir))
            if not match:
                continue
            for time_dir in fs.ls(date_dir, detail=False):
                if _name(time_dir).startswith("load_time="):
                    entries.append((match.group(1) + "/" + _name(time_dir), time_dir))
        found.append((table, sorted(entries)))
    return found


def expired_partitions(
    fs: Any, dataset_path: str, tables: List[str], retain_days: int, today: dt.date
) -> List[Partition]:
    if retain_days < 0:
        raise ConfigError(f"--retain-days must be >= 0, got {retain_days}")
    cutoff = today - dt.timedelta(days=retain_days)
    expired = []
    for table, entries in find_partitions(fs, dataset_path, tables):
        for key, path in entries[:-1]:  # the newest partition of a table is never removed
            day = dt.date.fromisoformat(key.split("/")[0])
            if day < cutoff:
                expired.append(Partition(table, day, path))
    return expired


def remove(fs: Any, partitions: List[Partition]) -> None:
    for partition in partitions:
        try:
            fs.rm(partition.path, recursive=True)
        except FileNotFoundError:
            continue
        except Exception as exc:  # noqa: BLE001 - one line for the user
            raise DestinationError(f"cannot remove {partition.path}: {exc}") from exc
        parent = posixpath.dirname(partition.path.rstrip("/"))
        try:
            if not fs.ls(parent, detail=False):
                fs.rm(parent, recursive=True)
        except FileNotFoundError:
            pass


def tables_for(endpoints: List[str]) -> List[str]:
    return [*endpoints, REJECTED_TABLE]
