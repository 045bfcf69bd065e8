"""`verify` on lakes the normal pipeline wrote, clean and then damaged on purpose: a payload
changed, a file truncated, a file duplicated, and the other faults it reports; on disk and on S3."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
from typing import Any, Callable, Dict, Iterator, List, Tuple

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bulletin_pipeline.envelope import DATA_SCHEMA, REJECTED_SCHEMA
from bulletin_pipeline.verify import VerifyReport, verify_lake
from tests.simulator import SimulatorServer, Site, seed_site

from .conftest import CLOCK, Lake
from .test_s3 import S3Lake, aws_env, moto, s3lake  # noqa: F401 - the S3 test's fixtures

ROOT = pathlib.Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "bulletin_pipeline" / "run.py"
LATER = CLOCK + dt.timedelta(hours=1)


def verify_cli(*args: str, cwd: pathlib.Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "RUNTIME__DLTHUB_TELEMETRY": "false", "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, str(SCRIPT), "verify", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=180
    )


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tuple[Lake, Site]]:
    """A lake of two loads (the second: one edited page and one rejected), written once per module."""
    site = Site(clock=lambda: CLOCK)
    seed_site(site, pages=260, media=120, seed=7, body_kb=1)
    with SimulatorServer(site) as server:
        lake = Lake(tmp_path_factory.mktemp("pristine"), server)
        lake.run(load_date="2025-06-01", load_time="10:00:00")
        first, second = sorted(site.published_versions("pages"))[:2]
        site.edit("pages", first, at=LATER, title="Edited")
        site.edit("pages", second, at=LATER, menu_order="first")  # fails validation: a rejected row
        summary = lake.run(load_date="2025-06-02", load_time="10:00:00")
        assert (summary.loaded, summary.rejected) == (1, 1)
        yield lake, site


@pytest.fixture
def lake(pristine: Tuple[Lake, Site], tmp_path: pathlib.Path) -> Lake:
    """A copy of the pristine lake, to damage; no local dlt folder (verify restores the lake's state)."""
    source, _ = pristine
    shutil.copytree(source.bucket, tmp_path / "lake")
    return Lake(tmp_path, source.server)


def snapshot(folder: pathlib.Path) -> Dict[str, Tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.rglob("*")) if p.is_file()}


Rows = List[Dict[str, Any]]


def rewrite(path: pathlib.Path, change: Callable[[Rows], None], schema: pa.Schema = DATA_SCHEMA) -> None:
    """Write the file again with its rows passed through `change`."""
    rows = pq.read_table(path).to_pylist()
    change(rows)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def error_lines(result: subprocess.CompletedProcess) -> List[str]:
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines and lines[-1].startswith("error: "), result.stderr
    return lines


# -- through the command line -------------------------------------------------------------------


def test_a_lake_the_pipeline_wrote_verifies_clean_and_is_not_touched(lake: Lake, tmp_path: pathlib.Path):
    before = snapshot(lake.dataset)
    result = verify_cli("--bucket-url", str(lake.bucket), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "error" not in result.stderr, result.stderr
    for table in ("pages", "media", "rejected"):
        files, rows = len(lake.files(table)), len(lake.rows(table))
        assert files and rows
        assert re.search(rf"│ {table} +│ +{files} │ +{rows:,} │", result.stdout), result.stdout
    cursor = max(r["modified"] for r in lake.records("pages"))
    assert f"pages: newest modified {cursor}, stored cursor {cursor}: ok" in result.stdout, result.stdout
    assert result.stdout.rstrip().endswith(": clean"), result.stdout
    assert snapshot(lake.dataset) == before, "verify must not write to the lake"
    assert not lake.pipelines_dir.exists(), "the state is restored into a temporary folder"


def test_a_changed_payload_is_caught_and_its_file_named(lake: Lake, tmp_path: pathlib.Path):
    target = lake.files("pages")[0]
    changed: List[int] = []

    def edit_one(rows: Rows) -> None:
        row = rows[7]
        edited = row["payload"].replace('"status":"publish"', '"status":"draft"', 1)
        assert edited != row["payload"]
        row["payload"] = edited
        changed.append(row["id"])

    rewrite(target, edit_one)
    result = verify_cli("--bucket-url", str(lake.bucket), cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    lines = error_lines(result)
    assert lines[:-1] == [
        f"{target}: 1 row(s) whose dl_hash is not the SHA-256 of the payload (first: id {changed[0]})"
    ], result.stderr
    assert lines[-1] == f"error: the lake at {lake.dataset} is not clean, 1 file(s) at fault (pages: 1 file(s))"


def test_a_truncated_file_is_caught_and_named(lake: Lake, tmp_path: pathlib.Path):
    target = lake.files("media")[0]
    with open(target, "r+b") as handle:
        handle.truncate(target.stat().st_size // 2)
    result = verify_cli("--bucket-url", str(lake.bucket), cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    lines = error_lines(result)
    assert len(lines) == 2 and lines[0].startswith(f"{target}: unreadable or truncated: "), result.stderr
    assert "media: stored cursor" in result.stdout and "not compared, 1 file(s) unreadable" in result.stdout


def test_a_duplicated_file_is_caught_and_both_copies_named(lake: Lake, tmp_path: pathlib.Path):
    original = lake.files("pages")[0]
    load_id = original.name.rsplit(".", 2)[0]
    copy = original.with_name(f"{load_id}.0123456789.parquet")  # another file of the same load
    shutil.copy(original, copy)
    rows = pq.read_metadata(original).num_rows
    result = verify_cli("--bucket-url", str(lake.bucket), cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    named = {line.split(": ", 1)[0]: line.split(": ", 1)[1] for line in error_lines(result)[:-1]}
    problem = f"{rows:,} row(s) whose version (id, modified_gmt) one run wrote twice (same dl_inserted_at)"
    assert named == {str(original): problem, str(copy): problem}, result.stderr


def test_no_lake_at_the_bucket_is_a_one_line_error(tmp_path: pathlib.Path):
    result = verify_cli("--bucket-url", str(tmp_path / "typo"), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: no lake at {tmp_path / 'typo'}/bulletin_raw; check --bucket-url"
    assert not (tmp_path / "typo").exists()


def test_an_endpoint_the_lake_never_held_is_named_not_passed_as_clean(lake: Lake, tmp_path: pathlib.Path):
    result = verify_cli("--bucket-url", str(lake.bucket), "--endpoints", "pages,posts", cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "posts: not in the lake: no file and no stored cursor (check --endpoints)" in result.stderr
    assert "not clean, 0 file(s) at fault (posts: not in the lake)" in result.stderr, result.stderr


# -- the other faults, through the library ------------------------------------------------------


def faults(report: VerifyReport) -> Dict[str, List[str]]:
    return {(f.file or f.table): f.problems for f in report.faults}


def test_the_report_counts_what_the_lake_holds_and_shows_progress(lake: Lake):
    seen: List[Tuple[int, int, int]] = []
    report = verify_lake(lake.settings(), progress=lambda *p: seen.append(p))
    assert report.clean and report.verdict() == "clean", report.faults
    tables = {t.table: t for t in report.tables}
    for name in ("pages", "media", "rejected"):
        assert (tables[name].files, tables[name].rows) == (len(lake.files(name)), len(lake.rows(name)))
    assert (tables["pages"].partitions, tables["media"].partitions) == (2, 1)
    files = sum(t.files for t in report.tables)
    assert [done for done, _, _ in seen] == list(range(1, files + 1))
    assert seen[-1] == (files, files, report.rows)


@pytest.mark.parametrize(
    "damage, problem",
    [
        ("not-json", "1 row(s) whose payload is not JSON"),
        ("other-id", "1 row(s) whose payload's id is not the row's id"),
    ],
)
def test_a_payload_that_is_not_json_or_names_another_id_is_caught(lake: Lake, damage: str, problem: str):
    target = lake.files("pages")[0]

    def edit_one(rows: Rows) -> None:
        record = json.loads(rows[0]["payload"])
        payload = '{"id": 1, "title": ' if damage == "not-json" else json.dumps({**record, "id": record["id"] + 1})
        rows[0]["payload"], rows[0]["dl_hash"] = payload, sha256(payload)  # the hash matches: only this check fails

    rewrite(target, edit_one)
    report = verify_lake(lake.settings())
    assert faults(report) == {f"{target}": [f"{problem} (first: id {pq.read_table(target)['id'][0]})"]}


def test_a_rejected_row_is_checked_too(lake: Lake):
    target = lake.files("rejected")[0]
    rewrite(target, lambda rows: rows[0].update(payload=rows[0]["payload"] + " "), schema=REJECTED_SCHEMA)
    report = verify_lake(lake.settings())
    assert list(faults(report)) == [str(target)]
    assert {t.table: t.bad_hash for t in report.tables} == {"pages": 0, "media": 0, "rejected": 1, "deleted": 0}


def test_a_file_with_other_columns_is_schema_drift(lake: Lake):
    target = lake.files("media")[0]
    table = pq.read_table(target)
    drifted = table.set_column(0, "id", table["id"].cast(pa.string())).append_column(
        "_dlt_id", pa.array(["x"] * table.num_rows)
    )
    pq.write_table(drifted, target)
    report = verify_lake(lake.settings())
    assert faults(report) == {str(target): ["schema drift: extra _dlt_id; id is string, not int64"]}
    assert {t.table: t.drift for t in report.tables} == {"pages": 0, "media": 1, "rejected": 0, "deleted": 0}


def test_a_file_of_a_load_that_never_completed_is_caught(lake: Lake):
    original = lake.files("media")[0]
    orphan = original.parent / "1234567890.123456.0123456789.parquet"
    shutil.move(original, orphan)
    report = verify_lake(lake.settings())
    assert faults(report) == {
        str(orphan): ["a file of load 1234567890.123456, which never completed (the next run removes it)"]
    }


def test_a_file_copied_into_another_completed_load_is_caught(lake: Lake):
    """Not a rewrite by a later run: the copy carries its run's dl_inserted_at."""
    original = next(f for f in lake.files("pages") if "load_date=2025-06-01" in str(f))
    later = next(f for f in lake.files("pages") if "load_date=2025-06-02" in str(f))
    copy = later.with_name(later.name.rsplit(".", 2)[0] + ".0123456789.parquet")
    shutil.copy(original, copy)
    report = verify_lake(lake.settings())
    rows = pq.read_metadata(original).num_rows
    problem = f"{rows:,} row(s) whose version (id, modified_gmt) one run wrote twice (same dl_inserted_at)"
    assert faults(report) == {str(original): [problem], str(copy): [problem]}
    assert {t.table: t.stored_twice for t in report.tables}["pages"] == rows


def test_a_cursor_past_every_record_the_lake_holds_is_caught(lake: Lake):
    """The second load held the newest page; without it the stored cursor passes data not in the lake."""
    newest = [f for f in lake.files("pages") if "load_date=2025-06-02" in str(f)]
    assert len(newest) == 1
    newest[0].unlink()
    report = verify_lake(lake.settings())
    pages = {t.table: t for t in report.tables}["pages"]
    assert pages.cursor is not None and pages.newest_modified is not None and pages.cursor > pages.newest_modified
    assert list(faults(report)) == ["pages"]
    assert faults(report)["pages"][0].startswith(f"the stored cursor {pages.cursor} is after the newest modified")


def test_versions_written_again_by_a_full_refresh_are_reported_not_faults(lake: Lake):
    lake.run(full_refresh=True, load_date="2025-06-03", load_time="10:00:00")
    report = verify_lake(lake.settings())
    assert report.clean, report.faults
    tables = {t.table: t for t in report.tables}
    for table in ("pages", "media"):
        again = sum(pq.read_metadata(f).num_rows for f in lake.files(table) if "load_date=2025-06-03" in str(f))
        assert tables[table].rewritten == again > 0
        assert tables[table].stored_twice == 0


# -- on S3 --------------------------------------------------------------------------------------


def test_verify_on_s3_clean_then_a_changed_payload_named(s3lake: S3Lake, tmp_path: pathlib.Path):  # noqa: F811
    s3lake.run()
    args = ["--bucket-url", s3lake.url, "--endpoints", "pages,media"]
    clean = verify_cli(*args, cwd=tmp_path)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    files, rows = len(s3lake.parquet_keys("pages")), len(s3lake.rows("pages"))
    assert re.search(rf"│ pages +│ +{files} │ +{rows:,} │", clean.stdout), clean.stdout

    key = s3lake.parquet_keys("media")[0]
    client = s3lake.moto.client
    table = pq.read_table(io.BytesIO(client.get_object(Bucket=s3lake.bucket_name, Key=key)["Body"].read()))
    payloads = table["payload"].to_pylist()
    payloads[-1] = payloads[-1].replace('"', "'", 2)
    changed = table.set_column(2, "payload", pa.array(payloads, pa.string()))
    buffer = io.BytesIO()
    pq.write_table(changed, buffer)
    client.put_object(Bucket=s3lake.bucket_name, Key=key, Body=buffer.getvalue())

    damaged = verify_cli(*args, cwd=tmp_path)
    assert damaged.returncode == 1, damaged.stdout + damaged.stderr
    first = f"(first: id {table['id'][-1]})"
    assert error_lines(damaged)[:-1] == [
        f"s3://{s3lake.bucket_name}/{key}: 1 row(s) whose dl_hash is not the SHA-256 of the payload {first}; "
        f"1 row(s) whose payload is not JSON {first}"
    ], damaged.stderr
