"""One extract of the source, from its first resource or request to the end of the pipeline's run.

The source is an ordinary dlt source: whoever calls `pipeline.run(bulletin_source())` (our CLI,
dagster-dlt, dlt's Airflow helper) gets the lake lock, the site check, the run's time and the HTTP
pools from here, and the package records the site, its load id and its partition time, whichever
endpoints it was given. dlt has no hook for "a run begins/ends", so the first resource or request begins an
extraction and a watcher ends it when the pipeline's `last_trace` (public) shows the run is over.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
from typing import Any, Dict, Optional
from urllib.parse import quote, unquote, urlsplit

import dlt
from dlt.sources.helpers.rest_client.utils import join_url

from . import recovery
from .continuation import Continuation, lake_continuations
from .destination import partition_datetime
from .digest import DigestSpec
from .envelope import Envelope
from .errors import ConfigError, LakeLocked
from .lock import LakeLock, lake_lock
from .redact import without_credentials
from .settings import BulletinSettings
from .tables import SOURCE_NAME
from .transport import WordPressSession
from .window import ledger_horizon
from .wordpress import OverlappingWindowPaginator, ProgressCallback

LAST_LOAD_KEY = "last_load_id"
WATCH_INTERVAL = 0.1


def source_state_value(pipeline: dlt.Pipeline, *path: str) -> Any:
    """The value at `path` under this source's dlt state (None when absent)."""
    value: Any = pipeline.state
    try:
        for key in ("sources", SOURCE_NAME, *path):
            value = value[key]
    except (KeyError, TypeError):
        return None
    return value


def collection_path(settings: BulletinSettings, endpoint: str) -> str:
    """The collection's path below base_url, percent-encoded segment by segment: a custom post
    type's rest_base may hold spaces or non-ASCII letters (a path given encoded stays as it is)."""
    path = settings.collection(endpoint).path or endpoint
    return "/".join(quote(unquote(segment), safe="") for segment in path.split("/"))


def digest_specs(settings: BulletinSettings) -> Dict[str, DigestSpec]:
    """URL path of each collection's listing -> how its pages are digested (digest.py)."""
    return {
        urlsplit(join_url(settings.base_url or "", collection_path(settings, e))).path: DigestSpec(
            e, settings.collection(e).incremental
        )
        for e in settings.endpoints
    }


class Extraction:
    """What one run of the source holds: its time, its lake lock, its session and its counters.

    `lock`: the lake lock a caller already holds (our CLI takes it before restoring state); without
    it the extraction takes the lock itself and releases it when the run ends. `continued`: per
    endpoint without a cursor, where the caller found the lake continues (None: nothing to continue)."""

    def __init__(
        self,
        settings: BulletinSettings,
        progress: Optional[ProgressCallback] = None,
        lock: Optional[LakeLock] = None,
        now: Optional[dt.datetime] = None,
        continued: Optional[Dict[str, Optional[Continuation]]] = None,
    ) -> None:
        self.settings = settings
        self.progress = progress
        self.continued: Dict[str, Optional[Continuation]] = dict(continued or {})
        self.session = WordPressSession(
            settings.http, digest_specs(settings), digest_workers(settings), on_open=self.begin
        )
        self.envelopes: Dict[str, Envelope] = {}
        self.paginators: Dict[str, OverlappingWindowPaginator] = {}
        self.inserted_at = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
        self.load_id: Optional[str] = None
        self._now = now
        self._given_lock = lock
        self._lock: Optional[LakeLock] = None
        self._mutex = threading.RLock()
        self._ended = threading.Event()

    def begin(self) -> None:
        """Start this load package's extraction once (idempotent); runs inside dlt's extract."""
        load_id = dlt.current.load_package_state()["load_id"]
        with self._mutex:
            if load_id == self.load_id:
                return
            if self.load_id is not None:
                self.end()  # an extract whose run we never saw end (e.g. `pipeline.extract` alone)
            pipeline = dlt.current.pipeline()
            self.inserted_at = (self._now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
            self.envelopes.clear()
            if self._given_lock is None:
                # a run that just ended in this process lets go within a watch interval
                self._lock = lake_lock(pipeline, self.settings.lock_ttl_seconds, wait_seconds=20 * WATCH_INTERVAL)
                try:
                    check_site(pipeline, self.settings)
                    check_state_is_newest(pipeline)
                    recovery.remove_incomplete_loads(pipeline)
                    check_lake_is_continued(pipeline, self.settings, self.continued)
                except BaseException:
                    self._lock.release()
                    self._lock = None
                    raise
                self._ended = threading.Event()  # one per run: a watcher of an earlier run only ends that run
                watch = (pipeline, _trace_id(pipeline), self._ended)
                threading.Thread(target=self._watch, args=watch, daemon=True).start()
            # here, not in resources of their own: a run of some endpoints only (dagster-dlt's subsets,
            # `with_resources`) must record them too, or the next run finds a load newer than its state
            state = dlt.current.source_state()
            state["site"] = self.settings.site_id or self.settings.base_url or ""
            state[LAST_LOAD_KEY] = load_id
            recovery.pin_partition(partition_datetime(self.settings, self.inserted_at))
            self.load_id = load_id

    def started(self) -> dt.datetime:
        """Begin (if not yet) and return the run's time: `dl_inserted_at` and the partition."""
        self.begin()
        return self.inserted_at

    def end(self) -> None:
        """Close the HTTP pools and release a lock this extraction took (idempotent)."""
        with self._mutex:
            self._ended.set()
            self.session.close()
            if self._lock is not None:
                self._lock.release()
                self._lock = None
            self.load_id = None

    def _watch(self, pipeline: dlt.Pipeline, trace_before: Optional[str], ended: threading.Event) -> None:
        while not ended.wait(WATCH_INTERVAL):
            if _trace_id(pipeline) != trace_before:
                with self._mutex:
                    if not ended.is_set():
                        self.end()


def _trace_id(pipeline: dlt.Pipeline) -> Optional[str]:
    """The transaction of the pipeline's last finished run (a new one appears when a run ends)."""
    trace = pipeline.last_trace
    return trace.transaction_id if trace is not None else None


def digest_workers(settings: BulletinSettings) -> int:
    """One digest worker per CPU core beyond the one dlt's extract and the HTTP threads share."""
    if settings.digest_workers is not None:
        return settings.digest_workers
    return max(0, (os.cpu_count() or 1) - 1)


def check_site(pipeline: dlt.Pipeline, settings: BulletinSettings) -> None:
    """Cursors are only meaningful for the site that produced them: reusing, say, the demo's
    cursor against the real catalog would silently skip every record older than it."""
    # states written before credentials were kept out of the site id hold them: same site
    site = without_credentials(source_state_value(pipeline, "site") or "")
    if site and site != settings.site_id:
        where = f"--pipelines-dir {settings.pipelines_dir} " if settings.pipelines_dir else ""
        raise ConfigError(
            f"the stored state of pipeline {pipeline.pipeline_name} belongs to {site!r}, not {settings.site_id!r}; "
            "use another --bucket-url and --pipelines-dir for this site, or reset the old state with "
            f"`uv run dlt pipeline {where}{pipeline.pipeline_name} drop --drop-all` (and remove its lake folder)"
        )


def check_state_is_newest(pipeline: dlt.Pipeline) -> None:
    """A run that read its state before taking the lock may have missed a load committed in
    between: it would then read that load's window again with an older ledger and write it twice."""
    known = source_state_value(pipeline, LAST_LOAD_KEY)
    if known is None:
        return
    newer = [
        load_id for load_id in recovery.completed_source_loads(pipeline, SOURCE_NAME) if float(load_id) > float(known)
    ]
    if newer:
        raise LakeLocked(
            f"another run loaded this lake ({max(newer)}) after this run read its state; nothing was written, "
            "run again (a new run restores the newer state; a dlt pipeline object kept alive needs "
            "`pipeline.sync_destination()` first)"
        )


def check_lake_is_continued(
    pipeline: dlt.Pipeline, settings: BulletinSettings, continued: Dict[str, Optional[Continuation]]
) -> None:
    """A collection with no cursor whose partitions the lake already holds (the original's, or ours
    with the state lost) would be read from the baseline and every version in the lake written again;
    only a caller that plans the window before dlt binds it (`run_pipeline`) can continue it."""
    if settings.full_refresh or settings.last_modified_date:
        return
    unplanned = [
        e
        for e in settings.endpoints
        if e not in continued and settings.collection(e).incremental and not _has_cursor(pipeline, e)
    ]
    for endpoint, found in lake_continuations(pipeline, unplanned, ledger_horizon(settings)).items():
        if found is not None:
            raise ConfigError(
                f"the lake already holds {endpoint} (newest modified {found.cursor}) but this pipeline has no "
                "cursor for it: run `python bulletin_pipeline/run.py` (or run_pipeline) once, which continues "
                "the lake from there, or load it again with full_refresh"
            )


def _has_cursor(pipeline: dlt.Pipeline, endpoint: str) -> bool:
    """Whether dlt's incremental of the endpoint's rest_api resource (named after it) has moved past
    its initial value (dlt writes that initial value into the state when it binds the resource)."""
    cursor = source_state_value(pipeline, "resources", endpoint, "incremental", "modified") or {}
    return cursor.get("last_value") not in (None, cursor.get("initial_value"))
