"""Messages, signals and small traps (issue 14): what a user sees when a run is interrupted, a
name does not resolve, a setting is out of range or a folder cannot be written."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import os
import pathlib
import re
import signal
import subprocess
import sys
import time

import pytest

from tests.simulator import POSTS, SimulatorServer, Site, seed_site
from tests.simulator.records import DEFAULT_COLLECTIONS

from .conftest import CLOCK, Lake, assert_lake_has
from .test_cli import SCRIPT, cli, lake_args

INTERRUPTED = "interrupted ({}): nothing after the last committed load was written; run again to resume"


def assert_one_line(result: subprocess.CompletedProcess, code: int, *texts: str) -> None:
    assert result.returncode == code, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr, result.stderr
    for text in texts:
        assert text in result.stderr, result.stderr


def assert_every_version_once(lake: Lake, site: Site) -> None:
    for table in ("pages", "media"):
        ids = [row["id"] for row in lake.rows(table)]
        assert len(ids) == len(set(ids)), f"versions written twice in {table}"
        assert_lake_has(lake, site, table)


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_an_interrupted_run_says_so_in_one_line_and_the_next_run_resumes(lake: Lake, site, server, tmp_path, sig, code):
    """Ctrl-C (a terminal signals the whole process group, digest workers included) and SIGTERM
    (a cancelled CI job, SIGKILL follows within seconds) mid-run, while a request waits out a
    2-minute Retry-After: one line, 128 + the signal, at once, nothing written or left running."""

    def second_media_window(collection: str, params: dict) -> None:
        # answered 503 with a 2-minute Retry-After: a prefetching thread waits it out, and the run
        # is still reading when the signal comes
        if collection == "media" and int(params.get("offset", 0)) > 0 and not server.stats.faults_served:
            server.inject(503, collection="media", retry_after=120)

    server.before_request = second_media_window
    env = {**os.environ, "SOURCES__BULLETIN__DIGEST_WORKERS": "1"}
    stdout, stderr = tmp_path / "stdout", tmp_path / "stderr"
    with stdout.open("w") as out, stderr.open("w") as err:
        process = subprocess.Popen(
            [sys.executable, str(SCRIPT), *lake_args(lake)],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 120
        while "retrying GET" not in stderr.read_text() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert process.poll() is None, "the run ended before it was signalled"
        os.killpg(process.pid, sig)
        process.wait(timeout=60)  # well before the Retry-After is over
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    out, err = stdout.read_text(), stderr.read_text()
    assert process.returncode == code, err
    *retries, last = err.strip().splitlines()
    assert last == INTERRUPTED.format(sig.name) and len(retries) == 1, err
    assert retries[0].startswith(f"retrying GET {server.base_url}media?") and "in 120s" in retries[0], err
    assert not out.strip(), out
    assert not lake.files("pages") and not lake.files("media"), "an interrupted run committed data"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # the workers stop with the run (multiprocessing's tracker soon after)
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        pytest.fail("processes of the interrupted run are still running")

    again = cli(*lake_args(lake), cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert_every_version_once(lake, site)


def test_a_run_killed_with_sigkill_leaves_no_digest_worker_behind(lake: Lake, server, tmp_path):
    """SIGKILL reaches the run alone (an OOM kill, `kill -9`): its digest workers exit on their own."""

    def hold_media(collection: str, params: dict) -> None:
        if collection == "media" and not server.stats.faults_served:
            server.inject(503, collection="media", retry_after=120)

    server.before_request = hold_media
    env = {**os.environ, "SOURCES__BULLETIN__DIGEST_WORKERS": "1"}
    stderr = tmp_path / "stderr"
    with stderr.open("w") as err:
        process = subprocess.Popen(
            [sys.executable, str(SCRIPT), *lake_args(lake)],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 120
        while "retrying GET" not in stderr.read_text() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert process.poll() is None, stderr.read_text()
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # the workers and multiprocessing's tracker, in the run's group
            try:
                os.killpg(process.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            pytest.fail("a digest worker outlived its killed run")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)


def test_a_host_name_that_does_not_resolve_fails_at_once(tmp_path):
    result = cli(
        *("--base-url", "http://no-such-host.invalid/wp-json/wp/v2/", "--bucket-url", str(tmp_path / "lake")),
        *("--pipelines-dir", str(tmp_path / "p")),
        cwd=tmp_path,
    )
    assert_one_line(result, 1, "error: cannot reach no-such-host.invalid", "after 1 attempt(s)")


def test_each_retry_is_one_line_on_stderr(lake: Lake, server, tmp_path):
    server.inject(503, count=2, collection="pages")
    result = cli(*lake_args(lake), "--endpoints", "pages", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    retry = re.compile(
        rf"retrying GET {re.escape(server.base_url)}pages\?\S+: HTTP 503 \(attempt (\d) of 5, in [0-9.]+s\)"
    )
    lines = result.stderr.strip().splitlines()
    assert [m.group(1) for m in map(retry.fullmatch, lines) if m] == ["2", "3"], result.stderr
    assert len(lines) == 2, result.stderr


def test_per_page_must_leave_the_windows_an_overlap(lake: Lake, site, tmp_path):
    for per_page in ("1", "101"):
        result = cli(*lake_args(lake), cwd=tmp_path, env={"SOURCES__BULLETIN__PER_PAGE": per_page})
        assert_one_line(result, 2, "per_page must be between 3 and 100")
    lake.run(per_page=3)  # the smallest accepted value walks whole collections, hidden media included
    assert_every_version_once(lake, site)


@pytest.mark.parametrize(
    "args, env, message",
    [
        (["--endpoints", ""], {}, "endpoints is empty"),
        (["--last-modified-date", "0001-01-01"], {}, "--last-modified-date '0001-01-01' is before 1900-01-01"),
        ([], {"SOURCES__BULLETIN__HTTP__VERIFY": "/nonexistent.pem"}, "sources.bulletin.http.verify"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(lake: Lake, tmp_path, args, env, message):
    result = cli(*lake_args(lake), *args, cwd=tmp_path, env=env)
    assert_one_line(result, 2, message)
    assert not lake.files("pages"), "bad input must stop the run before it loads"


@pytest.mark.parametrize(
    "bucket, hint",
    [("gs://bucket/lake", "GOOGLE_APPLICATION_CREDENTIALS"), ("az://container/lake", "AZURE_STORAGE_ACCOUNT_KEY")],
)
def test_destination_hints_follow_the_bucket_scheme(tmp_path, monkeypatch, bucket, hint):
    for name in [n for n in os.environ if n.startswith(("GOOGLE_", "AZURE_", "DESTINATION__"))]:
        monkeypatch.delenv(name)
    result = cli(
        *("--base-url", "http://127.0.0.1:9/wp-json/wp/v2/", "--bucket-url", bucket),
        *("--pipelines-dir", str(tmp_path / "p")),
        cwd=tmp_path,
    )
    assert_one_line(result, 1, f"cannot write to {bucket}: no credentials found", hint)
    assert "AWS" not in result.stderr


@pytest.fixture
def unwritable_folder(tmp_path):
    """(folder, cause): a 64 KiB tmpfs that fills up while dlt writes (root), else a read-only folder."""
    folder = tmp_path / "tiny"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder, "Permission denied"
        folder.chmod(0o755)
        return
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)], check=True)
    try:
        yield folder, "No space left on device"
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def test_a_pipelines_folder_that_cannot_be_written_is_one_line(lake: Lake, tmp_path, unwritable_folder):
    folder, cause = unwritable_folder
    pipelines = folder / "pipelines"
    result = cli(*lake_args(lake), "--pipelines-dir", str(pipelines), cwd=tmp_path)
    assert_one_line(result, 1, f"cannot write dlt's working files in {pipelines}", cause)


def test_help_lists_the_cleanup_subcommand(tmp_path):
    result = cli("--help", cwd=tmp_path)
    assert result.returncode == 0
    assert re.search(r"^\s+cleanup --retain-days N \[--yes\]\s+\S", result.stdout, re.MULTILINE), result.stdout
    sub = cli("cleanup", "--help", cwd=tmp_path)
    assert sub.returncode == 0 and "--retain-days" in sub.stdout and "--yes" in sub.stdout, sub.stderr


def test_cleanup_of_a_lake_that_does_not_exist_is_an_error(tmp_path):
    missing = tmp_path / "no-lake-here"
    result = cli(
        *("cleanup", "--retain-days", "7", "--bucket-url", str(missing), "--pipelines-dir", str(tmp_path / "p")),
        cwd=tmp_path,
    )
    assert_one_line(result, 2, f"no lake at {missing}/bulletin_raw; check --bucket-url")
    assert not missing.exists()


def test_a_collection_path_that_needs_url_encoding_is_loaded(tmp_path: pathlib.Path):
    """A custom post type's rest_base may hold spaces or non-ASCII letters: every run broke."""
    paths = {"courses": "course list", "etudes": "études"}
    specs = [dataclasses.replace(POSTS, name=path) for path in paths.values()]
    site = Site(clock=lambda: CLOCK, collections=(*DEFAULT_COLLECTIONS, *specs))
    seed_site(site, pages=20, media=5, seed=3, body_kb=0.2)
    for path in paths.values():
        for n in range(25):
            site.create(path, at=CLOCK - dt.timedelta(hours=n), title=f"{path} {n}")
    collections = {name: {"path": path} for name, path in paths.items()}
    with SimulatorServer(site) as server:
        lake = Lake(tmp_path, server)
        summary = lake.run(endpoints=list(paths), per_page=10, collections=collections)
        again = lake.run(endpoints=list(paths), collections=collections, if_changed=True)
    assert summary.loaded == 50
    for name, path in paths.items():
        assert_lake_has(lake, site, name, site.published_versions(path))
        assert len(lake.rows(name)) == 25
    assert set(again.skipped) == set(paths), again.skipped
