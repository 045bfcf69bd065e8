"""Messages, signals and small traps (issue 14): what a user sees when a run is interrupted, a
name does not resolve, a setting is out of range or a folder cannot be written."""

from __future__ import annotations

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
