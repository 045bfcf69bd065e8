"""The command line as a user meets it: the script, exit codes, one-line errors, --demo, and
`dlt pipeline bulletin_pipeline info|trace` on the result."""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

import pytest

from .conftest import Lake, assert_lake_has

ROOT = pathlib.Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "bulletin_pipeline" / "run.py"


def cli(*args: str, cwd: pathlib.Path, env: dict | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    environment = {**os.environ, "SOURCES__BULLETIN__HTTP__BACKOFF_INITIAL": "0.01", "COLUMNS": "200", **(env or {})}
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], cwd=cwd, env=environment, capture_output=True, text=True, timeout=timeout
    )


def lake_args(lake: Lake) -> list:
    return [
        "--base-url",
        lake.server.base_url,
        "--bucket-url",
        str(lake.bucket),
        "--pipelines-dir",
        str(lake.pipelines_dir),
    ]


def dlt_cli(*args: str, cwd: pathlib.Path) -> subprocess.CompletedProcess:
    dlt = pathlib.Path(sys.executable).with_name("dlt")
    return subprocess.run([str(dlt), *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_help_lists_every_option(tmp_path):
    result = cli("--help", cwd=tmp_path)
    assert result.returncode == 0
    for flag in (
        "--base-url",
        "--bucket-url",
        "--endpoints",
        "--full-refresh",
        "--last-modified-date",
        "--load-date",
        "--load-time",
        "--strict",
        "--demo",
        "--verbose",
    ):
        assert flag in result.stdout
    module = subprocess.run([sys.executable, "-m", "bulletin_pipeline", "--help"], cwd=ROOT, capture_output=True)
    assert module.returncode == 0


def test_a_run_prints_a_summary_and_dlt_can_inspect_it(lake: Lake, tmp_path):
    result = cli(
        *lake_args(lake),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert re.search(r"pages\s+│\s+initial\s+│\s+\d+", result.stdout), result.stdout
    assert "records loaded" in result.stdout and "load_date=" in result.stdout
    info = dlt_cli("pipeline", "--pipelines-dir", str(lake.pipelines_dir), "bulletin_pipeline", "info", cwd=tmp_path)
    assert info.returncode == 0, info.stderr
    assert "bulletin_pipeline" in info.stdout and "bulletin_raw" in info.stdout
    trace = dlt_cli("pipeline", "--pipelines-dir", str(lake.pipelines_dir), "bulletin_pipeline", "trace", cwd=tmp_path)
    assert trace.returncode == 0, trace.stderr
    assert "extract" in trace.stdout and "load" in trace.stdout


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["--last-modified-date", "2024-02-30"], 2, "is not a date in YYYY-MM-DD form"),
        (["--load-time", "7pm"], 2, "is not a time in HH:MM:SS form"),
        (["--endpoints", "pages,no such"], 2, "is not a WordPress collection name"),
        (["--endpoints", "pages,deleted"], 2, "names a table the pipeline writes itself"),
        (["--endpoints", "pages,nosuch"], 1, "404 rest_no_route"),
    ],
)
def test_bad_input_gives_one_line_and_a_non_zero_exit(lake: Lake, tmp_path, args, code, message):
    result = cli(
        *lake_args(lake),
        *args,
        cwd=tmp_path,
    )
    assert result.returncode == code, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.mark.parametrize(
    "bucket_url, message",
    [
        ("s3:/x", "did you mean 's3://x'?"),
        ("", "bucket_url is empty"),
        ("gs2://foo/bar", "unknown scheme 'gs2'"),
        ("s3://", "names no bucket or path"),
    ],
)
def test_a_mistyped_bucket_url_is_an_error_not_a_local_folder(lake: Lake, tmp_path, bucket_url, message):
    work = tmp_path / "work"
    work.mkdir()
    result = cli(*lake_args(lake), "--bucket-url", bucket_url, cwd=work)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not list(work.iterdir()) and not lake.bucket.exists()  # nothing written anywhere


def test_a_bucket_url_under_home_is_expanded(lake: Lake, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    result = cli(*lake_args(lake), "--bucket-url", "~/lakeX", cwd=work, env={"HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert list((tmp_path / "lakeX" / "bulletin_raw" / "pages").rglob("*.parquet")) and not list(work.iterdir())


def test_missing_base_url_and_unreachable_host(tmp_path):
    result = cli("--bucket-url", str(tmp_path / "lake"), "--pipelines-dir", str(tmp_path / "p"), cwd=tmp_path)
    assert result.returncode == 2 and "base_url is not set" in result.stderr
    result = cli(
        "--base-url",
        "http://127.0.0.1:9/wp-json/wp/v2/",
        "--bucket-url",
        str(tmp_path / "lake"),
        "--pipelines-dir",
        str(tmp_path / "p"),
        cwd=tmp_path,
        env={"SOURCES__BULLETIN__HTTP__MAX_ATTEMPTS": "2"},
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    # one line per retry, then the error: one line, the last
    *retries, error = result.stderr.strip().splitlines()
    assert error.startswith("error: cannot reach 127.0.0.1:9"), result.stderr
    assert len(retries) == 1 and retries[0].startswith("retrying GET http://127.0.0.1:9/"), result.stderr


def test_verbose_shows_the_traceback(tmp_path):
    result = cli(
        "--base-url",
        "http://127.0.0.1:9/wp-json/wp/v2/",
        "--bucket-url",
        str(tmp_path / "lake"),
        "--pipelines-dir",
        str(tmp_path / "p"),
        "--verbose",
        cwd=tmp_path,
        env={"SOURCES__BULLETIN__HTTP__MAX_ATTEMPTS": "1"},
    )
    assert result.returncode == 1 and "Traceback" in result.stderr


def test_strict_exits_3_but_keeps_the_records(lake: Lake, site, tmp_path):
    bad = sorted(site.published_versions("pages"))[0]
    site.edit("pages", bad, menu_order="oops")
    result = cli(
        *lake_args(lake),
        "--strict",
        cwd=tmp_path,
    )
    assert result.returncode == 3 and "failed validation" in result.stderr
    assert [r["id"] for r in lake.rows("rejected")] == [bad]


def test_config_toml_in_the_working_folder_is_read(lake: Lake, tmp_path):
    (tmp_path / ".dlt").mkdir()
    (tmp_path / ".dlt" / "config.toml").write_text(
        f'[sources.bulletin]\nbase_url = "{lake.server.base_url}"\nendpoints = ["media"]\n'
    )
    result = cli("--bucket-url", str(lake.bucket), "--pipelines-dir", str(lake.pipelines_dir), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert lake.rows("media") and not lake.rows("pages")


@pytest.mark.parametrize(
    "toml, message",
    [
        ('bucket_uri = "lake"', "config.toml: unknown key sources.bulletin.bucket_uri; did you mean bucket_url?"),
        ("[sources.bulletin.http]\nmax_conections = 3", "did you mean http.max_connections?"),
    ],
)
def test_a_misspelled_config_key_is_an_error(lake: Lake, tmp_path, toml, message):
    (tmp_path / ".dlt").mkdir()
    (tmp_path / ".dlt" / "config.toml").write_text(f'[sources.bulletin]\nbase_url = "{lake.server.base_url}"\n{toml}\n')
    result = cli("--pipelines-dir", str(lake.pipelines_dir), cwd=tmp_path)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (tmp_path / "bulletin_raw").exists() and not (tmp_path / "lake").exists()


def test_a_broken_config_toml_names_the_line_and_column(tmp_path):
    (tmp_path / ".dlt").mkdir()
    (tmp_path / ".dlt" / "config.toml").write_text('[sources.bulletin]\nbase_url = "x\n')
    result = cli("--pipelines-dir", str(tmp_path / "p"), cwd=tmp_path)
    assert result.returncode == 2 and "at line 2 col 13" in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_comma_separated_endpoints_from_the_environment_and_an_upper_case_scheme(lake: Lake, tmp_path):
    upper = lake.server.base_url.replace("http://", "HTTP://", 1)
    result = cli(*lake_args(lake), "--base-url", upper, cwd=tmp_path, env={"SOURCES__BULLETIN__ENDPOINTS": "media"})
    assert result.returncode == 0, result.stderr
    assert lake.rows("media") and not lake.rows("pages")


def test_demo_runs_from_an_empty_folder(tmp_path):
    result = cli("--demo", "--pipelines-dir", str(tmp_path / "pipelines"), cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "dlt pipeline" in result.stdout and "bulletin_pipeline info" in result.stdout
    files = list((tmp_path / "bulletin_raw" / "pages").rglob("*.parquet"))
    assert files, "the demo writes the lake under ./bulletin_raw/"
    again = cli("--demo", "--pipelines-dir", str(tmp_path / "pipelines"), cwd=tmp_path, timeout=300)
    assert again.returncode == 0 and "0 records loaded" in again.stdout, again.stdout
    # the demo's cursor must not be reused against a real site
    other = cli(
        "--base-url", "http://127.0.0.1:9/wp-json/wp/v2/", "--pipelines-dir", str(tmp_path / "pipelines"), cwd=tmp_path
    )
    assert other.returncode == 2 and "belongs to 'demo" in other.stderr
    assert f"dlt pipeline --pipelines-dir {tmp_path / 'pipelines'} bulletin_pipeline drop" in other.stderr, other.stderr


@pytest.mark.parametrize(
    "entry",
    ["runpy.run_path(SCRIPT, run_name='__main__')", "runpy.run_module('bulletin_pipeline', run_name='__main__')"],
)
def test_the_command_exits_without_collecting_what_is_left(tmp_path, entry):
    """Both entry points freeze what is alive once the run is over (`cli.main_and_exit`): the
    interpreter's shutdown then has no heap to scan for garbage (0.6-0.8 s a run); the exit code
    is main()'s and atexit handlers still run."""
    probe = "\n".join(
        [
            "import atexit, gc, runpy, sys",
            "atexit.register(lambda: print('frozen at exit:', gc.get_freeze_count()))",
            f"SCRIPT = {str(SCRIPT)!r}",
            f"sys.argv = ['bulletin_pipeline', '--bucket-url', {str(tmp_path / 'lake')!r}, '--pipelines-dir', "
            f"{str(tmp_path / 'p')!r}]",
            entry,
        ]
    )
    paths = (str(ROOT), os.environ.get("PYTHONPATH"))  # `-m bulletin_pipeline` from any folder
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2 and "base_url is not set" in result.stderr, result.stderr
    assert int(result.stdout.rsplit(":", 1)[1]) > 10_000, result.stdout  # dlt alone is ~10^5 objects


def test_the_scheduled_workflow_uses_flags_the_cli_has():
    import yaml

    from bulletin_pipeline.cli import build_parser

    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "bulletin-daily.yml").read_text())
    triggers = workflow[True] if True in workflow else workflow["on"]  # YAML 1.1 reads `on` as True
    assert triggers["schedule"] == [{"cron": "0 10 * * *"}]
    assert set(triggers["workflow_dispatch"]["inputs"]) == {"full_refresh", "last_modified_date", "sweep_deletions"}
    assert workflow["concurrency"]["cancel-in-progress"] is False
    script = "\n".join(step.get("run", "") for step in workflow["jobs"]["load"]["steps"])
    used = set(re.findall(r"(--[a-z-]+)", script.split("run.py")[0] + script))
    known = set(re.findall(r"(--[a-z-]+)", build_parser().format_help()))
    assert {"--if-changed", "--full-refresh", "--last-modified-date", "--sweep-deletions"} <= used
    assert used - {"--frozen", "--no-dev"} <= known, used - known


def test_one_failing_collection_does_not_stop_the_others(lake: Lake, site, tmp_path):
    """A 404 for one collection: the healthy ones load, the failed one keeps its cursor, exit 1."""
    result = cli(
        "--base-url", lake.server.base_url, "--bucket-url", str(lake.bucket), "--pipelines-dir",
        str(lake.pipelines_dir), "--endpoints", "pages,courses,media", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    error = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "courses" in error[0] and "404 rest_no_route" in error[0], result.stderr
    assert "loaded: pages, media" in error[0]
    assert_lake_has(lake, site, "pages")
    assert_lake_has(lake, site, "media")
    assert "courses: failed, cursor kept" in result.stdout


def test_an_error_is_printed_as_given_even_with_brackets(tmp_path):
    """Error text is not rich markup: `[ge]` in a bad endpoint name stays in the line."""
    result = cli("--base-url", "http://127.0.0.1:9/wp-json/wp/v2/", "--endpoints", "pa[ge]s", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "endpoint name 'pa[ge]s' is not a WordPress collection name" in result.stderr
