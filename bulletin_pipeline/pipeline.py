"""One run: restore state, plan each endpoint's window, extract + load with dlt, summarise.

This is the library entry point (`run_pipeline`) for schedulers and orchestrators; the CLI only
turns flags into settings and renders the summary.
"""

from __future__ import annotations

import copy
import datetime as dt
import os
import posixpath
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import dlt
from dlt.common.pipeline import LoadInfo, get_dlt_pipelines_dir
from dlt.pipeline.exceptions import PipelineStepFailed

from . import destination, retention
from .destination import DATASET_NAME, configure_arrow_memory, configure_parquet, make_destination, partition_datetime
from .envelope import REJECTED_TABLE, Envelope
from .errors import BulletinError, ConfigError, DestinationError, RejectedRecords
from .probe import probe_endpoint
from .settings import BulletinSettings
from .source import SOURCE_NAME, api_resource_name, bulletin_source, digest_specs, envelope_resource_name
from .transport import WordPressSession
from .window import LEDGER_KEY, WindowPlan, plan_window
from .wordpress import OverlappingWindowPaginator, ProgressCallback

PIPELINE_NAME = "bulletin_pipeline"


@dataclass
class EndpointSummary:
    endpoint: str
    mode: str
    window: str
    loaded: int = 0
    rejected: int = 0
    duplicates_skipped: int = 0
    files: int = 0
    cursor_before: Optional[str] = None
    cursor_after: Optional[str] = None
    rereads: int = 0
    rejected_examples: List[str] = field(default_factory=list)


@dataclass
class RunSummary:
    """What a run did; `skipped` lists endpoints --if-changed found unchanged (with the reason)."""

    pipeline_name: str
    dataset_path: str
    load_id: Optional[str]
    partition: str
    endpoints: List[EndpointSummary]
    seconds: float
    requests: int
    retries: int
    http_versions: Dict[str, int]
    skipped: Dict[str, str] = field(default_factory=dict)

    @property
    def rejected(self) -> int:
        return sum(e.rejected for e in self.endpoints)

    @property
    def loaded(self) -> int:
        return sum(e.loaded for e in self.endpoints)


def make_pipeline(settings: BulletinSettings, now: Optional[dt.datetime] = None) -> dlt.Pipeline:
    try:
        return dlt.pipeline(
            pipeline_name=PIPELINE_NAME,
            destination=make_destination(settings, now or dt.datetime.now(dt.UTC)),
            dataset_name=DATASET_NAME,
            pipelines_dir=settings.pipelines_dir,  # type: ignore[arg-type]
        )
    except OSError as exc:  # the pipelines folder is full, read-only or not ours
        raise _working_files_error(settings.pipelines_dir or get_dlt_pipelines_dir(), exc) from exc


def _working_files_error(folder: str, exc: OSError) -> BulletinError:
    return BulletinError(
        f"cannot write dlt's working files in {folder}: {_first_line(exc)}; "
        "it needs free space and write access, or pass another --pipelines-dir"
    )


def stored_cursor(pipeline: dlt.Pipeline, endpoint: str) -> Optional[str]:
    """The `modified` cursor dlt keeps for an endpoint's rest_api resource (None before any run)."""
    state: Any = pipeline.state
    try:
        value = state["sources"][SOURCE_NAME]["resources"][api_resource_name(endpoint)]["incremental"]["modified"][
            "last_value"
        ]
    except (KeyError, TypeError):
        return None
    return str(value) if value is not None else None


def preflight_destination(pipeline: dlt.Pipeline) -> None:
    """Prove the destination is writable before any API page is fetched: a missing bucket or wrong
    credentials must not surface after minutes of fetching, or worse, after extract."""
    bucket = pipeline.destination.config_params.get("bucket_url", "")  # type: ignore[union-attr]
    try:
        with pipeline.destination_client() as client:
            fs = client.fs_client  # type: ignore[attr-defined]
            dataset_path = client.dataset_path  # type: ignore[attr-defined]
            # probe beside the dataset until dlt has created it: dlt initialises a dataset folder
            # only when it does not exist yet
            folder = dataset_path if fs.isdir(dataset_path) else posixpath.dirname(dataset_path.rstrip("/"))
            if client.config.is_local_filesystem:  # type: ignore[attr-defined]
                # object stores have no folders, and s3fs's makedirs creates a missing bucket
                fs.makedirs(folder, exist_ok=True)
            probe = posixpath.join(folder, "_bulletin_preflight")
            fs.pipe(probe, b"ok")
            fs.rm(probe)
    except Exception as exc:  # noqa: BLE001 - rendered as one line for the user
        raise DestinationError(f"cannot write to {bucket}: {describe_storage_error(exc, bucket)}") from exc


def describe_storage_error(exc: BaseException, bucket: str = "") -> str:
    """One line for a storage error, with the credential hints of the bucket's kind of store."""
    text = _first_line(exc)
    lowered = f"{_error_codes(exc)} {text}".lower()
    where = destination.credentials_hint(bucket)
    if "nosuchbucket" in lowered or "bucket does not exist" in lowered or "specified bucket" in lowered:
        return f"the bucket does not exist ({text}); create it or fix bucket_url"
    if any(k in lowered for k in ("invalidaccesskeyid", "signaturedoesnotmatch", "accessdenied", "forbidden", "403")):
        return f"the credentials were rejected ({text}); check {where}"
    if (
        "nocredentials" in lowered
        or "unable to locate credentials" in lowered
        or ("configfieldmissingexception" in lowered and "credentials" in lowered)
    ):
        return f"no credentials found; set {where}"
    return text


def _error_codes(exc: BaseException) -> str:
    """Exception type names and S3 error codes along the cause chain: s3fs turns a ClientError
    (InvalidAccessKeyId, SignatureDoesNotMatch, NoSuchBucket...) into a PermissionError or
    FileNotFoundError carrying only the message, with the ClientError as its cause."""
    names = []
    seen = set()
    current: Optional[BaseException] = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        names.append(type(current).__name__)
        response = getattr(current, "response", None)
        if isinstance(response, dict):
            names.append(str(response.get("Error", {}).get("Code", "")))
        current = current.__cause__ or current.__context__
    return " ".join(names)


def restore_state(pipeline: dlt.Pipeline) -> None:
    """Pull the newest state from the lake when it is newer than the local one (fresh runners)."""
    try:
        pipeline.sync_destination()
    except Exception as exc:  # noqa: BLE001 - rendered as one line for the user
        raise DestinationError(
            f"cannot read the destination {pipeline.destination.config_params.get('bucket_url', '')}: "  # type: ignore[union-attr]
            f"{_first_line(exc)}"
        ) from exc


def stored_site(pipeline: dlt.Pipeline) -> Optional[str]:
    state: Any = pipeline.state
    try:
        return state["sources"][SOURCE_NAME]["site"]  # type: ignore[no-any-return]
    except (KeyError, TypeError):
        return None


def check_site(pipeline: dlt.Pipeline, settings: BulletinSettings) -> None:
    """Cursors are only meaningful for the site that produced them: reusing, say, the demo's
    cursor against the real catalog would silently skip every record older than it."""
    site = stored_site(pipeline)
    if site and site != settings.site_id:
        raise ConfigError(
            f"the stored state of pipeline {PIPELINE_NAME} belongs to {site!r}, not {settings.site_id!r}; "
            "use another --bucket-url and --pipelines-dir for this site, or reset the old state with "
            f"`dlt pipeline {PIPELINE_NAME} drop --drop-all` (and remove its lake folder)"
        )


def run_pipeline(
    settings: BulletinSettings,
    progress: Optional[ProgressCallback] = None,
    now: Optional[dt.datetime] = None,
) -> RunSummary:
    started = time.monotonic()
    inserted_at = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    configure_parquet(settings)
    configure_arrow_memory()
    envelopes: Dict[str, Envelope] = {}
    paginators: Dict[str, OverlappingWindowPaginator] = {}
    skipped: Dict[str, str] = {}
    session = WordPressSession(settings.http, digest_specs(settings), digest_workers(settings))
    try:
        pipeline = make_pipeline(settings, inserted_at)
        preflight_destination(pipeline)
        restore_state(pipeline)
        check_site(pipeline, settings)
        plans = {
            endpoint: plan_window(
                endpoint, settings, stored_cursor(pipeline, endpoint), settings.collection(endpoint).incremental
            )
            for endpoint in settings.endpoints
        }
        if settings.if_changed:
            for endpoint in settings.endpoints:
                result = probe_endpoint(
                    session.adapter, settings, endpoint, plans[endpoint], written_versions(pipeline, endpoint)
                )
                if not result.changed:
                    skipped[endpoint] = result.reason
            if len(skipped) == len(settings.endpoints):
                return _nothing_to_do(pipeline, settings, plans, skipped, session, started)
            settings = copy.copy(settings)  # the caller's settings stay as they were
            settings.endpoints = [e for e in settings.endpoints if e not in skipped]
        source = bulletin_source(settings, plans, session, inserted_at, envelopes, paginators, progress=progress)
        info = _run(pipeline, source)
    finally:
        session.close()

    summaries = []
    for endpoint in settings.endpoints:
        plan = plans[endpoint]
        summary = EndpointSummary(
            endpoint=endpoint,
            mode=plan.mode,
            window=plan.describe(),
            cursor_before=plan.stored_cursor,
            cursor_after=stored_cursor(pipeline, endpoint),
            files=_files_written(info, endpoint),
            rereads=paginators[endpoint].rereads if endpoint in paginators else 0,
        )
        stats = envelopes[endpoint].stats if endpoint in envelopes else None
        if stats is not None:
            summary.loaded = stats.loaded
            summary.rejected = stats.rejected
            summary.duplicates_skipped = stats.duplicates
            summary.rejected_examples = stats.rejected_examples
        summaries.append(summary)

    run = RunSummary(
        pipeline_name=PIPELINE_NAME,
        dataset_path=_dataset_path(pipeline),
        load_id=info.loads_ids[0] if info and info.loads_ids else None,
        partition=partition_datetime(settings, inserted_at).strftime("load_date=%Y-%m-%d/load_time=%H:%M:%S"),
        endpoints=summaries,
        seconds=round(time.monotonic() - started, 3),
        requests=session.stats.requests,
        retries=session.stats.retries,
        http_versions=dict(session.stats.http_versions),
        skipped=skipped,
    )
    if settings.strict and run.rejected:
        raise RejectedRecords(
            f"{run.rejected} record(s) failed validation (written to the `{REJECTED_TABLE}` table); "
            f"first: {next(e.rejected_examples[0] for e in summaries if e.rejected_examples)}"
        )
    return run


def digest_workers(settings: BulletinSettings) -> int:
    """One digest worker per CPU core beyond the one dlt's extract and the HTTP threads share."""
    if settings.digest_workers is not None:
        return settings.digest_workers
    return max(0, (os.cpu_count() or 1) - 1)


def _dataset_path(pipeline: dlt.Pipeline) -> str:
    return f"{pipeline.destination.config_params.get('bucket_url', '')}/{DATASET_NAME}"  # type: ignore[union-attr]


def written_versions(pipeline: dlt.Pipeline, endpoint: str) -> Optional[Dict[str, str]]:
    state: Any = pipeline.state
    try:
        return state["sources"][SOURCE_NAME]["resources"][envelope_resource_name(endpoint)][LEDGER_KEY]  # type: ignore[no-any-return]
    except (KeyError, TypeError):
        return None


def _nothing_to_do(
    pipeline: dlt.Pipeline,
    settings: BulletinSettings,
    plans: Dict[str, WindowPlan],
    skipped: Dict[str, str],
    session: WordPressSession,
    started: float,
) -> RunSummary:
    """--if-changed found nothing: no load package, no files, the state untouched."""
    return RunSummary(
        pipeline_name=PIPELINE_NAME,
        dataset_path=_dataset_path(pipeline),
        load_id=None,
        partition="",
        endpoints=[
            EndpointSummary(
                e, "unchanged", skipped[e], cursor_before=plans[e].stored_cursor, cursor_after=plans[e].stored_cursor
            )
            for e in settings.endpoints
        ],
        seconds=round(time.monotonic() - started, 3),
        requests=session.stats.requests,
        retries=session.stats.retries,
        http_versions=dict(session.stats.http_versions),
        skipped=skipped,
    )


def cleanup_partitions(
    settings: BulletinSettings, retain_days: int, remove_them: bool, today: Optional[dt.date] = None
):
    """Partitions older than `retain_days` (removed when `remove_them`); see retention.py."""
    pipeline = make_pipeline(settings)
    with pipeline.destination_client() as client:
        fs = client.fs_client  # type: ignore[attr-defined]
        dataset_path = client.dataset_path  # type: ignore[attr-defined]
        if not fs.isdir(dataset_path):  # a typo'd bucket_url must not look like a clean lake
            raise ConfigError(f"no lake at {_dataset_path(pipeline)}; check --bucket-url")
        expired = retention.expired_partitions(
            fs, dataset_path, retention.tables_for(settings.endpoints), retain_days, today or dt.date.today()
        )
        if remove_them:
            retention.remove(fs, expired)
    return expired


def _run(pipeline: dlt.Pipeline, source: Any) -> LoadInfo:
    try:
        info = pipeline.run(source, loader_file_format="parquet")
    except PipelineStepFailed as exc:
        cause = _find_cause(exc)
        if isinstance(cause, (BulletinError, KeyboardInterrupt)):
            raise cause from exc
        step = exc.step
        if step in ("extract", "normalize") and isinstance(cause, OSError) and cause.errno is not None:
            raise _working_files_error(pipeline.pipelines_dir, cause) from exc  # they write only there
        if step == "load" or step == "sync":
            raise DestinationError(f"writing to the destination failed ({step}): {_first_line(cause)}") from exc
        raise BulletinError(f"{step} step failed: {_first_line(cause)}") from exc
    info.raise_on_failed_jobs()
    return info


def _find_cause(exc: BaseException) -> BaseException:
    """The innermost exception, or the first of ours or an interrupt: dlt wraps a resource's error
    in several layers."""
    seen = set()
    current: BaseException = exc
    while id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (BulletinError, KeyboardInterrupt)):
            return current
        nxt = current.__cause__ or current.__context__
        if nxt is None:
            break
        current = nxt
    return current


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else "") or type(exc).__name__


def _files_written(info: Optional[LoadInfo], table: str) -> int:
    if info is None:
        return 0
    count = 0
    for package in info.load_packages:
        for job in package.jobs.get("completed_jobs", []):
            if job.job_file_info.table_name == table:
                count += 1
    return count
