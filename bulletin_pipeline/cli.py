"""Command line: flags -> settings -> run -> summary. Exit codes: 0 ok, 1 the site or the destination
failed, 2 bad configuration or input, 3 --strict and records were rejected, 130 / 143 SIGINT / SIGTERM."""

from __future__ import annotations

import argparse
import gc
import logging
import os
import signal
import sys
import threading
import time
import traceback
from typing import Any, Callable, Dict, List, NoReturn, Optional, Sequence

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from .errors import BulletinError, EndpointsFailed, Interrupted
from .pipeline import RunSummary, run_pipeline
from .redact import redact_log_records, redact_text, redact_url
from .settings import BulletinSettings, resolve_settings
from .sites import find_site

EPILOG = """\
Subcommands:
  cleanup --retain-days N [--yes]  list partitions older than N days (--yes removes them); see cleanup --help
  verify                           check every file of the lake (no network); see verify --help
  reconcile [--repair]             compare the lake with the site (--repair loads and tombstones); see reconcile --help

Every option is also a dlt config key under [sources.bulletin] in .dlt/config.toml, or an
environment variable such as SOURCES__BULLETIN__BASE_URL; flags win.
Inspect the last run with: uv run dlt pipeline bulletin_pipeline info | trace
"""
LOG_EVERY = 15.0  # seconds between progress lines when stderr is not a terminal


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bulletin_pipeline",
        description="Load WordPress REST collections incrementally into a Parquet lake (dlt).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("--base-url", help="REST base of the site, e.g. https://www.example.edu/wp-json/wp/v2/")
    add("--bucket-url", help="local folder, file:// or s3://bucket/prefix (default: current folder)")
    add("--endpoints", help="comma-separated collections (default: pages,media)")
    add("--full-refresh", action="store_true", default=None, help="read every record, ignoring the stored cursor")
    add("--last-modified-date", metavar="YYYY-MM-DD", help="backfill records modified on or after this date")
    add("--load-date", metavar="YYYY-MM-DD", help="override the load_date= partition value")
    add("--load-time", metavar="HH:MM:SS", help="override the load_time= partition value")
    add("--strict", action="store_true", default=None, help="exit 3 when any record fails validation")
    add("--if-changed", action="store_true", default=None, help="load only endpoints a probe finds changed")
    add("--sweep-deletions", action="store_true", default=None, help="tombstone the ids the site no longer serves")
    add("--pipelines-dir", help="dlt's working folder for the pipeline (default: dlt's)")
    add("--site", metavar="NAME", help="run one site of sources.bulletin.sites (its own pipeline and lake)")
    add("--demo", action="store_true", help="load the bundled demo site (on loopback) into the local folder")
    add("--verbose", "-v", action="store_true", help="log details; show tracebacks on errors")
    return parser


def settings_from_args(args: argparse.Namespace, **extra: Any) -> BulletinSettings:
    # the other flags override the setting of the same name (None: not given, the configured value stays)
    overrides = {
        name: value for name, value in vars(args).items() if name not in ("endpoints", "demo", "verbose", "site")
    }
    endpoints = args.endpoints.split(",") if args.endpoints is not None else None  # '' is an error
    if args.site:
        return find_site(args.site).settings(**{**overrides, "endpoints": endpoints, **extra})
    return resolve_settings(**{**overrides, "endpoints": endpoints, **extra})


class ProgressView(Progress):
    """Windows read per endpoint on stderr: a live bar on a terminal, a line every LOG_EVERY s otherwise."""

    def __init__(self, console: Console) -> None:
        columns = (TextColumn("[bold]{task.description:>10}"), BarColumn(), MofNCompleteColumn())
        pages = TextColumn("pages  {task.fields[records]:>8} records")
        super().__init__(
            *columns, pages, TimeElapsedColumn(), console=console, transient=True, disable=not console.is_terminal
        )
        self._endpoint_tasks: Dict[str, TaskID] = {}
        self._last_line: Dict[str, float] = {}
        self._started = time.monotonic()  # short runs print no progress lines at all

    def __call__(self, endpoint: str, done: int, planned: int, records: int) -> None:
        if not self.disable:
            if endpoint not in self._endpoint_tasks:
                self._endpoint_tasks[endpoint] = self.add_task(endpoint, total=planned, records=0)
            self.update(self._endpoint_tasks[endpoint], completed=done, total=planned, records=records)
            return
        now = time.monotonic()
        if now - self._last_line.get(endpoint, self._started) >= LOG_EVERY:
            self._last_line[endpoint] = now
            self.console.print(f"{endpoint}: {done}/{planned} windows, {records} records read", highlight=False)


def render_summary(summary: RunSummary, console: Console) -> None:
    if summary.removed:
        console.print(f"removed {len(summary.removed)} file(s) of loads that never completed", highlight=False)
    if summary.resumed:
        console.print(summary.resumed.describe(), highlight=False)
    if summary.load_id is None and summary.skipped and len(summary.skipped) == len(summary.endpoints):
        for endpoint, reason in summary.skipped.items():
            console.print(f"{endpoint}: {reason}", highlight=False)
        console.print(f"nothing {'new ' if summary.resumed else ''}loaded")
        _render_deletions(summary, console)
        return
    table = Table(title=f"{summary.pipeline_name}: load {summary.load_id or '(nothing new)'}", title_justify="left")
    for column in ("endpoint", "mode", "loaded", "rejected", "files", "cursor before", "cursor after"):
        table.add_column(column, justify="right" if column in ("loaded", "rejected", "files") else "left", no_wrap=True)
    for e in summary.endpoints:
        counts = (str(e.loaded), str(e.rejected), str(e.files))
        table.add_row(e.endpoint, e.mode, *counts, e.cursor_before or "-", e.cursor_after or "-")
    console.print(table)
    for endpoint, reason in summary.skipped.items():
        console.print(f"{endpoint}: skipped, {reason}")
    for e in summary.endpoints:
        if e.endpoint in summary.failed:
            console.print(f"{e.endpoint}: failed, cursor kept", highlight=False)
        elif e.endpoint not in summary.skipped:
            console.print(f"{e.endpoint}: read {e.window}" + (f", {e.rereads} re-reads" if e.rereads else ""))
    versions = ", ".join(f"{k} x{v}" for k, v in sorted(summary.http_versions.items())) or "-"
    console.print(
        f"{summary.loaded} records loaded, {summary.rejected} rejected in {summary.seconds:.1f}s "
        f"({summary.requests} requests, {summary.retries} retries, {versions})"
    )
    console.print(f"data: {redact_url(summary.dataset_path)}/<endpoint>/{summary.partition}/")
    _render_deletions(summary, console)
    for e in summary.endpoints:
        for example in e.rejected_examples:
            console.print(f"[yellow]rejected[/] {e.endpoint}: {example}", soft_wrap=True)


def _render_deletions(summary: RunSummary, console: Console) -> None:
    for deletion in summary.deletions.values():
        console.print(deletion.describe(), highlight=False, soft_wrap=True)


def cleanup_main(argv: Sequence[str], out: Console) -> int:
    from .retention import cleanup_partitions

    parser = argparse.ArgumentParser(
        prog="bulletin_pipeline cleanup",
        description="List partitions whose load_date is older than N days; remove them with --yes. "
        "dlt's state and load tables, and the newest partition of each endpoint, are never touched.",
    )
    parser.add_argument("--retain-days", type=int, required=True, metavar="N")
    parser.add_argument("--yes", action="store_true", help="remove the listed partitions")
    parser.add_argument("--bucket-url", help="local folder, file:// or s3://bucket/prefix")
    parser.add_argument("--endpoints", help="comma-separated collections (default: pages,media)")
    parser.add_argument("--pipelines-dir", help="dlt's working folder for the pipeline")
    parser.add_argument("--verbose", "-v", action="store_true")
    args = parser.parse_args(argv)
    settings = resolve_settings(
        base_url="http://cleanup.invalid/",  # cleanup never talks to the site
        bucket_url=args.bucket_url,
        endpoints=args.endpoints.split(",") if args.endpoints is not None else None,
        pipelines_dir=args.pipelines_dir,
    )
    expired = cleanup_partitions(settings, args.retain_days, args.yes)
    for partition in expired:
        out.print(f"{'removed' if args.yes else 'would remove'} {partition.path}", highlight=False, soft_wrap=True)
    verb = "removed" if args.yes else "expired (run again with --yes to remove them)"
    out.print(f"{len(expired)} partition(s) older than {args.retain_days} day(s) {verb}")
    return 0


def run_demo(args: argparse.Namespace, out: Console, err: Console) -> int:
    """`--demo`: the main job against the demo site on loopback, its state marked as the demo's."""
    from .demo import DEMO_SITE_ID, DemoServer

    with DemoServer() as server:
        err.print(f"demo: {server.describe()} at {server.base_url}", soft_wrap=True)
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


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "cleanup":
        return _guarded(lambda: cleanup_main(argv[1:], Console(width=None if sys.stdout.isatty() else 160)), argv)
    if argv and argv[0] == "verify":
        from .verify_cli import verify_main

        return _guarded(lambda: verify_main(argv[1:]), argv)
    verbose = "--verbose" in argv or "-v" in argv
    redact_log_records()
    # without --verbose only warnings show, each a plain line (retries: what and when)
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s" if verbose else "%(message)s",
    )
    # dlt imports Airflow, when installed, to read its secrets, with stderr redirected: Airflow then
    # points the root logger at that discarded stream; the CLI is no Airflow task (set it true to read them)
    os.environ.setdefault("PROVIDERS__ENABLE_AIRFLOW_SECRETS", "false")
    if argv and argv[0] == "reconcile":
        from .reconcile_cli import reconcile_main

        return _guarded(lambda: reconcile_main(argv[1:], Console(width=None if sys.stdout.isatty() else 160)), argv)
    args = build_parser().parse_args(argv)
    out = Console(width=None if sys.stdout.isatty() else 120)
    err = Console(stderr=True)
    secret_params: List[str] = []  # the base_url's query names, masked in the logs and the error line too

    def run() -> int:
        if args.demo:
            return run_demo(args, out, err)
        settings = settings_from_args(args)
        secret_params.extend(settings.http.secret_params or ())
        redact_log_records(tuple(secret_params))
        try:
            with ProgressView(err) as progress:
                summary = run_pipeline(settings, progress=progress)
        except EndpointsFailed as failure:
            render_summary(failure.summary, out)  # what did load, before the one-line error
            raise
        render_summary(summary, out)
        return 1 if any(d.tombstones is None for d in summary.deletions.values()) else 0

    return _guarded(run, argv, secret_params)


def main_and_exit() -> NoReturn:
    """`main()`, then exit without the interpreter's garbage collections over what is still alive."""
    code = main()
    gc.freeze()
    sys.exit(code)


def _guarded(run: Callable[[], int], argv: Sequence[str], secret_params: Sequence[str] = ()) -> int:
    """Errors as one line and an exit code; the traceback only with --verbose. Both redacted."""
    verbose = "--verbose" in argv or "-v" in argv
    if not verbose:
        # dlt's warnings, without its info lines or its failures' tracebacks: the error line says
        dlt_logger = logging.getLogger("dlt")
        dlt_logger.setLevel(logging.WARNING)
        dlt_logger.addFilter(lambda record: record.exc_info is None)
    err = Console(stderr=True)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)
    try:
        return int(run())
    except KeyboardInterrupt as exc:
        # Ctrl-C, our SIGTERM handler, or dlt's own handler during normalize and load
        sig = signal.SIGTERM if getattr(exc, "signal_code", None) == signal.SIGTERM else signal.SIGINT
        message = f"interrupted ({sig.name}): nothing after the last committed load was written; run again to resume"
        err.print(message, highlight=False, soft_wrap=True)
        return 128 + sig
    except Exception as exc:  # noqa: BLE001 - the last line of defence: one line, not a traceback
        if verbose:
            sys.stderr.write(redact_text(traceback.format_exc(), secret_params))  # plain: rich crawls dlt's deep chains
        if isinstance(exc, BulletinError):
            err.print(f"[red]error:[/] {escape(redact_text(str(exc), secret_params))}", highlight=False, soft_wrap=True)
            return exc.exit_code
        first = redact_text((str(exc).strip().splitlines() or [""])[0], secret_params)
        err.print(
            f"[red]error:[/] {type(exc).__name__}: {escape(first)} (run with --verbose for details)", soft_wrap=True
        )
        return 1


def _terminate(signum: int, _frame: Any) -> None:
    raise Interrupted(signum)
