"""Two runs at once on one lake: the lake lock (bulletin_pipeline/lock.py).

Run A is the CLI in a subprocess against its own simulator whose list answers wait until the test
lets them go, so A is mid-run (lock held, pages in flight) for exactly as long as the test needs;
run B reads the same site through the usual `server` fixture.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import pathlib
import socket
import subprocess
import sys
import threading
from typing import Any, Dict, Tuple

import fsspec
import pytest

from bulletin_pipeline.errors import LakeLocked
from bulletin_pipeline.lock import LOCK_NAME, LakeLock
from bulletin_pipeline.pipeline import make_pipeline, stored_cursor
from tests.simulator import SimulatorServer, Site

from .conftest import Lake, assert_lake_has
from .test_s3 import S3Lake, aws_env, moto, s3lake  # noqa: F401 - the S3 fixtures, by name below

ROOT = pathlib.Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "bulletin_pipeline" / "run.py"
SITE_ID = "test-site"


class HeldRun:
    """Run A: the CLI against a simulator that holds every list request until `finish()`."""

    def __init__(self, site: Site, bucket_url: str, pipelines_dir: pathlib.Path, cwd: pathlib.Path, **env: str):
        self.started = threading.Event()
        self.gate = threading.Event()
        self.server = SimulatorServer(site)
        self.server.before_request = self._hold
        self.args = ["--base-url", "", "--bucket-url", bucket_url, "--pipelines-dir", str(pipelines_dir)]
        self.cwd = cwd
        self.env = {
            **os.environ,
            "SOURCES__BULLETIN__SITE_ID": SITE_ID,
            "SOURCES__BULLETIN__DIGEST_WORKERS": "0",
            "SOURCES__BULLETIN__HTTP__BACKOFF_INITIAL": "0.01",
            "RUNTIME__DLTHUB_TELEMETRY": "false",
            **env,
        }
        self.proc: Any = None

    def _hold(self, collection: str, params: Dict[str, Any]) -> None:
        self.started.set()
        self.gate.wait(timeout=25)  # below the client's 30 s request timeout

    def __enter__(self) -> HeldRun:
        self.server.__enter__()
        self.args[1] = self.server.base_url
        self.proc = subprocess.Popen(
            [sys.executable, str(SCRIPT), *self.args],
            cwd=self.cwd,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        if not self.started.wait(timeout=120):
            self.proc.kill()
            out, err = self.proc.communicate()
            raise AssertionError(f"run A never reached the site: {err or out}")
        return self

    def finish(self) -> Tuple[int, str, str]:
        self.gate.set()
        out, err = self.proc.communicate(timeout=180)
        return self.proc.returncode, out, err

    def __exit__(self, *exc: Any) -> None:
        self.gate.set()
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()
        self.server.__exit__(*exc)


def local_files(root: pathlib.Path) -> Dict[str, Tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


def assert_exactly_once(lake: Lake, site: Site) -> None:
    for table in ("pages", "media"):
        ids = [r["id"] for r in lake.rows(table)]
        assert len(ids) == len(set(ids)), f"{len(ids) - len(set(ids))} duplicate versions in {table}"
        assert set(ids) == set(site.published_versions(table))
        assert_lake_has(lake, site, table)


def assert_lock_message(message: str, holder_pid: int, lock_url: str) -> None:
    assert "\n" not in message, repr(message)
    assert f"locked by {socket.gethostname()} pid {holder_pid}" in message, message
    assert " since " in message and " until " in message, message
    assert lock_url in message and "remove" in message, message


def lock_record(expires: dt.datetime, token: str = "0" * 32) -> bytes:
    return json.dumps(
        {
            "host": "gone-runner",
            "pid": 4242,
            "token": token,
            "acquired_at": (expires - dt.timedelta(minutes=30)).isoformat(),
            "expires_at": expires.isoformat(),
        }
    ).encode()


# -- (a) two runs at once on one local lake -------------------------------------------------------


def test_second_run_on_a_locked_local_lake_stops_and_writes_nothing(lake: Lake, site: Site, tmp_path):
    with HeldRun(site, str(lake.bucket), tmp_path / "pipelines-a", tmp_path) as run_a:
        before = local_files(lake.bucket)
        other = tmp_path / "pipelines-b"
        with pytest.raises(LakeLocked) as err:
            lake.run(pipelines_dir=str(other))
        assert_lock_message(str(err.value), run_a.proc.pid, str(lake.dataset / LOCK_NAME))
        assert local_files(lake.bucket) == before, "run B wrote to the lake"
        assert not list(other.rglob("*.parquet")) and not list(other.rglob("*.jsonl*")), "run B extracted"
        assert stored_cursor(make_pipeline(lake.settings(pipelines_dir=str(other))), "pages") is None
        code, out, stderr = run_a.finish()
    assert code == 0, stderr
    assert_exactly_once(lake, site)
    assert not (lake.dataset / LOCK_NAME).exists(), "run A released its lock"


# -- (b) the same on S3 -----------------------------------------------------------------------------


def test_second_run_on_a_locked_s3_lake_stops_and_writes_nothing(request: pytest.FixtureRequest, site: Site, tmp_path):
    lake: S3Lake = request.getfixturevalue("s3lake")
    with HeldRun(site, lake.url, tmp_path / "pipelines-a", tmp_path) as run_a:
        before = lake.objects()
        other = tmp_path / "pipelines-b"
        with pytest.raises(LakeLocked) as err:
            lake.run(pipelines_dir=str(other))
        assert_lock_message(str(err.value), run_a.proc.pid, f"{lake.url}/bulletin_raw/{LOCK_NAME}")
        assert f"prefix/bulletin_raw/{LOCK_NAME}" in before
        assert lake.objects() == before, "run B wrote to the lake"
        assert not list(other.rglob("*.parquet")), "run B extracted"
        code, out, stderr = run_a.finish()
    assert code == 0, stderr
    assert_exactly_once(lake, site)
    assert not [k for k in lake.objects() if k.endswith(LOCK_NAME)], "run A released its lock"


# -- (c) a lock left by a killed run expires and is taken over ------------------------------------


@pytest.mark.parametrize("where", ["local", "s3"])
def test_an_expired_lock_is_taken_over(where: str, request: pytest.FixtureRequest, site: Site):
    target: Lake = request.getfixturevalue("s3lake" if where == "s3" else "lake")
    target.run(endpoints=["media"])  # the lake exists, as it does under a killed run's lock
    if isinstance(target, S3Lake):
        fs, lock_path = target.moto.filesystem(), f"{target.bucket_name}/prefix/bulletin_raw/{LOCK_NAME}"
    else:
        fs, lock_path = fsspec.filesystem("file"), str(target.dataset / LOCK_NAME)
    fs.pipe_file(lock_path, lock_record(dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)))
    summary = target.run()
    assert {e.endpoint: e.loaded for e in summary.endpoints}["pages"] == len(site.published_versions("pages"))
    assert_exactly_once(target, site)
    assert not fs.exists(lock_path), "the taken-over lock is released at the end"


@pytest.mark.parametrize("where", ["local", "s3"])
def test_of_runs_racing_for_one_expired_lock_exactly_one_takes_it(where: str, request: pytest.FixtureRequest, tmp_path):
    if where == "s3":
        s3 = request.getfixturevalue("moto")
        request.getfixturevalue("aws_env")
        folder, url = f"{s3.create_bucket()}/bulletin_raw", "s3://lake"
        filesystems = [s3.filesystem() for _ in range(6)]
    else:
        folder = url = str(tmp_path / "bulletin_raw")
        filesystems = [fsspec.filesystem("file", skip_instance_cache=True) for _ in range(6)]
        filesystems[0].makedirs(folder)
    filesystems[0].pipe_file(f"{folder}/{LOCK_NAME}", lock_record(dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)))
    start = threading.Barrier(len(filesystems))
    outcomes: Dict[int, Any] = {}

    def contend(index: int) -> None:
        lock = LakeLock(filesystems[index], folder, ttl_seconds=600, url=url)
        start.wait()
        try:
            lock.acquire()
            outcomes[index] = lock
        except LakeLocked as exc:
            outcomes[index] = exc

    threads = [threading.Thread(target=contend, args=(i,)) for i in range(len(filesystems))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    winners = [o for o in outcomes.values() if isinstance(o, LakeLock)]
    assert len(outcomes) == len(filesystems) and len(winners) == 1, outcomes
    assert json.loads(filesystems[0].cat_file(f"{folder}/{LOCK_NAME}"))["token"] == winners[0].holder.token
    winners[0].release()
    assert not filesystems[0].exists(f"{folder}/{LOCK_NAME}")


def test_a_local_takeover_under_way_is_not_taken_over_twice(tmp_path):
    """On disk a takeover first creates a guard named after the lock version it replaces (O_EXCL):
    a second run that read the same expired lock cannot create it and does not replace the lock."""
    fs = fsspec.filesystem("file")
    folder = str(tmp_path / "bulletin_raw")
    fs.makedirs(folder)
    expired = lock_record(dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1))
    fs.pipe_file(f"{folder}/{LOCK_NAME}", expired)
    fs.pipe_file(f"{folder}/{LOCK_NAME}.{hashlib.sha256(expired).hexdigest()[:16]}", b"another run's takeover")
    with pytest.raises(LakeLocked, match="expired but could not be taken over"):
        LakeLock(fs, folder, ttl_seconds=600, url=folder).acquire()
    assert fs.cat_file(f"{folder}/{LOCK_NAME}") == expired


# -- (d) our release never deletes a lock that is not ours ----------------------------------------


def test_release_leaves_a_live_lock_of_another_run_alone(tmp_path):
    fs = fsspec.filesystem("file")
    folder = str(tmp_path / "bulletin_raw")
    fs.makedirs(folder)
    ours = LakeLock(fs, folder, ttl_seconds=600, url=folder)
    ours.acquire()
    # meanwhile our lock was taken over (as if we had stalled past its expiry)
    theirs = lock_record(dt.datetime.now(dt.UTC) + dt.timedelta(minutes=20), token="f" * 32)
    fs.pipe_file(ours.path, theirs)
    ours.release()
    assert fs.cat_file(ours.path) == theirs


def test_a_run_meeting_a_live_lock_stops_and_leaves_it(lake: Lake, site: Site):
    lake.run(endpoints=["media"])
    lock = lake.dataset / LOCK_NAME
    live = lock_record(dt.datetime.now(dt.UTC) + dt.timedelta(minutes=20), token="e" * 32)
    lock.write_bytes(live)
    before = local_files(lake.bucket)
    with pytest.raises(LakeLocked, match=r"locked by gone-runner pid 4242 since .* until .*; if no run"):
        lake.run()
    assert lock.read_bytes() == live
    assert local_files(lake.bucket) == before


# -- (e) two runs at once from the same pipelines dir ---------------------------------------------


def test_second_run_from_the_same_pipelines_dir_stops(lake: Lake, site: Site, tmp_path):
    with HeldRun(site, str(lake.bucket), lake.pipelines_dir, tmp_path) as run_a:
        before = local_files(lake.bucket)
        run_b = subprocess.run(
            [sys.executable, str(SCRIPT), "--base-url", lake.server.base_url, *run_a.args[2:]],
            cwd=tmp_path,
            env=run_a.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert run_b.returncode == 1, run_b.stdout + run_b.stderr
        lines = run_b.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), run_b.stderr
        assert_lock_message(lines[0], run_a.proc.pid, str(lake.dataset / LOCK_NAME))
        assert local_files(lake.bucket) == before, "run B wrote to the lake"
        code, out, stderr = run_a.finish()
    assert code == 0, stderr
    assert_exactly_once(lake, site)


# -- renewal: a run longer than the lock's ttl keeps it ---------------------------------------------


def test_a_long_run_renews_its_lock(lake: Lake, site: Site, tmp_path):
    ttl = 6
    with HeldRun(
        site, str(lake.bucket), tmp_path / "pipelines-a", tmp_path, SOURCES__BULLETIN__LOCK_TTL_SECONDS=str(ttl)
    ) as run_a:
        lock = lake.dataset / LOCK_NAME
        first = json.loads(lock.read_bytes())
        expires = dt.datetime.fromisoformat(first["expires_at"])
        assert dt.timedelta(0) < expires - dt.datetime.fromisoformat(first["acquired_at"]) <= dt.timedelta(seconds=ttl)
        threading.Event().wait((expires - dt.datetime.now(dt.UTC)).total_seconds() + 1)  # past the first expiry
        renewed = json.loads(lock.read_bytes())
        assert renewed["token"] == first["token"]
        assert renewed["expires_at"] > first["expires_at"], "the lock was not renewed"
        with pytest.raises(LakeLocked):
            lake.run(pipelines_dir=str(tmp_path / "pipelines-b"))
        code, out, stderr = run_a.finish()
    assert code == 0, stderr
    assert_exactly_once(lake, site)


def test_a_live_lock_of_a_process_gone_from_this_machine_is_taken_over_at_once(lake: Lake, site: Site):
    """kill -9 leaves the lock behind; on the same machine the next run sees its holder is gone."""
    lake.run(endpoints=["media"])
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    record = json.loads(lock_record(dt.datetime.now(dt.UTC) + dt.timedelta(minutes=20)))
    record.update(host=socket.gethostname(), pid=int(gone.stdout))
    (lake.dataset / LOCK_NAME).write_text(json.dumps(record))
    lake.run()
    assert not (lake.dataset / LOCK_NAME).exists(), "the run released the lock it took over"
    assert_lake_has(lake, site, "pages")
