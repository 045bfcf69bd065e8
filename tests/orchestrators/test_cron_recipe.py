"""docs/scheduling.md's cron line and environment file, run as written against the simulator."""

from __future__ import annotations

import os
import pathlib
import re
import shlex
import subprocess
import sys

from tests.conftest import Lake, assert_lake_has

ROOT = pathlib.Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "scheduling.md").read_text()
UV_RUN = "/usr/local/bin/uv run --frozen --no-dev python"


def fenced(after: str, language: str = "") -> str:
    """The first fenced block after the line containing `after`."""
    match = re.search(re.escape(after) + r".*?\n```" + language + r"\n(.*?)```", DOC, re.S)
    assert match, f"no ```{language} block after {after!r} in docs/scheduling.md"
    return match.group(1)


def test_systemd_and_cron_run_the_same_command():
    service = fenced("/etc/systemd/system/bulletin.service", "ini")
    exec_start = re.search(r"^ExecStart=(.*)$", service, re.M)
    assert exec_start and "EnvironmentFile=/etc/bulletin/bulletin.env" in service
    cron = fenced("`crontab -e`").strip().splitlines()[-1]
    assert exec_start.group(1) in cron
    assert exec_start.group(1).startswith(UV_RUN)
    timer = fenced("/etc/systemd/system/bulletin.timer", "ini")
    assert "OnCalendar=*-*-* 10:00:00 UTC" in timer and "0 10 * * *" in cron


def test_cron_line_loads_then_finds_nothing_new(tmp_path, server, site):
    lake = Lake(tmp_path, server)
    values = {
        "SOURCES__BULLETIN__BASE_URL": server.base_url,
        "DESTINATION__FILESYSTEM__BUCKET_URL": str(lake.bucket),
    }
    env_lines = []
    for line in fenced("/etc/bulletin/bulletin.env", "sh").splitlines():
        key, _, value = line.partition("=")
        env_lines.append(f'{key}="{values[key]}"' if key in values else line)
    env_file = tmp_path / "bulletin.env"
    env_file.write_text("\n".join(env_lines) + "\n")
    password = "abcd efgh ijkl mnop qrst uvwx"
    assert f'SOURCES__BULLETIN__HTTP__PASSWORD="{password}"' in env_lines

    cron = fenced("`crontab -e`").strip().splitlines()[-1]
    command = cron.split(" ", 5)[5]  # after the five schedule fields
    log = tmp_path / "bulletin.log"
    command = (
        command.replace("cd /opt/bulletin-pipeline/app", f"cd {shlex.quote(str(ROOT))}")
        .replace("/etc/bulletin/bulletin.env", shlex.quote(str(env_file)))
        .replace(UV_RUN, shlex.quote(sys.executable))
        .replace("/opt/bulletin-pipeline/bulletin.log", shlex.quote(str(log)))
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOURCES__", "DESTINATION__"))}
    env["DLT_DATA_DIR"] = str(lake.pipelines_dir)

    first = subprocess.run(["sh", "-c", command], env=env, timeout=120)
    assert first.returncode == 0, log.read_text()
    assert_lake_has(lake, site, "pages")
    assert_lake_has(lake, site, "media")
    files = lake.files("pages")

    second = subprocess.run(["sh", "-c", command], env=env, timeout=120)
    output = log.read_text()
    assert second.returncode == 0, output
    assert "no changes since" in output
    assert lake.files("pages") == files
    assert password not in output and "qrst" not in output
