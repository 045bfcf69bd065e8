"""`--demo`: the main job against the bundled WordPress simulator, on loopback, to local disk.

The simulator is seeded deterministically with a fixed clock, so running the demo twice shows an
incremental run that finds nothing new. Its state is marked as the demo site: a later run against
a real site refuses to reuse the demo's cursor (see `pipeline.check_site`).
"""

from __future__ import annotations

import argparse
import datetime as dt

from rich.console import Console

from .pipeline import DEMO_SITE_ID, run_pipeline

DEMO_CLOCK = dt.datetime(2026, 1, 15, 12, 0, 0, tzinfo=dt.UTC)
DEMO_PAGES = 2000
DEMO_MEDIA = 1000


def run_demo(args: argparse.Namespace, out: Console, err: Console) -> int:
    from .cli import ProgressView, render_summary, settings_from_args
    from .simulator import SimulatorServer, Site, seed_site

    site = Site(clock=lambda: DEMO_CLOCK)
    seed_site(site, pages=DEMO_PAGES, media=DEMO_MEDIA, seed=42, tie_block=150)
    with SimulatorServer(site, latency=0.002) as server:
        err.print(
            f"demo: WordPress simulator with {DEMO_PAGES} pages and {DEMO_MEDIA} media at {server.base_url}",
            soft_wrap=True,
        )
        settings = settings_from_args(args, base_url=server.base_url, site_id=DEMO_SITE_ID)
        with ProgressView(err) as progress:
            summary = run_pipeline(settings, progress=progress)
    render_summary(summary, out)
    pipelines_dir = f" --pipelines-dir {settings.pipelines_dir}" if settings.pipelines_dir else ""
    out.print(
        "\nNext:\n"
        f"  dlt pipeline{pipelines_dir} bulletin_pipeline info      # state, cursors, last load\n"
        f"  dlt pipeline{pipelines_dir} bulletin_pipeline trace     # steps, timings, rows per table\n"
        f'  uv run python -c "import duckdb; print(duckdb.sql(\\"select count(*) from read_parquet('
        f"'{summary.dataset_path}/pages/**/*.parquet', hive_partitioning=true)\\\"))\"",
        soft_wrap=True,
        highlight=False,
    )
    return 0
