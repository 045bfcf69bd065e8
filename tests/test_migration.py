"""Coming over from the original: our first run continues its lake with no gap and no double load.

The original's last run is written in its exact format (tests/original.py) from what the simulator
serves; then our CLI runs against the same lake with no state of its own, and one DuckDB query
reads both pipelines' files together.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import pathlib
import shutil
import subprocess
import sys
from typing import Any, Dict, List, Optional, Tuple

import dlt
import duckdb
import httpx
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from dlt.pipeline.exceptions import PipelineStepFailed

from bulletin_pipeline import DATASET_NAME, PIPELINE_NAME, bulletin_destination, bulletin_source
from bulletin_pipeline.errors import ConfigError, cause_chain
from tests.simulator import Site

from .conftest import CLOCK, FAST_HTTP, Lake
from .original import FILE_NAME, write_original_partition
from .test_s3 import Moto, aws_env, moto, use_dlt_credentials  # noqa: F401 - moto's S3 server, no AWS env

ROOT = pathlib.Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "bulletin_pipeline" / "run.py"
ENDPOINTS = ("pages", "media")
OVERLAP = dt.timedelta(seconds=7200)


def served(base_url: str, endpoint: str) -> List[Dict[str, Any]]:
    """Every record the site lists, page by page, as the original fetched them."""
    records: List[Dict[str, Any]] = []
    page = 1
    while True:
        answer = httpx.get(f"{base_url}{endpoint}", params={"per_page": 100, "page": page}, timeout=10)
        answer.raise_for_status()
        records += answer.json()
        if page >= int(answer.headers["X-WP-TotalPages"]):
            return records
        page += 1


def original_run(lake: Lake, at: dt.datetime) -> Dict[str, bytes]:
    """The original's last run: one partition per endpoint; returns each file's bytes."""
    return {
        endpoint: write_original_partition(
            lake.dataset, endpoint, at, served(lake.server.base_url, endpoint)
        ).read_bytes()
        for endpoint in ENDPOINTS
    }


def run_cli(lake: Lake, *extra: str, base_url: Optional[str] = "") -> subprocess.CompletedProcess:
    """run.py on the lake; `extra` first (a command such as verify), `base_url=None` for none."""
    site = ["--base-url", base_url or lake.server.base_url] if base_url is not None else []
    args = [*extra, *site, "--bucket-url", str(lake.bucket), "--pipelines-dir", str(lake.pipelines_dir)]
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        cwd=lake.root,
        env={
            **os.environ,
            "SOURCES__BULLETIN__HTTP__BACKOFF_INITIAL": "0.01",
            "RUNTIME__DLTHUB_TELEMETRY": "false",
            "COLUMNS": "200",
        },
        capture_output=True,
        text=True,
        timeout=180,
    )


def lake_versions(lake: Lake) -> List[Tuple[str, int, str, str, bool, bool]]:
    """(endpoint, id, modified_gmt, file name, hash matches, dl_inserted_at read) of every row of
    both pipelines, in one DuckDB query (union_by_name: the original's timestamp has no zone)."""
    globs = [str(lake.dataset / endpoint / "*" / "*" / "*.parquet") for endpoint in ENDPOINTS]
    return duckdb.sql(
        f"""
        select regexp_extract(filename, '/bulletin_raw/([a-z]+)/', 1) as endpoint,
               id,
               json_extract_string(payload, '$.modified_gmt') as version,
               regexp_extract(filename, '[^/]+$') as file,
               dl_hash = sha256(payload) as hash_ok,
               dl_inserted_at is not null as inserted_ok
        from read_parquet({globs!r}, hive_partitioning = true, union_by_name = true, filename = true)
        """
    ).fetchall()


def assert_continued(lake: Lake, site: Site) -> Dict[Tuple[str, int, str], str]:
    """Every published version is in the lake exactly once, hash intact; returns version -> file."""
    rows = lake_versions(lake)
    where: Dict[Tuple[str, int, str], str] = {}
    doubled = []
    for endpoint, record_id, version, file, hash_ok, inserted_ok in rows:
        assert hash_ok and inserted_ok, f"{endpoint} {record_id}: dl_hash or dl_inserted_at unreadable in {file}"
        if (endpoint, record_id, version) in where:
            doubled.append((endpoint, record_id, version))
        where[(endpoint, record_id, version)] = file
    assert not doubled, f"{len(doubled)} versions written twice, e.g. {doubled[:3]}"
    for endpoint in ENDPOINTS:
        missing = {i: v for i, v in site.published_versions(endpoint).items() if (endpoint, i, v) not in where}
        assert not missing, f"{len(missing)} {endpoint} versions missing (a gap), e.g. {list(missing.items())[:3]}"
    return where


def test_our_first_run_continues_the_originals_lake(lake: Lake, site: Site):
    pages = sorted(site.published_versions("pages"))
    before, newest, same_second, later = pages[:4]
    site.edit("pages", before, at=CLOCK - dt.timedelta(minutes=30), title="Edited inside the overlap")
    site.edit("pages", newest, at=CLOCK, title="The original's newest modified")
    files = original_run(lake, CLOCK)

    # after the original's last run: a save in its newest second (its `modified_after` would skip
    # it forever), a later edit and a new page
    site.edit("pages", same_second, at=CLOCK, title="Saved in the same second, after the original read")
    site.set_clock(CLOCK + dt.timedelta(hours=2))
    site.edit("pages", later, at=CLOCK + dt.timedelta(hours=1), title="Edited later")
    created = site.create("pages", at=CLOCK + dt.timedelta(hours=1), title="Created later")

    done = run_cli(lake)
    assert done.returncode == 0, done.stderr
    cursor = site.local(CLOCK)
    assert f"pages: read modified after {site.local(CLOCK - OVERLAP)}" in done.stdout, done.stdout
    assert f"continuing the lake from {cursor}" in done.stdout, done.stdout

    where = assert_continued(lake, site)
    ours = {key for key, file in where.items() if file != FILE_NAME}
    assert ours == {
        ("pages", same_second, site.published_versions("pages")[same_second]),
        ("pages", later, site.published_versions("pages")[later]),
        ("pages", created, site.published_versions("pages")[created]),
    }, "ours writes exactly the versions the original's lake lacks"
    for endpoint, content in files.items():
        partition = lake.dataset / endpoint / f"load_date={CLOCK:%Y-%m-%d}" / f"load_time={CLOCK:%H:%M:%S}"
        assert (partition / FILE_NAME).read_bytes() == content, f"the original's {endpoint} file is untouched"

    again = run_cli(lake)
    assert again.returncode == 0, again.stderr
    assert "0 records loaded" in again.stdout and "continuing the lake" not in again.stdout, again.stdout


def test_verify_checks_the_originals_files_by_their_own_columns(lake: Lake, site: Site):
    original_run(lake, CLOCK - dt.timedelta(days=1))
    site.edit("pages", sorted(site.published_versions("pages"))[0], at=CLOCK - dt.timedelta(hours=1))
    original_run(lake, CLOCK)  # it re-read the day it started from: versions written again, not faults
    site.edit("pages", sorted(site.published_versions("pages"))[1], at=CLOCK + dt.timedelta(minutes=1))
    site.set_clock(CLOCK + dt.timedelta(hours=1))
    assert run_cli(lake).returncode == 0

    clean = run_cli(lake, "verify", base_url=None)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "pages: 2 file(s) of the original pipeline" in clean.stdout, clean.stdout
    assert "version(s) written again" in clean.stdout and "clean" in clean.stdout, clean.stdout

    damaged = next((lake.dataset / "media").rglob(FILE_NAME))
    table = pq.read_table(damaged)
    payloads = table["payload"].to_pylist()
    payloads[0] = payloads[0].replace('"id"', '"id" ', 1)  # same record, other bytes: the hash no longer holds
    pq.write_table(table.set_column(2, table.schema.field(2), pa.array(payloads, pa.large_string())), damaged)
    faulty = run_cli(lake, "verify", base_url=None)
    assert faulty.returncode == 1, faulty.stdout + faulty.stderr
    assert f"{FILE_NAME}: 1 row(s) whose dl_hash is not the SHA-256" in faulty.stderr, faulty.stderr
    assert "never completed" not in faulty.stderr and "drift" not in faulty.stderr, faulty.stderr


def test_a_lake_of_ours_whose_state_is_lost_is_continued_too(lake: Lake, site: Site):
    original_run(lake, CLOCK - dt.timedelta(days=30))
    site.edit("pages", sorted(site.published_versions("pages"))[0], at=CLOCK - dt.timedelta(hours=1))
    first = run_cli(lake)
    assert first.returncode == 0 and "1 records loaded" in first.stdout, first.stdout + first.stderr
    # the state is gone: the local folder and the lake's copies of it (the loads stay: the data is whole)
    shutil.rmtree(lake.pipelines_dir)
    for state in (lake.dataset / "_dlt_pipeline_state").iterdir():
        state.unlink()
    edited = sorted(site.published_versions("pages"))[1]
    site.edit("pages", edited, at=CLOCK - dt.timedelta(minutes=10))

    done = run_cli(lake)
    assert done.returncode == 0, done.stderr
    # the cursor is the newest `modified` in our own partition: the edit an hour before CLOCK
    assert f"continuing the lake from {site.local(CLOCK - dt.timedelta(hours=1))}" in done.stdout, done.stdout
    assert "1 records loaded" in done.stdout, done.stdout
    assert_continued(lake, site)


def test_the_originals_s3_prefix_is_continued(
    lake: Lake,
    site: Site,
    moto: Moto,  # noqa: F811 - the fixture imported above
    aws_env: pytest.MonkeyPatch,  # noqa: F811
):
    """The original uploads to s3://<bucket>/bulletin_raw/...: `--bucket-url s3://<bucket>` continues it."""
    use_dlt_credentials(aws_env, moto)
    bucket = moto.create_bucket()
    newest = sorted(site.published_versions("pages"))[0]
    site.edit("pages", newest, at=CLOCK)
    for endpoint, content in original_run(lake, CLOCK).items():
        key = f"bulletin_raw/{endpoint}/load_date={CLOCK:%Y-%m-%d}/load_time={CLOCK:%H:%M:%S}/{FILE_NAME}"
        moto.client.put_object(Bucket=bucket, Key=key, Body=content)
    edited = sorted(site.published_versions("pages"))[1]
    site.edit("pages", edited, at=CLOCK + dt.timedelta(minutes=5))

    summary = lake.run(bucket_url=f"s3://{bucket}")
    by_endpoint = {e.endpoint: e for e in summary.endpoints}
    assert by_endpoint["pages"].mode == "continuation" and by_endpoint["media"].mode == "continuation"
    assert (by_endpoint["pages"].loaded, by_endpoint["media"].loaded) == (1, 0)
    assert by_endpoint["pages"].duplicates_skipped >= 1, "the original's newest version was re-read and dropped"

    fs = moto.filesystem()
    for endpoint in ENDPOINTS:
        rows = ds.dataset(f"{bucket}/bulletin_raw/{endpoint}", filesystem=fs, format="parquet").to_table(
            columns=["id", "payload"]
        )
        versions = [
            (i, json.loads(p)["modified_gmt"])
            for i, p in zip(rows["id"].to_pylist(), rows["payload"].to_pylist(), strict=True)
        ]
        assert len(versions) == len(set(versions)), f"{endpoint}: a version written twice"
        assert set(site.published_versions(endpoint).items()) <= set(versions), f"{endpoint}: a gap"


def test_a_plain_dlt_run_on_the_originals_lake_stops_before_writing_it_twice(lake: Lake, site: Site):
    """dlt binds the window before any of our code runs in `pipeline.run(bulletin_source())`, so only
    run_pipeline (the CLI) can continue the lake; a plain run must not read it all again."""
    files = original_run(lake, CLOCK)
    pipeline = dlt.pipeline(
        PIPELINE_NAME,
        destination=bulletin_destination(str(lake.bucket)),
        dataset_name=DATASET_NAME,
        pipelines_dir=str(lake.pipelines_dir),
    )
    with pytest.raises(PipelineStepFailed) as caught:
        pipeline.run(bulletin_source(base_url=lake.server.base_url, http=FAST_HTTP))
    message = str(next(e for e in cause_chain(caught.value) if isinstance(e, ConfigError)))
    assert "the lake already holds pages" in message and "run_pipeline" in message, message
    written = sorted(p.name for p in lake.dataset.rglob("*.parquet"))
    assert written == [FILE_NAME, FILE_NAME], f"nothing written beside the original's files: {written}"

    done = run_cli(lake)  # the way the error names
    assert done.returncode == 0 and "continuing the lake" in done.stdout, done.stdout + done.stderr
    assert_continued(lake, site)
    assert pipeline.run(bulletin_source(base_url=lake.server.base_url, http=FAST_HTTP))
    assert_continued(lake, site)
    assert {
        e: (lake.dataset / e / f"load_date={CLOCK:%Y-%m-%d}" / f"load_time={CLOCK:%H:%M:%S}" / FILE_NAME).read_bytes()
        for e in ENDPOINTS
    } == files
