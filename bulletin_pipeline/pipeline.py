"""One run: restore state, plan each endpoint's window, extract + load with dlt, summarise.

This is the library entry point (`run_pipeline`) for schedulers and orchestrators; the CLI only
turns flags into settings and renders the summary.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import time
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional
from urllib.parse import urlsplit

import dlt
from dlt.common.pipeline import LoadInfo, get_dlt_pipelines_dir
from dlt.pipeline.exceptions import PipelineStepFailed

from . import recovery
from .continuation import Continuation, lake_continuations
from .deletions import SweepResult, sweep_deletions
from .destination import (
    DATASET_NAME,
    configure_arrow_memory,
    configure_parquet,
    make_destination,
    partition_datetime,
    preflight_destination,
)
from .envelope import REJECTED_TABLE
from .errors import (
    BulletinError,
    DestinationError,
    EndpointsFailed,
    RejectedRecords,
    WordPressError,
    WordPressUnreachable,
    cause_chain,
    first_line,
)
from .extraction import Extraction, check_site, digest_specs, source_state_value
from .lock import LakeLock, lake_lock
from .probe import probe_endpoint
from .settings import DEFAULT_PIPELINE_NAME, BulletinSettings
from .source import api_resource_name, bulletin_source, envelope_resource_name
from .tables import table_name
from .transport import HttpStats, WordPressSession
from .window import LEDGER_KEY, WindowPlan, ledger_horizon, plan_window
from .wordpress import ProgressCallback

PIPELINE_NAME = DEFAULT_PIPELINE_NAME
PARTITION_FORMAT = "load_date=%Y-%m-%d/load_time=%H:%M:%S"


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
    """What a run did; `skipped`: unchanged endpoints (--if-changed), `resumed`: an earlier run's
    load finished first, `removed`: lake files of loads that never completed, `deletions`: the
    deletion sweep (--sweep-deletions)."""

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
    failed: Dict[str, str] = field(default_factory=dict)
    resumed: Optional[recovery.ResumedLoad] = None
    removed: List[str] = field(default_factory=list)
    deletions: Dict[str, SweepResult] = field(default_factory=dict)

    @property
    def rejected(self) -> int:
        return sum(e.rejected for e in self.endpoints)

    @property
    def loaded(self) -> int:
        """Records this run wrote, those of a resumed load included."""
        return sum(e.loaded for e in self.endpoints) + (self.resumed.loaded if self.resumed else 0)


def make_pipeline(settings: BulletinSettings) -> dlt.Pipeline:
    try:
        return dlt.pipeline(
            pipeline_name=settings.pipeline_name,
            destination=make_destination(settings),
            dataset_name=DATASET_NAME,
            pipelines_dir=settings.pipelines_dir,  # type: ignore[arg-type]
        )
    except OSError as exc:  # the pipelines folder is full, read-only or not ours
        raise _working_files_error(settings.pipelines_dir or get_dlt_pipelines_dir(), exc) from exc


def _working_files_error(folder: str, exc: OSError) -> BulletinError:
    return BulletinError(
        f"cannot write dlt's working files in {folder}: {first_line(exc)}; "
        "it needs free space and write access, or pass another --pipelines-dir"
    )


def stored_cursor(pipeline: dlt.Pipeline, endpoint: str) -> Optional[str]:
    """The `modified` cursor dlt keeps for an endpoint's rest_api resource (None before any run)."""
    value = source_state_value(
        pipeline, "resources", api_resource_name(endpoint), "incremental", "modified", "last_value"
    )
    return str(value) if value is not None else None


def restore_state(pipeline: dlt.Pipeline) -> None:
    """Pull the newest state from the lake when it is newer than the local one (fresh runners)."""
    try:
        pipeline.sync_destination()
    except Exception as exc:  # noqa: BLE001 - rendered as one line for the user
        raise DestinationError(
            f"cannot read the destination {pipeline.destination.config_params.get('bucket_url', '')}: "  # type: ignore[union-attr]
            f"{first_line(exc)}"
        ) from exc


@dataclass
class LockedLake:
    """A pipeline whose lake this process has locked, made ready for a run (`locked_lake`)."""

    pipeline: dlt.Pipeline
    lock: LakeLock
    removed: List[str]
    resumed: Optional[recovery.ResumedLoad]


@contextlib.contextmanager
def locked_lake(settings: BulletinSettings) -> Iterator[LockedLake]:
    """The pipeline with its lake locked (before the state: a locked-out run writes nothing), files of
    loads never completed removed, its state restored and checked, a crashed run's package loaded."""
    pipeline = make_pipeline(settings)
    preflight_destination(pipeline)
    lock = lake_lock(pipeline, settings.lock_ttl_seconds)
    try:
        removed = recovery.remove_incomplete_loads(pipeline)
        restore_state(pipeline)
        check_site(pipeline, settings)
        with dlt_step(pipeline):
            resumed = recovery.finish_pending(pipeline)
        yield LockedLake(pipeline, lock, removed, resumed)
    finally:
        lock.release()


def run_pipeline(
    settings: BulletinSettings,
    progress: Optional[ProgressCallback] = None,
    now: Optional[dt.datetime] = None,
) -> RunSummary:
    """One run of `bulletin_source` the way our CLI runs it: the lock before the state, a crashed
    run's leftovers first, the --if-changed probe, and collections that fail (a 404, a server that
    keeps failing) isolated: the healthy ones load, then `EndpointsFailed` names the failed ones."""
    started = time.monotonic()
    configure_parquet(settings)
    configure_arrow_memory()
    extraction: Optional[Extraction] = None
    skipped: Dict[str, str] = {}
    failed: Dict[str, WordPressError] = {}
    info: Optional[LoadInfo] = None
    deletions: Dict[str, SweepResult] = {}
    stats = HttpStats()
    with locked_lake(settings) as lake:
        pipeline = lake.pipeline
        continued = _continuations(pipeline, settings)
        plans = {
            endpoint: plan_window(
                endpoint,
                settings,
                stored_cursor(pipeline, endpoint),
                settings.collection(endpoint).incremental,
                continued.get(endpoint),
            )
            for endpoint in settings.endpoints
        }
        if settings.if_changed:
            skipped = _probe(pipeline, settings, plans, failed, stats)
        to_load = [e for e in settings.endpoints if e not in skipped and e not in failed]
        while to_load:
            run_settings = copy.copy(settings)  # the caller's settings stay as they were
            run_settings.endpoints = list(to_load)
            extraction = Extraction(run_settings, progress, lock=lake.lock, now=now, continued=continued)
            try:
                with dlt_step(pipeline):
                    # endpoints given: dlt would otherwise parse SOURCES__BULLETIN__ENDPOINTS=pages,media as JSON
                    source = bulletin_source(endpoints=run_settings.endpoints, extraction=extraction)
                    info = pipeline.run(source, loader_file_format="parquet")
                info.raise_on_failed_jobs()
                break
            except WordPressError as exc:
                culprit = _endpoint_of(exc, run_settings)
                if culprit is None or isinstance(exc, WordPressUnreachable):
                    raise  # the site itself failed, not one collection
                failed[culprit] = exc  # nothing of this attempt was committed: retry without it
                to_load.remove(culprit)
            finally:
                extraction.end()
                stats.add(extraction.session.stats)
        if settings.sweep_deletions and not failed:
            # after the load, under its lock, in its partition
            inserted_at = extraction.inserted_at if extraction else (now or dt.datetime.now(dt.UTC))
            deletions = _sweep_deletions(pipeline, settings, inserted_at, stats)

    loaded = [e for e in settings.endpoints if e not in skipped and e not in failed]
    # the endpoints read (or failed); all of them when every one was found unchanged
    listed = [e for e in settings.endpoints if e not in skipped] or settings.endpoints
    run = _summarise(pipeline, listed, loaded, plans, info, extraction, stats, started)
    if info and extraction:
        run.partition = partition_datetime(settings, extraction.inserted_at).strftime(PARTITION_FORMAT)
    run.skipped = skipped
    run.failed = {endpoint: str(exc) for endpoint, exc in failed.items()}
    run.resumed, run.removed, run.deletions = lake.resumed, lake.removed, deletions
    if failed:
        if not loaded:
            raise next(iter(failed.values()))
        raise EndpointsFailed(run)
    if settings.strict and run.rejected:
        raise RejectedRecords(
            f"{run.rejected} record(s) failed validation (written to the `{REJECTED_TABLE}` table); "
            f"first: {next(e.rejected_examples[0] for e in run.endpoints if e.rejected_examples)}"
        )
    return run


def _continuations(pipeline: dlt.Pipeline, settings: BulletinSettings) -> Dict[str, Optional[Continuation]]:
    """Where the lake continues, for each incremental endpoint without a stored cursor."""
    if settings.full_refresh or settings.last_modified_date:
        return {}
    without = [
        e for e in settings.endpoints if settings.collection(e).incremental and stored_cursor(pipeline, e) is None
    ]
    return lake_continuations(pipeline, without, ledger_horizon(settings))


def _probe(
    pipeline: dlt.Pipeline,
    settings: BulletinSettings,
    plans: Dict[str, WindowPlan],
    failed: Dict[str, WordPressError],
    stats: HttpStats,
) -> Dict[str, str]:
    """--if-changed: the endpoints whose first window holds no version not yet written (-> why)."""
    unchanged: Dict[str, str] = {}
    session = WordPressSession(settings.http)
    try:
        for endpoint in settings.endpoints:
            try:
                result = probe_endpoint(
                    session.adapter, settings, endpoint, plans[endpoint], written_versions(pipeline, endpoint)
                )
            except WordPressError as exc:
                failed[endpoint] = exc
                continue
            if not result.changed:
                unchanged[endpoint] = result.reason
    finally:
        session.close()
        stats.add(session.stats)
    return unchanged


def _sweep_deletions(
    pipeline: dlt.Pipeline, settings: BulletinSettings, inserted_at: dt.datetime, stats: HttpStats
) -> Dict[str, SweepResult]:
    session = WordPressSession(settings.http)
    try:
        with dlt_step(pipeline):
            return sweep_deletions(pipeline, settings, session.adapter, inserted_at)
    finally:
        session.close()
        stats.add(session.stats)


def _summarise(
    pipeline: dlt.Pipeline,
    endpoints: List[str],
    loaded: List[str],
    plans: Dict[str, WindowPlan],
    info: Optional[LoadInfo],
    extraction: Optional[Extraction],
    http: HttpStats,
    started: float,
) -> RunSummary:
    envelopes = extraction.envelopes if extraction else {}
    paginators = extraction.paginators if extraction else {}
    summaries = []
    for endpoint in endpoints:
        plan = plans[endpoint]
        summary = EndpointSummary(
            endpoint=endpoint,
            mode=plan.mode if endpoint in loaded else "unchanged",
            window=plan.describe(),
            cursor_before=plan.stored_cursor,
            cursor_after=stored_cursor(pipeline, endpoint),
            files=_files_written(info, table_name(endpoint)),
            rereads=paginators[endpoint].rereads if endpoint in paginators else 0,
        )
        if endpoint in envelopes:
            stats = envelopes[endpoint].stats
            summary.loaded, summary.rejected = stats.loaded, stats.rejected
            summary.duplicates_skipped, summary.rejected_examples = stats.duplicates, stats.rejected_examples
        summaries.append(summary)
    return RunSummary(
        pipeline_name=pipeline.pipeline_name,
        dataset_path=dataset_url(pipeline),
        load_id=info.loads_ids[0] if info and info.loads_ids else None,
        partition="",
        endpoints=summaries,
        seconds=round(time.monotonic() - started, 3),
        requests=http.requests,
        retries=http.retries,
        http_versions=dict(http.http_versions),
    )


def _endpoint_of(error: WordPressError, settings: BulletinSettings) -> Optional[str]:
    """The collection whose listing `error` came from (None: not one collection's failure)."""
    path = urlsplit(error.url).path.rstrip("/")
    spec = {p.rstrip("/"): spec for p, spec in digest_specs(settings).items()}.get(path)
    return spec.collection if spec is not None else None


def dataset_url(pipeline: dlt.Pipeline) -> str:
    return f"{pipeline.destination.config_params.get('bucket_url', '')}/{DATASET_NAME}"  # type: ignore[union-attr]


def written_versions(pipeline: dlt.Pipeline, endpoint: str) -> Optional[Dict[str, str]]:
    return source_state_value(pipeline, "resources", envelope_resource_name(endpoint), LEDGER_KEY)  # type: ignore[no-any-return]


@contextlib.contextmanager
def dlt_step(pipeline: dlt.Pipeline) -> Iterator[None]:
    """dlt's step failures as one-line errors; a load that failed while this process lives leaves
    no partial file in the lake (its jobs are written again by the next run)."""
    try:
        yield
    except PipelineStepFailed as exc:
        cause = _find_cause(exc)
        step = exc.step
        if step == "load":
            with contextlib.suppress(Exception):  # the destination may be what failed
                recovery.remove_incomplete_loads(pipeline)
        if isinstance(cause, (BulletinError, KeyboardInterrupt)):
            raise cause from exc
        if step in ("extract", "normalize") and isinstance(cause, OSError) and cause.errno is not None:
            raise _working_files_error(pipeline.pipelines_dir, cause) from exc  # they write only there
        if step == "load" or step == "sync":
            raise DestinationError(f"writing to the destination failed ({step}): {first_line(cause)}") from exc
        raise BulletinError(f"{step} step failed: {first_line(cause)}") from exc


def _find_cause(exc: BaseException) -> BaseException:
    """The first of ours or an interrupt along the chain dlt wraps a resource's error in, else the innermost."""
    chain = list(cause_chain(exc))
    return next((e for e in chain if isinstance(e, (BulletinError, KeyboardInterrupt))), chain[-1])


def _files_written(info: Optional[LoadInfo], table: str) -> int:
    packages = info.load_packages if info else []
    return sum(job.job_file_info.table_name == table for p in packages for job in p.jobs.get("completed_jobs", []))
