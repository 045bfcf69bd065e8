"""The lake on S3: moto's server on loopback stands in for S3 (real HTTP, real SigV4 signatures).

One moto server per module, a fresh bucket per test. The loader's key belongs to an IAM user on
that server, so the credential tests can switch moto's IAM checks on and prove which key a run
signed with; with the checks off (the default) moto accepts any key.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import sys
import uuid
from typing import Any, Dict, Iterator, List, Tuple

import boto3
import httpx
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
import s3fs
from botocore.exceptions import ClientError
from moto.server import ThreadedMotoServer

from bulletin_pipeline.destination import DATASET_NAME
from bulletin_pipeline.errors import DestinationError
from bulletin_pipeline.pipeline import PIPELINE_NAME
from bulletin_pipeline.reconcile import reconcile
from bulletin_pipeline.retention import cleanup_partitions
from tests.simulator import Site, seed_site

from .conftest import CLOCK, Lake, assert_lake_has
from .test_recovery import assert_every_version_once, kill_during_load

ROOT = pathlib.Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "bulletin_pipeline" / "run.py"
PREFIX = "prefix"
REGION = "us-east-1"
LATER = CLOCK + dt.timedelta(hours=1)
PARQUET_KEY = re.compile(
    rf"{PREFIX}/{DATASET_NAME}/(?P<table>[a-z_]+)/load_date=(?P<date>\d{{4}}-\d\d-\d\d)/"
    r"load_time=(?P<time>\d\d:\d\d:\d\d)/(?P<load_id>\d+\.\d+)\.(?P<file_id>[0-9a-f]+)\.parquet"
)
# everything botocore's default chain could pick up from this machine instead of the test's values
AMBIENT_AWS = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_MAX_ATTEMPTS",
)
DLT_CREDENTIALS = "DESTINATION__FILESYSTEM__CREDENTIALS__"


class Moto:
    """moto's S3 (and IAM) on 127.0.0.1, with the loader's IAM key and a boto3 client for checks."""

    def __init__(self, endpoint: str, key: str, secret: str) -> None:
        self.endpoint = endpoint
        self.key = key
        self.secret = secret
        self.client = boto3.client(
            "s3", endpoint_url=endpoint, aws_access_key_id=key, aws_secret_access_key=secret, region_name=REGION
        )

    def create_bucket(self) -> str:
        name = f"lake-{uuid.uuid4().hex[:12]}"
        self.client.create_bucket(Bucket=name)
        return name

    def bucket_exists(self, name: str) -> bool:
        return name in {b["Name"] for b in self.client.list_buckets()["Buckets"]}

    def objects(self, bucket: str, prefix: str = "") -> Dict[str, str]:
        """key -> ETag of every object under prefix."""
        out: Dict[str, str] = {}
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            out.update({o["Key"]: o["ETag"] for o in page.get("Contents", [])})
        return out

    def filesystem(self) -> s3fs.S3FileSystem:
        """A fresh s3fs client: no cached instance, no cached listings from an earlier read."""
        return s3fs.S3FileSystem(
            endpoint_url=self.endpoint,
            key=self.key,
            secret=self.secret,
            skip_instance_cache=True,
            use_listings_cache=False,
        )

    def enforce_iam(self, on: bool) -> None:
        """moto's server-mode switch: check every request's signature and IAM policy (or none)."""
        response = httpx.post(f"{self.endpoint}/moto-api/reset-auth", content=b"0" if on else b"inf")
        response.raise_for_status()


class S3Lake(Lake):
    """conftest's Lake with the lake at s3://<bucket>/prefix; pipelines_dir stays local."""

    def __init__(self, root: pathlib.Path, server: Any, moto: Moto, bucket: str) -> None:
        super().__init__(root, server)
        self.moto = moto
        self.bucket_name = bucket
        self.url = f"s3://{bucket}/{PREFIX}"

    def settings(self, **overrides: Any):
        overrides.setdefault("bucket_url", self.url)
        return super().settings(**overrides)

    def objects(self, under: str = "") -> Dict[str, str]:
        return self.moto.objects(self.bucket_name, f"{PREFIX}/{DATASET_NAME}/{under}")

    def parquet_keys(self, table: str = "pages") -> List[str]:
        return sorted(k for k in self.objects(f"{table}/") if k.endswith(".parquet"))

    def rows(self, table: str = "pages") -> List[Dict[str, Any]]:
        fs = self.moto.filesystem()
        folder = f"{self.bucket_name}/{PREFIX}/{DATASET_NAME}/{table}"
        if not fs.exists(folder):
            return []
        return ds.dataset(folder, filesystem=fs, format="parquet", partitioning="hive").to_table().to_pylist()


@pytest.fixture
def site() -> Site:
    """Smaller than conftest's: S3 round trips are under test here, not volume (pages still span
    two API pages)."""
    site = Site(clock=lambda: CLOCK)
    seed_site(site, pages=130, media=40, seed=7, body_kb=1)
    return site


@pytest.fixture(scope="module")
def moto() -> Iterator[Moto]:
    werkzeug = logging.getLogger("werkzeug")
    level = werkzeug.level
    werkzeug.setLevel(logging.WARNING)  # not one access-log line per S3 request in failure reports
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    try:
        iam = boto3.client(
            "iam", endpoint_url=endpoint, aws_access_key_id="setup", aws_secret_access_key="setup", region_name=REGION
        )
        iam.create_user(UserName="bulletin-loader")
        policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
        iam.put_user_policy(UserName="bulletin-loader", PolicyName="lake", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName="bulletin-loader")["AccessKey"]
        yield Moto(endpoint, key["AccessKeyId"], key["SecretAccessKey"])
    finally:
        httpx.post(f"{endpoint}/moto-api/reset-auth", content=b"inf")
        httpx.post(f"{endpoint}/moto-api/reset")  # moto's backends live in this process
        server.stop()
        werkzeug.setLevel(level)


@pytest.fixture
def iam_enforced(moto: Moto) -> Iterator[None]:
    moto.enforce_iam(True)
    try:
        stranger = boto3.client(
            "s3",
            endpoint_url=moto.endpoint,
            aws_access_key_id="AKIASTRANGER",
            aws_secret_access_key="x",
            region_name=REGION,
        )
        with pytest.raises(ClientError, match="InvalidAccessKeyId"):
            stranger.list_buckets()
        yield
    finally:
        moto.enforce_iam(False)


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> pytest.MonkeyPatch:
    """No credentials from this machine: no AWS_* variables, no ~/.aws files, no instance metadata."""
    for name in AMBIENT_AWS:
        monkeypatch.delenv(name, raising=False)
    for name in [n for n in os.environ if n.startswith("DESTINATION__")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws" / "credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws" / "config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("RUNTIME__DLTHUB_TELEMETRY", "false")
    return monkeypatch


def use_dlt_credentials(env: pytest.MonkeyPatch, moto: Moto, key: str = "", secret: str = "") -> None:
    env.setenv(DLT_CREDENTIALS + "AWS_ACCESS_KEY_ID", key or moto.key)
    env.setenv(DLT_CREDENTIALS + "AWS_SECRET_ACCESS_KEY", secret or moto.secret)
    env.setenv(DLT_CREDENTIALS + "REGION_NAME", REGION)
    env.setenv(DLT_CREDENTIALS + "ENDPOINT_URL", moto.endpoint)


def use_aws_credentials(env: pytest.MonkeyPatch, moto: Moto) -> None:
    """Plain AWS variables (botocore's default chain); only the endpoint goes through dlt's config."""
    env.setenv("AWS_ACCESS_KEY_ID", moto.key)
    env.setenv("AWS_SECRET_ACCESS_KEY", moto.secret)
    env.setenv(DLT_CREDENTIALS + "ENDPOINT_URL", moto.endpoint)


@pytest.fixture
def s3lake(tmp_path: pathlib.Path, server: Any, moto: Moto, aws_env: pytest.MonkeyPatch) -> S3Lake:
    """A fresh bucket, the loader's key in dlt's config variables."""
    use_dlt_credentials(aws_env, moto)
    return S3Lake(tmp_path, server, moto, moto.create_bucket())


def list_requests(server: Any) -> list:
    return [r for r in server.request_log if r.path.endswith(("/pages", "/media"))]


def closed_loopback_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def subprocess_env(**extra: str) -> Dict[str, str]:
    return {
        **os.environ,
        "SOURCES__BULLETIN__HTTP__BACKOFF_INITIAL": "0.01",
        "RUNTIME__DLTHUB_TELEMETRY": "false",
        "COLUMNS": "200",
        **extra,
    }


def run_script(*args: str, cwd: pathlib.Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        cwd=cwd,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=180,
    )


def dlt_pipeline_commands(pipelines_dir: pathlib.Path, *commands: str, cwd: pathlib.Path) -> List[Tuple[int, str, str]]:
    """`dlt pipeline --pipelines-dir D bulletin_pipeline <command>` for each command, run side by side
    (each one spends seconds importing dlt): [(returncode, stdout, stderr)]."""
    dlt = pathlib.Path(sys.executable).with_name("dlt")
    procs = [
        subprocess.Popen(
            [str(dlt), "pipeline", "--pipelines-dir", str(pipelines_dir), PIPELINE_NAME, command],
            cwd=cwd,
            env=subprocess_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for command in commands
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        results.append((proc.returncode, out, err))
    return results


def assert_one_line(error: BaseException, *needles: str) -> str:
    message = str(error)
    assert message and "\n" not in message, repr(message)
    for needle in needles:
        assert needle in message, f"{needle!r} not in {message!r}"
    return message


# -- 1. layout and contents -------------------------------------------------------------------


def test_s3_lake_has_the_layout_schema_and_every_published_record(s3lake: S3Lake, site: Site):
    summary = s3lake.run()
    assert summary.dataset_path == f"{s3lake.url}/{DATASET_NAME}"
    keys = s3lake.parquet_keys("pages")
    assert keys, s3lake.objects()
    date, time = re.fullmatch(r"load_date=(.+)/load_time=(.+)", summary.partition).groups()  # type: ignore[union-attr]
    for key in keys:
        match = PARQUET_KEY.fullmatch(key)
        assert match, key
        found = (match["table"], match["date"], match["time"], match["load_id"])
        assert found == ("pages", date, time, summary.load_id), key
    assert {e.endpoint: e.files for e in summary.endpoints}["pages"] == len(keys)

    fs = s3lake.moto.filesystem()
    for key in keys:
        with fs.open(f"{s3lake.bucket_name}/{key}", "rb") as handle:
            schema = pq.ParquetFile(handle).schema_arrow
        assert schema.names == ["id", "dl_inserted_at", "payload", "dl_hash"]
        assert [str(t) for t in schema.types] == ["int64", "timestamp[us, tz=UTC]", "string", "string"]

    for table in ("pages", "media"):
        rows = s3lake.rows(table)
        ids = [r["id"] for r in rows]
        assert len(ids) == len(set(ids)), f"duplicate rows in {table}"
        assert set(ids) == set(site.published_versions(table))
        assert_lake_has(s3lake, site, table)
        assert {e.endpoint: e.loaded for e in summary.endpoints}[table] == len(rows)
        for row in rows:
            assert row["dl_hash"] == hashlib.sha256(row["payload"].encode("utf-8")).hexdigest()
            assert (str(row["load_date"]), row["load_time"]) == (date, time), "hive partition values"
    other = [k for k in s3lake.moto.objects(s3lake.bucket_name) if not k.startswith(f"{PREFIX}/{DATASET_NAME}/")]
    assert not other, f"written outside the prefix: {other}"
    assert not [k for k in s3lake.objects() if "_bulletin_preflight" in k], "the preflight probe is removed"


# -- 2. credentials both ways -----------------------------------------------------------------


@pytest.mark.parametrize("route", ["dlt-config", "aws-env"])
def test_credentials_from_dlt_config_or_the_aws_environment(
    route: str, tmp_path, server, site: Site, moto: Moto, aws_env: pytest.MonkeyPatch, iam_enforced
):
    """moto checks every signature here: the load succeeds only if the run signed with the loader's key."""
    if route == "dlt-config":
        use_dlt_credentials(aws_env, moto)
    else:
        use_aws_credentials(aws_env, moto)
    lake = S3Lake(tmp_path, server, moto, moto.create_bucket())
    summary = lake.run(endpoints=["pages"])
    assert summary.loaded == len(site.published_versions("pages")) > 0
    assert lake.parquet_keys("pages")
    assert_lake_has(lake, site, "pages")


# -- 3. a destination that cannot be written: one line, before any page is fetched -----------


@pytest.mark.parametrize("region", ["us-east-1", "eu-west-1"])
def test_missing_bucket_fails_first_and_is_never_created(s3lake: S3Lake, moto: Moto, aws_env, region: str):
    aws_env.setenv(DLT_CREDENTIALS + "REGION_NAME", region)
    missing = f"missing-{uuid.uuid4().hex[:12]}"
    url = f"s3://{missing}/{PREFIX}"
    with pytest.raises(DestinationError) as err:
        s3lake.run(bucket_url=url)
    assert_one_line(err.value, url, "does not exist")
    assert not list_requests(s3lake.server), "a page was fetched before the destination was checked"
    assert not moto.bucket_exists(missing), "a run must never create the bucket"


@pytest.mark.parametrize("wrong", ["unknown key id", "wrong secret"])
def test_rejected_credentials_fail_first_in_one_line(
    wrong: str, tmp_path, server, moto: Moto, aws_env: pytest.MonkeyPatch, iam_enforced
):
    if wrong == "unknown key id":
        use_dlt_credentials(aws_env, moto, key="AKIANOTAKEYOFOURS000")
    else:
        use_dlt_credentials(aws_env, moto, secret="not-the-secret")
    lake = S3Lake(tmp_path, server, moto, moto.create_bucket())
    with pytest.raises(DestinationError) as err:
        lake.run()
    assert_one_line(err.value, lake.url, "credentials were rejected", "AWS_SECRET_ACCESS_KEY")
    assert not list_requests(server), "a page was fetched before the destination was checked"
    assert not lake.objects(), "nothing may be written with rejected credentials"


def test_missing_credentials_fail_first_in_one_line(tmp_path, server, moto: Moto, aws_env: pytest.MonkeyPatch):
    aws_env.setenv(DLT_CREDENTIALS + "ENDPOINT_URL", moto.endpoint)  # an endpoint, but no key anywhere
    lake = S3Lake(tmp_path, server, moto, moto.create_bucket())
    with pytest.raises(DestinationError) as err:
        lake.run()
    assert_one_line(err.value, lake.url, "credentials", "AWS_ACCESS_KEY_ID")
    assert not list_requests(server), "a page was fetched before the destination was checked"
    assert not lake.objects()


def test_unreachable_endpoint_fails_first_in_one_line(s3lake: S3Lake, aws_env: pytest.MonkeyPatch):
    port = closed_loopback_port()
    aws_env.setenv(DLT_CREDENTIALS + "ENDPOINT_URL", f"http://127.0.0.1:{port}")
    aws_env.setenv("AWS_MAX_ATTEMPTS", "1")  # botocore's retries only make this test slow
    with pytest.raises(DestinationError) as err:
        s3lake.run()
    assert_one_line(err.value, s3lake.url, f"127.0.0.1:{port}")
    assert not list_requests(s3lake.server), "a page was fetched before the destination was checked"


# -- 4. the state lives on the lake: a wiped runner resumes ----------------------------------


def test_wiped_runner_resumes_from_the_state_on_s3(s3lake: S3Lake, site: Site):
    first = s3lake.run()
    before = len(s3lake.rows("pages"))
    cursor = {e.endpoint: e.cursor_after for e in first.endpoints}["pages"]
    shutil.rmtree(s3lake.pipelines_dir)  # a fresh runner: nothing local
    edited = sorted(site.published_versions("pages"))[20:23]
    for offset, page_id in enumerate(edited):
        site.edit("pages", page_id, at=LATER + dt.timedelta(seconds=offset), title=f"Edited {page_id}")
    summary = s3lake.run()
    pages = {e.endpoint: e for e in summary.endpoints}["pages"]
    assert pages.mode == "incremental", "the state was not restored from S3: this is a full reload"
    assert pages.cursor_before == cursor
    assert (pages.loaded, summary.loaded) == (3, 3)
    rows = s3lake.rows("pages")
    assert len(rows) == before + 3
    later = LATER.strftime("%Y-%m-%dT%H")
    assert sorted(r["id"] for r in s3lake.records("pages") if r["modified_gmt"] >= later) == edited
    assert_lake_has(s3lake, site, "pages")  # no gap


def test_wiped_runner_with_if_changed_and_no_edits_writes_nothing(s3lake: S3Lake, site: Site):
    s3lake.run()
    objects = s3lake.moto.objects(s3lake.bucket_name)
    shutil.rmtree(s3lake.pipelines_dir)
    summary = s3lake.run(if_changed=True)
    assert summary.load_id is None and summary.loaded == 0
    assert set(summary.skipped) == {"pages", "media"}, summary.skipped
    assert all(e.mode == "unchanged" for e in summary.endpoints)
    assert s3lake.moto.objects(s3lake.bucket_name) == objects, "no new (or rewritten) objects"


def test_a_fresh_runner_after_a_kill_during_load_to_s3_writes_every_version_once(
    s3lake: S3Lake, site: Site, tmp_path: pathlib.Path
):
    args = ["--base-url", s3lake.server.base_url, "--bucket-url", s3lake.url]
    args += ["--pipelines-dir", str(s3lake.pipelines_dir)]
    code = kill_during_load(args, tmp_path, lambda: bool(s3lake.parquet_keys("pages")))
    assert code == -signal.SIGKILL
    left = sorted(k for k in s3lake.objects() if k.endswith(".parquet"))
    assert left and not s3lake.objects("_dlt_loads/"), "the kill should land inside the load step"
    shutil.rmtree(s3lake.pipelines_dir)  # a fresh runner, as on CI
    rerun = run_script(*args, cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    keys = sorted(k for k in s3lake.objects() if k.endswith(".parquet"))
    assert not set(left) & set(keys)
    fs = s3lake.moto.filesystem()
    assert all(pq.read_table(f"{s3lake.bucket_name}/{key}", filesystem=fs).num_rows for key in keys)
    assert_every_version_once(s3lake, site)
    assert f"removed {len(left)} file(s) of loads that never completed" in rerun.stdout, rerun.stdout


# -- 5. dlt's own CLI on an S3 run ------------------------------------------------------------


def test_cli_run_to_s3_then_dlt_info_and_trace(s3lake: S3Lake, tmp_path):
    result = run_script(
        "--base-url",
        s3lake.server.base_url,
        "--bucket-url",
        s3lake.url,
        "--pipelines-dir",
        str(s3lake.pipelines_dir),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert re.search(r"pages\s+│\s+initial\s+│\s+\d+", result.stdout), result.stdout
    assert f"data: {s3lake.url}/{DATASET_NAME}/<endpoint>/load_date=" in result.stdout, result.stdout
    keys = s3lake.parquet_keys("pages")
    assert keys and all(PARQUET_KEY.fullmatch(k) for k in keys), keys
    (info_rc, info, info_err), (trace_rc, trace, trace_err) = dlt_pipeline_commands(
        s3lake.pipelines_dir, "info", "trace", cwd=tmp_path
    )
    assert info_rc == 0, info_err
    assert PIPELINE_NAME in info and DATASET_NAME in info, info
    assert trace_rc == 0, trace_err
    assert PIPELINE_NAME in trace and "extract" in trace and "load" in trace, trace


# -- 6. retention on S3 -----------------------------------------------------------------------


def three_dated_loads(lake: S3Lake, site: Site) -> None:
    """pages gets a partition on 2024-01-01, -01-05 and -03-01; media only on 2024-01-01."""
    lake.run(load_date="2024-01-01", load_time="10:00:00")
    site.edit("pages", sorted(site.published_versions("pages"))[0], at=LATER)
    lake.run(load_date="2024-01-05", load_time="10:00:00")
    site.edit("pages", sorted(site.published_versions("pages"))[1], at=LATER + dt.timedelta(hours=1))
    lake.run(load_date="2024-03-01", load_time="10:00:00")


def dlt_objects(lake: S3Lake) -> Dict[str, str]:
    return {k: v for k, v in lake.objects().items() if k.split("/")[2].startswith("_dlt") or k.endswith("/init")}


def partition_dates(lake: S3Lake, table: str) -> List[str]:
    return sorted({PARQUET_KEY.fullmatch(k)["date"] for k in lake.parquet_keys(table)})  # type: ignore[index]


def test_cleanup_on_s3_lists_then_removes_old_partitions_as_a_library_and_from_the_cli(
    s3lake: S3Lake, site: Site, tmp_path
):
    three_dated_loads(s3lake, site)
    assert partition_dates(s3lake, "pages") == ["2024-01-01", "2024-01-05", "2024-03-01"]
    assert partition_dates(s3lake, "media") == ["2024-01-01"]
    bookkeeping = dlt_objects(s3lake)
    assert any("/_dlt_pipeline_state/" in k for k in bookkeeping) and any("/_dlt_loads/" in k for k in bookkeeping)
    base = f"{s3lake.bucket_name}/{PREFIX}/{DATASET_NAME}/pages"
    first, second = (f"{base}/load_date={day}/load_time=10:00:00" for day in ("2024-01-01", "2024-01-05"))
    settings = s3lake.settings()
    everything = s3lake.objects()

    # library, on 2024-03-10: 30 days lists both old pages partitions, never media's only one
    listed = cleanup_partitions(settings, retain_days=30, remove_them=False, today=dt.date(2024, 3, 10))
    assert sorted((p.table, str(p.load_date), p.path) for p in listed) == [
        ("pages", "2024-01-01", first),
        ("pages", "2024-01-05", second),
    ]
    assert s3lake.objects() == everything, "listing must not remove anything"
    # 66 days on 2024-03-10 (cutoff 2024-01-04): only the first partition goes
    removed = cleanup_partitions(settings, retain_days=66, remove_them=True, today=dt.date(2024, 3, 10))
    assert [(p.table, p.path) for p in removed] == [("pages", first)]
    assert partition_dates(s3lake, "pages") == ["2024-01-05", "2024-03-01"]
    assert partition_dates(s3lake, "media") == ["2024-01-01"], "the newest partition of an endpoint is kept"
    assert dlt_objects(s3lake) == bookkeeping, "dlt's folders are never touched"
    everything = s3lake.objects()

    # the CLI (today's date), without then with --yes
    args = ["cleanup", "--retain-days", "30", "--bucket-url", s3lake.url, "--pipelines-dir", str(s3lake.pipelines_dir)]
    listing = run_script(*args, cwd=tmp_path)
    assert listing.returncode == 0, listing.stderr
    assert re.findall(r"^would remove (\S+)$", listing.stdout, re.M) == [second], listing.stdout
    assert "1 partition(s) older than 30 day(s) expired" in listing.stdout
    assert s3lake.objects() == everything, "without --yes nothing is removed"
    removal = run_script(*args, "--yes", cwd=tmp_path)
    assert removal.returncode == 0, removal.stderr
    assert re.findall(r"^removed (\S+)$", removal.stdout, re.M) == [second], removal.stdout
    assert "1 partition(s) older than 30 day(s) removed" in removal.stdout
    assert partition_dates(s3lake, "pages") == ["2024-03-01"]
    assert partition_dates(s3lake, "media") == ["2024-01-01"]
    assert dlt_objects(s3lake) == bookkeeping
    # the lake still resumes from its state after the cleanup
    assert {e.endpoint: e.mode for e in s3lake.run().endpoints}["pages"] == "incremental"


def test_deletion_sweep_and_reconcile_repair_on_s3(s3lake: S3Lake, site: Site):
    s3lake.run()
    gone = sorted(site.published_versions("pages"))[0]
    site.delete("pages", gone)
    summary = s3lake.run(sweep_deletions=True)
    assert {e: d.tombstones for e, d in summary.deletions.items()} == {"pages": 1, "media": 0}
    assert [(r["endpoint"], r["id"], r["load_date"]) for r in s3lake.rows("deleted")] == [
        ("pages", gone, summary.partition.split("/")[0].split("=")[1])
    ]
    key = s3lake.parquet_keys("pages")[0]
    s3lake.moto.client.delete_object(Bucket=s3lake.bucket_name, Key=key)  # the pages of the first run
    report = reconcile(s3lake.settings())
    assert not report.in_step and len(report.endpoints[0].missing) == len(site.published_versions("pages"))
    assert reconcile(s3lake.settings(), repair=True).in_step
    assert reconcile(s3lake.settings()).in_step
    assert_lake_has(s3lake, site, "pages")
    assert len(s3lake.rows("deleted")) == 1
