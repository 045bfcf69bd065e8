"""`reconcile [--repair]`: flags -> settings -> reconcile.py -> one line per endpoint, exit code."""

from __future__ import annotations

import argparse
from typing import Sequence

from rich.console import Console

from .reconcile import reconcile
from .redact import redact_log_records
from .settings import resolve_settings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bulletin_pipeline reconcile",
        description="Compare the lake with every id the site serves now: ids missing from the lake, ids whose "
        "newest version is not the site's, ids the site no longer serves. Read-only unless --repair. "
        "Exit 0 when in step (or repaired), 1 when differences remain or a sweep was incomplete.",
    )
    parser.add_argument(
        "--repair",
        action="store_true",
        help="load the missing and stale records (no cursor moves) and write tombstones for the ids no longer served",
    )
    parser.add_argument("--base-url", help="REST base of the site, e.g. https://www.example.edu/wp-json/wp/v2/")
    parser.add_argument("--bucket-url", help="local folder, file:// or s3://bucket/prefix")
    parser.add_argument("--endpoints", help="comma-separated collections (default: pages,media)")
    parser.add_argument("--pipelines-dir", help="dlt's working folder for the pipeline")
    parser.add_argument("--verbose", "-v", action="store_true")
    return parser


def reconcile_main(argv: Sequence[str], out: Console) -> int:
    args = build_parser().parse_args(argv)
    settings = resolve_settings(
        base_url=args.base_url,
        bucket_url=args.bucket_url,
        endpoints=args.endpoints.split(",") if args.endpoints is not None else None,
        pipelines_dir=args.pipelines_dir,
    )
    redact_log_records(tuple(settings.http.secret_params or ()))  # a base_url's query values out of --verbose logs
    report = reconcile(settings, repair=args.repair)
    for endpoint in report.endpoints:
        out.print(endpoint.describe(report.repaired), highlight=False, soft_wrap=True)
    return 0 if report.in_step else 1
