"""`--demo`: the main job against a small bundled WordPress-shaped site, on loopback, to local disk.

The site (`demo_site`, standard library only, so the demo runs from `uv sync --no-dev`) is
generated deterministically with a fixed clock, so running the demo twice shows an incremental run
that finds nothing new. Its state is marked as the demo site: a later run against a real site
refuses to reuse the demo's cursor (see `pipeline.check_site`).
"""

from __future__ import annotations

import argparse

from rich.console import Console

from .demo_site import DemoServer
from .pipeline import DEMO_SITE_ID, run_pipeline

DEMO_PAGES = 2000
DEMO_MEDIA = 1000


def run_demo(args: argparse.Namespace, out: Console, err: Console) -> int:
    from .cli import ProgressView, render_summary, settings_from_args

    with DemoServer(pages=DEMO_PAGES, media=DEMO_MEDIA) as server:
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
        f"  uv run dlt pipeline{pipelines_dir} bulletin_pipeline info      # state, cursors, last load\n"
        f"  uv run dlt pipeline{pipelines_dir} bulletin_pipeline trace     # steps, timings, rows per table\n"
        f'  uv run python -c "import duckdb; print(duckdb.sql(\\"select count(*) from read_parquet('
        f"'{summary.dataset_path}/pages/**/*.parquet', hive_partitioning=true)\\\"))\"",
        soft_wrap=True,
        highlight=False,
    )
    return 0
