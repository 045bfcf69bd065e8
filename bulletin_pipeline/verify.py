"""`verify`: prove the lake from the lake alone (no network), file by file.

Per table (the endpoints', `rejected` and `deleted`): files, rows, partitions; files that cannot
be read or end early, whose schema is not the contract's or whose load never completed; rows whose
`dl_hash` is not the SHA-256 of their payload, whose payload is not JSON or names another `id`;
versions (`id`, `modified_gmt`) one run wrote twice (same `dl_inserted_at`); and the newest
`modified` against the cursor stored in the lake's state. The original pipeline's files (named
outside dlt's layout, in its own columns) are checked by its contract, with no load to complete.
Memory stays flat: one row group at a time, plus 16 bytes a record for the version index.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import posixpath
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from .destination import configure_arrow_memory
from .digest import WP_DATETIME, version_of
from .envelope import DATA_SCHEMA, ORIGINAL_SCHEMA, REJECTED_SCHEMA, REJECTED_TABLE
from .errors import BulletinError, ConfigError, DestinationError
from .lake import LakeFile, LakeRoot, batches, completed_loads, lake_files, open_lake, open_parquet, partitions
from .lock import LOCK_NAME
from .pipeline import make_pipeline, restore_state, stored_cursor
from .settings import BulletinSettings
from .tables import table_name
from .tombstones import DELETED_SCHEMA, DELETED_TABLE
from .version_index import VersionIndex, version_key

FAULT_LINES = 5  # files named when the lake is not clean
NOT_JSON = object()
BAD_HASH = "whose dl_hash is not the SHA-256 of the payload"
NOT_JSON_PAYLOAD = "whose payload is not JSON"
ID_DIFFERS = "whose payload's id is not the row's id"
# (files done, files in all, rows read)
VerifyProgress = Callable[[int, int, int], None]


class LakeFaults(BulletinError):
    """The lake is not clean: the report names the files at fault."""


@dataclass
class Fault:
    table: str
    file: Optional[str]  # the file's URL; None for a fault of the whole table (its cursor)
    problems: List[str]

    def describe(self) -> str:
        return f"{self.file or self.table}: {'; '.join(self.problems)}"


@dataclass
class TableReport:
    table: str
    incremental: bool = False
    files: int = 0
    rows: int = 0
    partitions: int = 0
    unreadable: int = 0  # files that cannot be read, or end before their row count
    drift: int = 0  # files whose columns are not the contract's
    unfinished: int = 0  # files of loads without a `_dlt_loads` entry
    original: int = 0  # files the original pipeline wrote (no load id, its columns): checked by its contract
    absent: bool = False  # an endpoint with no file and no stored cursor: a typo in --endpoints?
    bad_hash: int = 0  # rows
    not_json: int = 0  # rows
    id_differs: int = 0  # rows
    stored_twice: int = 0  # rows repeating a version their run (dl_inserted_at) already wrote
    rewritten: int = 0  # versions written again by a later run (--full-refresh, backfills): not a fault
    newest_modified: Optional[str] = None
    cursor: Optional[str] = None
    cursor_fault: Optional[str] = None

    @property
    def clean(self) -> bool:
        counts = (self.unreadable, self.drift, self.unfinished, self.bad_hash, self.not_json, self.id_differs)
        return not any(counts) and not self.stored_twice and self.cursor_fault is None

    def unread(self) -> str:
        """What of the table could not be read ('' when all could)."""
        parts = [f"{self.unreadable} file(s) unreadable"] * bool(self.unreadable)
        return ", ".join(parts + [f"{self.not_json} payload(s) not JSON"] * bool(self.not_json))

    def cursor_note(self) -> Optional[str]:
        """How the newest `modified` in the lake stands against the stored cursor (None: not incremental)."""
        if not self.incremental or (self.cursor is None and self.newest_modified is None):
            return None
        if self.cursor_fault:
            return self.cursor_fault
        if self.unread():
            return f"stored cursor {self.cursor}: not compared, {self.unread()}"
        if self.newest_modified is None:
            return f"no record yet, stored cursor {self.cursor} (its initial value)"
        if self.cursor is None:
            return f"newest modified {self.newest_modified}, no stored cursor (only backfills wrote it)"
        verdict = (
            "ok"
            if self.newest_modified == self.cursor
            else "newer than the cursor (a backfill or a future-dated record; the next run reads from the cursor)"
        )
        return f"newest modified {self.newest_modified}, stored cursor {self.cursor}: {verdict}"


@dataclass
class VerifyReport:
    lake_url: str
    tables: List[TableReport]
    faults: List[Fault] = field(default_factory=list)
    lock_note: Optional[str] = None
    seconds: float = 0.0

    @property
    def clean(self) -> bool:
        return not self.faults

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables)

    def verdict(self) -> str:
        """'clean', or how many files (and cursors) are at fault, per table."""
        if self.clean:
            return "clean"
        per_table = []
        for t in self.tables:
            table = t.table
            files = sum(f.table == table and f.file is not None for f in self.faults)
            cursor = any(f.table == table and f.file is None for f in self.faults)
            if t.absent:
                per_table.append(f"{table}: not in the lake")
            elif files or cursor:
                per_table.append(f"{table}: {files} file(s)" + (" and its cursor" if cursor else ""))
        files = sum(f.file is not None for f in self.faults)
        return f"not clean, {files} file(s) at fault ({'; '.join(per_table)})"


def verify_lake(
    settings: BulletinSettings, progress: Optional[VerifyProgress] = None, work_dir: Optional[str] = None
) -> VerifyReport:
    """Check every file of `settings.endpoints` and `rejected` at `settings.bucket_url`; the state is
    restored from the lake into a temporary dlt folder (in `work_dir`), never the user's."""
    started = time.monotonic()
    configure_arrow_memory()
    if work_dir:
        os.makedirs(work_dir, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bulletin-verify-", dir=work_dir or None) as pipelines_dir:
        local = copy.copy(settings)  # the caller's settings stay as they were
        local.pipelines_dir = pipelines_dir
        pipeline = make_pipeline(local)
        with open_lake(pipeline) as root:
            try:
                if not root.fs.isdir(root.dataset_path):  # a typo'd bucket_url must not look like a clean lake
                    raise ConfigError(f"no lake at {root.url}; check --bucket-url")
                tables = [*settings.endpoints, REJECTED_TABLE, DELETED_TABLE]
                # an endpoint is reported by its name, its files read from its table (menu-items: menu_items/)
                files = {t: lake_files(root.fs, root.dataset_path, table_name(t), root.layout) for t in tables}
                completed = completed_loads(root.fs, root.dataset_path)
                lock_note = _lock_note(root)
            except (OSError, ValueError) as exc:
                raise DestinationError(f"cannot read the lake at {root.url}: {exc}") from exc
            restore_state(pipeline)
            report = VerifyReport(root.url, [], lock_note=lock_note)
            total = sum(len(f) for f in files.values())
            checker = _Checker(root, completed, total, progress, settings.default_baseline_datetime)
            for table in tables:
                incremental = table in settings.endpoints and settings.collection(table).incremental
                cursor = stored_cursor(pipeline, table) if incremental else None
                table_report = checker.table(table, files[table], incremental, cursor, report.faults)
                report.tables.append(table_report)
                if table in settings.endpoints and not files[table] and cursor is None:
                    table_report.absent = True
                    problem = "not in the lake: no file and no stored cursor (check --endpoints)"
                    report.faults.append(Fault(table, None, [problem]))
    report.seconds = round(time.monotonic() - started, 3)
    return report


class _Checker:
    """Reads files one by one, counting into the table's report; faults land in `faults`."""

    def __init__(
        self, root: LakeRoot, completed: set, total: int, progress: Optional[VerifyProgress], baseline: str
    ) -> None:
        self.root = root
        self.completed = completed
        self.total = total
        self.done = 0
        self.rows = 0
        self.progress = progress
        self.baseline = baseline  # a cursor not past it was never moved by a record (an empty collection)

    def table(
        self, table: str, files: List[LakeFile], incremental: bool, cursor: Optional[str], faults: List[Fault]
    ) -> TableReport:
        report = TableReport(table, incremental, files=len(files), partitions=len(partitions(files)), cursor=cursor)
        contract = {REJECTED_TABLE: REJECTED_SCHEMA, DELETED_TABLE: DELETED_SCHEMA}.get(table, DATA_SCHEMA)
        versions = VersionIndex() if contract is DATA_SCHEMA else None
        found: Dict[int, Fault] = {}
        for index, lake_file in enumerate(files):
            problems = self.file(lake_file, index, contract, report, versions)
            if problems:
                found[index] = Fault(table, self.root.url_of(lake_file.path), problems)
            self.done += 1
            if self.progress:
                self.progress(self.done, self.total, self.rows)
        if versions is not None:
            repeats = versions.repeats()
            report.stored_twice, report.rewritten = repeats.extra_rows, repeats.written_again
            for index, count in sorted(repeats.files.items()):
                problem = f"{count:,} row(s) whose version (id, modified_gmt) one run wrote twice (same dl_inserted_at)"
                fault = found.setdefault(index, Fault(table, self.root.url_of(files[index].path), []))
                fault.problems.append(problem)
        faults.extend(found[index] for index in sorted(found))
        if incremental and not report.unread():  # what cannot be read may hold the newest record
            report.cursor_fault = _cursor_fault(report, self.baseline)
            if report.cursor_fault:
                faults.append(Fault(table, None, [report.cursor_fault]))
        return report

    def file(
        self,
        lake_file: LakeFile,
        index: int,
        contract: pa.Schema,
        report: TableReport,
        versions: Optional[VersionIndex],
    ) -> List[str]:
        problems: List[str] = []
        original = False
        rows = _RowChecks(report, versions, index, lake_file.load_id or lake_file.path)
        try:
            with open_parquet(self.root.fs, lake_file.path) as parquet:
                schema, expected = parquet.schema_arrow, parquet.metadata.num_rows
                # a file dlt's layout does not name, in the original's columns, is the original's
                original = lake_file.load_id is None and versions is not None and not _drift(schema, ORIGINAL_SCHEMA)
                if original:
                    report.original += 1
                    contract = ORIGINAL_SCHEMA
                drift = _drift(schema, contract)
                if drift:
                    report.drift += 1
                    problems.append(drift)
                # a column of another type is drift, and is not read: its rows are not judged on it
                wanted = ("id", "dl_inserted_at", "payload", "dl_hash")
                columns = [n for n in wanted if _same_type(schema, contract, n)]
                for batch in batches(parquet, columns):
                    rows.check(batch)
                    self.rows += batch.num_rows
            if rows.read != expected:
                raise ValueError(f"{rows.read} of its {expected} rows could be read")
        except (OSError, ValueError, pa.ArrowException) as exc:  # ArrowInvalid is a ValueError
            report.unreadable += 1
            text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            problems.append(f"unreadable or truncated: {text}")
        if not original and lake_file.load_id not in self.completed:
            report.unfinished += 1
            load = f"load {lake_file.load_id}" if lake_file.load_id else "a load the layout does not name"
            problems.insert(0, f"a file of {load}, which never completed (the next run removes it)")
        report.rows += rows.read
        return problems + rows.problems()


class _RowChecks:
    """Row checks of one file: hash, JSON, id; its versions into the index, the newest `modified`."""

    def __init__(self, report: TableReport, versions: Optional[VersionIndex], file_index: int, load: str) -> None:
        self.report = report
        self.versions = versions
        self.file_index = file_index
        self.load = load
        self.read = 0
        # problem -> [rows, first row's id]
        self.found: Dict[str, List[Any]] = {}

    def _note(self, problem: str, row_id: Any) -> None:
        self.found.setdefault(problem, [0, row_id])[0] += 1

    def check(self, batch: pa.RecordBatch) -> None:
        names = batch.schema.names
        ids = batch.column("id").to_pylist() if "id" in names else None
        payloads = batch.column("payload").to_pylist() if "payload" in names else []
        hashes = batch.column("dl_hash").to_pylist() if "dl_hash" in names else None
        keys: List[int] = []
        keyed: List[int] = []  # the rows of `keys`
        for row, payload in enumerate(payloads):
            row_id = ids[row] if ids is not None else None
            raw = payload.encode("utf-8") if isinstance(payload, str) else b""
            if hashes is not None and hashlib.sha256(raw).hexdigest() != hashes[row]:
                self._note(BAD_HASH, row_id)
            record = _parse(raw)
            if record is NOT_JSON:
                self._note(NOT_JSON_PAYLOAD, row_id)
                continue
            if ids is not None and _int_id(record) != row_id:
                self._note(ID_DIFFERS, row_id)
            if self.versions is not None:
                version = version_of(record)
                if version is not None and row_id is not None:
                    keys.append(version_key(row_id, version))
                    keyed.append(row)
                modified = record.get("modified") if isinstance(record, dict) else None
                if isinstance(modified, str) and WP_DATETIME.fullmatch(modified):
                    newest = self.report.newest_modified
                    self.report.newest_modified = modified if newest is None else max(newest, modified)
        if self.versions is not None and keys:
            stamps = batch.column("dl_inserted_at") if "dl_inserted_at" in names else None
            runs = self.versions.runs(stamps, batch.num_rows, self.load)
            self.versions.add(self.file_index, keys, pc.take(runs, pa.array(keyed, pa.int32())))
        self.read += batch.num_rows

    def problems(self) -> List[str]:
        self.report.bad_hash += self.found.get(BAD_HASH, [0])[0]
        self.report.not_json += self.found.get(NOT_JSON_PAYLOAD, [0])[0]
        self.report.id_differs += self.found.get(ID_DIFFERS, [0])[0]
        return [
            f"{self.found[what][0]:,} row(s) {what} (first: id {self.found[what][1]})"
            for what in (BAD_HASH, NOT_JSON_PAYLOAD, ID_DIFFERS)
            if what in self.found
        ]


def _parse(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        try:
            return json.loads(raw)  # what orjson refuses and the standard library wrote (NaN)
        except ValueError:
            return NOT_JSON


def _int_id(record: Any) -> Optional[int]:
    """The payload's `id` as the row holds it: an int64, else None (a rejected record's)."""
    value = record.get("id") if isinstance(record, dict) else None
    return value if type(value) is int and -(2**63) <= value < 2**63 else None


def _same_type(schema: pa.Schema, contract: pa.Schema, name: str) -> bool:
    return name in schema.names and str(schema.field(name).type) == str(contract.field(name).type)


def _drift(schema: pa.Schema, contract: pa.Schema) -> Optional[str]:
    """What differs between a file's columns (names and types, in order) and the contract's."""
    found = [(f.name, str(f.type)) for f in schema]
    expected = [(f.name, str(f.type)) for f in contract]
    if found == expected:
        return None
    types = dict(found)
    missing = [name for name, _ in expected if name not in types]
    extra = [name for name, _ in found if name not in contract.names]
    changed = [f"{name} is {types[name]}, not {kind}" for name, kind in expected if types.get(name, kind) != kind]
    parts = [f"missing {', '.join(missing)}"] * bool(missing) + [f"extra {', '.join(extra)}"] * bool(extra) + changed
    return f"schema drift: {'; '.join(parts or ['columns in another order'])}"


def _cursor_fault(report: TableReport, baseline: str) -> Optional[str]:
    """The stored cursor may never pass the records the lake holds: else records up to it are missing."""
    if report.cursor is None:
        return None
    if report.newest_modified is None and report.cursor <= baseline:
        return None  # the collection had no record yet: its cursor is still the initial value
    if report.newest_modified is None:
        return f"the stored cursor is {report.cursor} but the lake holds no record of {report.table}"
    if report.cursor > report.newest_modified:
        return (
            f"the stored cursor {report.cursor} is after the newest modified in the lake ({report.newest_modified}): "
            f"records modified up to the cursor are missing; reload them with --last-modified-date "
            f"{report.newest_modified[:10]}"
        )
    return None


def _lock_note(root: LakeRoot) -> Optional[str]:
    path = posixpath.join(root.dataset_path, LOCK_NAME)
    if not root.fs.exists(path):
        return None
    return (
        f"a run holds the lake's lock ({root.url_of(path)}): the files of its load show as never completed "
        "until it ends"
    )
