"""Fixtures: a seeded WordPress simulator over real HTTP on loopback, and a lake in a temp folder."""

from __future__ import annotations

import datetime as dt
import json
import os
import pathlib
from typing import Any, Dict, List, Optional

import pyarrow.dataset as ds
import pytest

from bulletin_pipeline.pipeline import RunSummary, run_pipeline
from bulletin_pipeline.settings import resolve_settings
from tests.simulator import SimulatorServer, Site, seed_site

# subprocesses run in temp folders without .dlt/config.toml: keep dlt's telemetry off there too
os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")

CLOCK = dt.datetime(2025, 6, 2, 12, 0, 0, tzinfo=dt.UTC)
FAST_HTTP = {"backoff_initial": 0.01, "backoff_max": 0.05, "max_attempts": 3, "total_timeout": 10.0}


@pytest.fixture
def site() -> Site:
    site = Site(clock=lambda: CLOCK)
    seed_site(site, pages=260, media=120, seed=7, body_kb=1)
    return site


@pytest.fixture
def server(site: Site):
    with SimulatorServer(site) as srv:
        yield srv


class Lake:
    """A local lake + pipelines folder, and helpers to run the pipeline into it and read it back."""

    def __init__(self, root: pathlib.Path, server: Any) -> None:
        self.root = root
        self.bucket = root / "lake"
        self.pipelines_dir = root / "pipelines"
        self.server = server

    @property
    def dataset(self) -> pathlib.Path:
        return self.bucket / "bulletin_raw"

    def settings(self, **overrides: Any):
        http = {**FAST_HTTP, **overrides.pop("http", {})}
        options: Dict[str, Any] = {
            "base_url": self.server.base_url,
            "bucket_url": str(self.bucket),
            "pipelines_dir": str(self.pipelines_dir),
            "site_id": "test-site",
            "http": http,
        }
        options.update(overrides)
        return resolve_settings(**options)

    def run(self, **overrides: Any) -> RunSummary:
        return run_pipeline(self.settings(**overrides))

    def rows(self, table: str = "pages") -> List[Dict[str, Any]]:
        folder = self.dataset / table
        if not folder.exists():
            return []
        return ds.dataset(str(folder), format="parquet", partitioning="hive").to_table().to_pylist()

    def records(self, table: str = "pages") -> List[Dict[str, Any]]:
        return [json.loads(r["payload"]) for r in self.rows(table)]

    def versions(self, table: str = "pages") -> Dict[int, set]:
        """id -> every modified_gmt written for it."""
        out: Dict[int, set] = {}
        for record in self.records(table):
            out.setdefault(record["id"], set()).add(record["modified_gmt"])
        return out

    def files(self, table: str = "pages") -> List[pathlib.Path]:
        return sorted((self.dataset / table).rglob("*.parquet"))


@pytest.fixture
def lake(tmp_path: pathlib.Path, server: Any) -> Lake:
    return Lake(tmp_path, server)


def assert_lake_has(lake: Lake, site: Site, table: str = "pages", versions: Optional[Dict[int, str]] = None) -> None:
    """Every version published on the site (now) is in the lake."""
    expected = versions if versions is not None else site.published_versions(table)
    held = lake.versions(table)
    missing = {i: v for i, v in expected.items() if v not in held.get(i, set())}
    assert not missing, f"{len(missing)} published versions missing from the lake, e.g. {list(missing.items())[:5]}"
