"""The `verify` command line: arguments, progress on stderr, the report table (verify.py checks)."""

from __future__ import annotations

import argparse
import logging
import os
import time
from typing import Any, Sequence

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from .redact import redact_log_records, redact_text
from .settings import resolve_settings
from .verify import FAULT_LINES, LakeFaults, VerifyProgress, VerifyReport, verify_lake


def build_verify_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bulletin_pipeline verify",
        description="Read every file of the lake (no network) and check it: readable, the contract's columns, "
        "dl_hash = SHA-256 of the payload, payload JSON with the row's id, no version written twice by one run, "
        "the stored cursor not past the newest record. Exit 0 when clean, 1 naming the first files at fault.",
    )
    parser.add_argument("--bucket-url", help="local folder, file:// or s3://bucket/prefix (default: current folder)")
    parser.add_argument(
        "--endpoints", help="collections, comma-separated (default: pages,media), plus rejected, deleted"
    )
    parser.add_argument(
        "--pipelines-dir", help="where the lake's state is restored, in a temporary folder removed after"
    )
    parser.add_argument("--verbose", "-v", action="store_true", help="log details; show tracebacks on errors")
    return parser


def verify_main(argv: Sequence[str]) -> int:
    args = build_verify_parser().parse_args(argv)
    redact_log_records()
    if args.verbose:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = resolve_settings(
        base_url="http://verify.invalid/",  # verify never talks to the site
        bucket_url=args.bucket_url,
        endpoints=args.endpoints.split(",") if args.endpoints is not None else None,
        pipelines_dir=args.pipelines_dir,
    )
    out = Console(width=None if os.isatty(1) else 160)
    err = Console(stderr=True)
    with _ProgressView(err) as progress:
        report = verify_lake(settings, progress, work_dir=settings.pipelines_dir)
    render_report(report, out)
    if report.lock_note:
        err.print(f"note: {redact_text(report.lock_note)}", highlight=False, soft_wrap=True)
    if report.clean:
        return 0
    for fault in report.faults[:FAULT_LINES]:
        err.print(redact_text(fault.describe()), highlight=False, soft_wrap=True)
    if len(report.faults) > FAULT_LINES:
        err.print(f"... and {len(report.faults) - FAULT_LINES} more", highlight=False)
    raise LakeFaults(f"the lake at {report.lake_url} is {report.verdict()}")


def render_report(report: VerifyReport, console: Console) -> None:
    grid = Table(title=f"verify {redact_text(report.lake_url)}", title_justify="left")
    columns = ("table", "files", "rows", "partitions", "unreadable", "schema drift", "bad dl_hash", "bad payload")
    for column in (*columns, "stored twice", "unfinished load"):
        grid.add_column(column, justify="left" if column == "table" else "right", no_wrap=True)
    for t in report.tables:
        counts = (t.files, t.rows, t.partitions, t.unreadable, t.drift, t.bad_hash, t.not_json + t.id_differs)
        grid.add_row(t.table, *(f"{n:,}" for n in (*counts, t.stored_twice, t.unfinished)))
    console.print(grid)
    for t in report.tables:
        note = t.cursor_note()
        if note:
            console.print(f"{t.table}: {note}", highlight=False, soft_wrap=True)
        if t.original:
            console.print(
                f"{t.table}: {t.original:,} file(s) of the original pipeline, checked by its columns "
                "(dl_inserted_at without a zone)",
                highlight=False,
            )
        if t.rewritten:
            why = "; the original re-read each day it started from" if t.original else ""
            console.print(
                f"{t.table}: {t.rewritten:,} version(s) written again by a later run "
                f"(--full-refresh and --last-modified-date write every record they read{why})",
                highlight=False,
            )
    files = sum(t.files for t in report.tables)
    console.print(
        f"read {files:,} files, {report.rows:,} rows in {report.seconds:.1f}s: {report.verdict()}", highlight=False
    )


class _ProgressView:
    """Files done / total on stderr: a live bar on a terminal, a line every 15 s otherwise."""

    EVERY = 15.0

    def __init__(self, console: Console) -> None:
        self.console = console
        self.last = time.monotonic()
        self.bar = Progress(
            TextColumn("verify"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("files  {task.fields[rows]:>10,} rows"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
            disable=not console.is_terminal,
        )
        self.task = self.bar.add_task("verify", total=None, rows=0)

    def __enter__(self) -> VerifyProgress:
        self.bar.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.bar.__exit__(*exc)

    def __call__(self, done: int, total: int, rows: int) -> None:
        if self.console.is_terminal:
            self.bar.update(self.task, completed=done, total=total, rows=rows)
        elif time.monotonic() - self.last >= self.EVERY:
            self.last = time.monotonic()
            self.console.print(f"verify: {done}/{total} files, {rows:,} rows", highlight=False)
