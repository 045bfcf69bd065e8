"""Crashes between and inside dlt's steps: the next run finishes or undoes what was left, so the
lake holds every version once, in readable files, at the partition its package was given.

The crashes are real: a lake on a tmpfs too small for the load (we run as root), a CLI process
killed with SIGKILL while it loads, a run that stops after dlt's extract step (the library's
`extract`), and the leftover of a kill inside normalize's commit, made in dlt's storage layout.
"""

from __future__ import annotations

import datetime as dt
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import time
from typing import Any, Callable, Dict, Iterator, List

import pyarrow.parquet as pq
import pytest
from dlt.common.storages import LoadStorage, NormalizeStorage

from bulletin_pipeline.errors import BulletinError
from bulletin_pipeline.extraction import Extraction
from bulletin_pipeline.pipeline import make_pipeline
from bulletin_pipeline.source import bulletin_source
from tests.simulator import Site

from .conftest import CLOCK, Lake, assert_lake_has
from .test_cli import SCRIPT, cli, lake_args

LATER = CLOCK + dt.timedelta(hours=1)
# many small files, loaded one at a time: a kill lands in the middle of the load step
SLOW_LOAD = {"DATA_WRITER__FILE_MAX_ITEMS": "20", "LOAD__WORKERS": "1", "SOURCES__BULLETIN__PER_PAGE": "10"}


def extract_only(lake: Lake, **overrides: Any) -> Any:
    """What a run leaves when it dies right after dlt's extract step: a package on this runner."""
    settings = lake.settings(**overrides)
    settings.digest_workers = 0
    pipeline = make_pipeline(settings)
    pipeline.sync_destination()
    extraction = Extraction(settings)
    try:
        pipeline.extract(bulletin_source(extraction=extraction))
    finally:
        extraction.end()
    return pipeline


def parquet_files(lake: Lake) -> Dict[pathlib.Path, int]:
    """Every Parquet file in the lake -> its rows; each one must be readable."""
    files = sorted(lake.dataset.rglob("*.parquet")) if lake.dataset.exists() else []
    return {path: pq.read_table(path).num_rows for path in files}


def assert_every_version_once(lake: Lake, site: Site) -> None:
    for table in ("pages", "media"):
        written = [(r["id"], r["modified_gmt"]) for r in lake.records(table)]
        assert len(written) == len(set(written)), f"{len(written) - len(set(written))} versions doubled in {table}"
        assert_lake_has(lake, site, table)


def load_id_of(path: pathlib.Path) -> str:
    return ".".join(path.name.split(".")[:2])


def completed_loads(lake: Lake) -> List[str]:
    folder = lake.dataset / "_dlt_loads"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def kill_during_load(args: List[str], cwd: pathlib.Path, written: Callable[[], bool]) -> int:
    """Start the CLI, SIGKILL it as soon as `written()` sees its first data file; its exit code."""
    env = {**os.environ, "RUNTIME__DLTHUB_TELEMETRY": "false", **SLOW_LOAD}
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), *args], cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 180
        while proc.poll() is None and time.monotonic() < deadline:
            if written():
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.002)
        return proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.fixture
def small_disk(lake: Lake) -> Iterator[Callable[[], None]]:
    """The lake's folder on a 128 KiB tmpfs, too small for the pages file (~150 KB): the load step
    fails part way with ENOSPC. Calling the fixture's value grows the disk to 64 MiB."""
    lake.bucket.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=128k", "tmpfs", str(lake.bucket)], check=True)
    try:
        yield lambda: subprocess.run(["mount", "-o", "remount,size=64m", str(lake.bucket)], check=True)
    finally:
        subprocess.run(["umount", str(lake.bucket)], check=True)


def test_a_load_cut_off_by_a_full_disk_is_finished_at_its_own_partition(
    lake: Lake, site: Site, small_disk: Callable[[], None], tmp_path: pathlib.Path
):
    first = cli(*lake_args(lake), "--load-time", "01:00:00", cwd=tmp_path)
    assert first.returncode == 1 and "No space left on device" in first.stderr, first.stderr[-2000:]
    # the run lived through its failed load: no partial file is left for a reader to trip on
    parquet_files(lake)
    small_disk()
    # later, with another --load-time: the package still lands where it was meant to
    rerun = cli(*lake_args(lake), "--load-time", "02:00:00", cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    resumed = re.search(r"finished a load left by an earlier run \(([\d.]+)\)", rerun.stdout)
    assert resumed, rerun.stdout
    total = len(site.published_versions("pages")) + len(site.published_versions("media"))
    assert f"{total} records loaded" in rerun.stdout, rerun.stdout
    files = parquet_files(lake)
    package = [p for p in files if load_id_of(p) == resumed[1]]
    assert {p.parent.parent.parent.name for p in package} == {"pages", "media"}
    assert {p.parent.name for p in package} == {"load_time=01:00:00"}, package
    assert sum(files[p] for p in package) == total
    assert_every_version_once(lake, site)


def test_a_fresh_runner_after_a_kill_during_load_writes_every_version_once(
    lake: Lake, site: Site, tmp_path: pathlib.Path
):
    left = kill_the_cli_during_load(lake, tmp_path)
    # on local disk dlt copies a file in place: a kill mid-copy leaves its first part
    with open(left[0], "r+b") as handle:
        handle.truncate(left[0].stat().st_size // 2)
    shutil.rmtree(lake.pipelines_dir)  # a fresh runner, as on CI
    rerun = cli(*lake_args(lake), cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert not set(left) & set(parquet_files(lake))
    assert_every_version_once(lake, site)
    assert f"removed {len(left)} file(s) of loads that never completed" in rerun.stdout, rerun.stdout


def test_the_same_runner_after_a_kill_during_load_finishes_it_at_its_own_partition(
    lake: Lake, site: Site, tmp_path: pathlib.Path
):
    left = kill_the_cli_during_load(lake, tmp_path)
    rerun = cli(*lake_args(lake), "--load-time", "23:59:59", cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    files = parquet_files(lake)
    killed = {load_id_of(p) for p in left}
    assert {p.parent.name for p in files if load_id_of(p) in killed} == {left[0].parent.name}
    assert_every_version_once(lake, site)
    assert "finished a load left by an earlier run" in rerun.stdout, rerun.stdout


def kill_the_cli_during_load(lake: Lake, tmp_path: pathlib.Path) -> List[pathlib.Path]:
    """SIGKILL a CLI run once its first pages file is in the lake; the Parquet files it left."""
    pages = lake.dataset / "pages"
    code = kill_during_load(lake_args(lake), tmp_path, lambda: pages.exists() and any(pages.rglob("*.parquet")))
    assert code == -signal.SIGKILL
    left = sorted(lake.dataset.rglob("*.parquet"))
    assert left and not completed_loads(lake), "the kill should land inside the load step"
    return left


def test_if_changed_after_a_crash_between_extract_and_load_loads_the_pending_records(
    lake: Lake, site: Site, tmp_path: pathlib.Path
):
    assert cli(*lake_args(lake), cwd=tmp_path).returncode == 0
    for offset, page_id in enumerate(sorted(site.published_versions("pages"))[:3]):
        site.edit("pages", page_id, at=LATER + dt.timedelta(seconds=offset), title=f"Edited {page_id}")
    extract_only(lake, site_id=None)
    first = cli(*lake_args(lake), "--if-changed", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    assert_every_version_once(lake, site)
    assert "finished a load left by an earlier run" in first.stdout and ": 3 in pages" in first.stdout, first.stdout
    again = cli(*lake_args(lake), "--if-changed", cwd=tmp_path)
    assert again.returncode == 0 and "no changes since" in again.stdout, again.stdout
    assert "finished a load" not in again.stdout


def test_a_rerun_that_finishes_a_pending_load_counts_its_records(lake: Lake, site: Site, tmp_path: pathlib.Path):
    assert cli(*lake_args(lake), cwd=tmp_path).returncode == 0
    for offset, page_id in enumerate(sorted(site.published_versions("pages"))[:3]):
        site.edit("pages", page_id, at=LATER + dt.timedelta(seconds=offset), title=f"Edited {page_id}")
    extract_only(lake, site_id=None)
    rerun = cli(*lake_args(lake), cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert_every_version_once(lake, site)
    assert re.search(r"finished a load left by an earlier run \([\d.]+\): 3 in pages$", rerun.stdout, re.M)
    assert "\n3 records loaded" in rerun.stdout, rerun.stdout


def leave_a_normalize_commit_cut_off(lake: Lake, site: Site, tmp_path: pathlib.Path) -> Any:
    """The pipelines folder as a kill inside normalize's commit leaves it: the package already
    renamed into load/normalized, its extracted copy not yet deleted."""
    lake.run()
    site.edit("pages", sorted(site.published_versions("pages"))[0], at=LATER, title="Edited")
    pipeline = extract_only(lake)
    (load_id,) = pipeline.list_extracted_load_packages()
    extracted = pathlib.Path(pipeline.working_dir, "normalize", NormalizeStorage.EXTRACTED_FOLDER, load_id)
    shutil.copytree(extracted, tmp_path / "extracted-copy")
    pipeline.normalize()
    shutil.copytree(tmp_path / "extracted-copy", extracted)
    assert load_id in pipeline.list_normalized_load_packages()
    return pipeline


def test_a_kill_inside_normalize_commit_is_recovered_on_the_next_run(lake: Lake, site: Site, tmp_path: pathlib.Path):
    leave_a_normalize_commit_cut_off(lake, site, tmp_path)
    summary = lake.run()
    assert summary.resumed is not None and summary.resumed.records == {"pages": 1}
    assert_every_version_once(lake, site)
    assert lake.run().resumed is None


def test_a_normalize_commit_with_no_whole_copy_names_the_command_that_resolves_it(
    lake: Lake, site: Site, tmp_path: pathlib.Path
):
    pipeline = leave_a_normalize_commit_cut_off(lake, site, tmp_path)
    (load_id,) = pipeline.list_normalized_load_packages()
    load = pathlib.Path(pipeline.working_dir, "load")
    # dlt's fallback rename, file by file and bottom up, cut short: the package's own files and
    # its first folder are still in load/new
    normalized, new = load / LoadStorage.NORMALIZED_FOLDER / load_id, load / LoadStorage.NEW_PACKAGES_FOLDER / load_id
    new.mkdir(parents=True)
    for path in [p for p in normalized.iterdir() if p.is_file()] + [normalized / "new_jobs"]:
        shutil.move(path, new / path.name)
    states = sorted((lake.dataset / "_dlt_pipeline_state").iterdir())
    with pytest.raises(BulletinError) as failed:
        lake.run()
    command = (
        f"DESTINATION__FILESYSTEM__BUCKET_URL={lake.bucket} uv run dlt pipeline "
        f"--pipelines-dir {lake.pipelines_dir} bulletin_pipeline sync"
    )
    assert command in str(failed.value) and "\n" not in str(failed.value), str(failed.value)
    assert sorted((lake.dataset / "_dlt_pipeline_state").iterdir()) == states, "the stored cursor must stay"
    # the command as named, confirmed up front (-y): `VARIABLE=value uv run dlt <args>`
    variable, _uv, _run, _dlt, *args = command.split()
    name, value = variable.split("=", 1)
    env = {**os.environ, "RUNTIME__DLTHUB_TELEMETRY": "false", name: value}
    dlt = pathlib.Path(sys.executable).with_name("dlt")
    done = subprocess.run([str(dlt), "-y", *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    summary = lake.run()
    assert {e.endpoint: e for e in summary.endpoints}["pages"].loaded == 1
    assert_every_version_once(lake, site)
