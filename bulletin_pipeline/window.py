"""The incremental window: which records a run asks for, and why none is lost or written twice.

WordPress filters `modified_after` STRICTLY against the site-local `modified` column at one-second
resolution. Two ways a record can slip behind a cursor that only moves forward:

* same second: the previous run read second S (cursor = S); a record edited later in S has
  `modified == S` and is excluded by `modified_after=S`;
* daylight saving: when the site clock falls back, local time repeats an hour, so a record edited
  after the previous run can carry a local `modified` up to an hour *before* the cursor;
* (also: a record edited while a run is in progress may be skipped by that run's offset windows).

So every incremental run re-reads `overlap_seconds` (default 2 h: the repeated hour plus margin)
behind the stored cursor, through dlt's `lag`, and sends the lagged value as `modified_after` via
the `{incremental.start_value}` placeholder. dlt's own boundary dedup is off (it keys on the
cursor value, which is exactly what cannot be trusted here), so the overlap is deduplicated
here: `WrittenVersions` remembers, in dlt resource state, the version of every record written
inside the overlap horizon and drops a record whose version was already written. A version is
`id` + `modified_gmt` (not a hash - WordPress renders some HTML differently per request - and
not local `modified`, which repeats during the DST hour).

The cursor itself is dlt's: it is committed with the load package, so a run that fails before its
data is written leaves the stored cursor where it was.
"""

from __future__ import annotations

import datetime as dt
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Dict, MutableMapping, Optional

from .settings import WP_DATETIME_FORMAT, BulletinSettings, parse_date

# Full refresh of a collection that has no cursor yet: a floor below any real `modified`.
EARLIEST = "1900-01-01T00:00:00"
# Stateless runs (backfill) need an end_value; dlt treats the end as exclusive.
FAR_FUTURE = "9999-12-31T23:59:59"
LEDGER_KEY = "written_versions"


@dataclass(frozen=True)
class WindowPlan:
    """What one endpoint asks for in this run, after applying the baseline precedence."""

    endpoint: str
    mode: str  # full_refresh | backfill | incremental | initial | snapshot
    start: Optional[str]  # sent as modified_after (None: no filter)
    stateful: bool  # does this run move the stored cursor?
    stored_cursor: Optional[str]

    def describe(self) -> str:
        if self.mode == "snapshot":
            return "whole collection (not incremental)"
        if self.start is None:
            return "whole collection"
        return f"modified after {self.start}"


def plan_window(
    endpoint: str,
    settings: BulletinSettings,
    stored_cursor: Optional[str],
    incremental: bool = True,
) -> WindowPlan:
    """Baseline precedence: --full-refresh > --last-modified-date > stored cursor > default baseline."""
    if not incremental:
        return WindowPlan(endpoint, "snapshot", None, False, None)
    if settings.full_refresh:
        # With no cursor yet, the full read also establishes one (else the next run re-reads all).
        return WindowPlan(endpoint, "full_refresh", None, stored_cursor is None, stored_cursor)
    if settings.last_modified_date:
        day = parse_date(settings.last_modified_date, "--last-modified-date")
        # "modified on or after D": WordPress's filter is strict, so start one second earlier.
        start = (dt.datetime.combine(day, dt.time()) - dt.timedelta(seconds=1)).strftime(WP_DATETIME_FORMAT)
        return WindowPlan(endpoint, "backfill", start, False, stored_cursor)
    if stored_cursor:
        # dlt's lag never crosses initial_value; mirror that so the summary shows what is sent
        lagged = max(_lag(stored_cursor, settings.overlap_seconds), settings.default_baseline_datetime)
        return WindowPlan(endpoint, "incremental", lagged, True, stored_cursor)
    return WindowPlan(endpoint, "initial", settings.default_baseline_datetime, True, None)


def incremental_config(plan: WindowPlan, settings: BulletinSettings) -> Optional[Dict[str, Any]]:
    """The rest_api `incremental` block for a plan (None: the endpoint is read without one)."""
    # primary_key=[] switches dlt's boundary dedup off: it would hash every row at the highest
    # cursor value and drop a record saved again in that same second; the ledger dedups instead
    base: Dict[str, Any] = {"cursor_path": "modified", "on_cursor_value_missing": "include", "primary_key": []}
    if plan.mode in ("incremental", "initial"):
        return {**base, "initial_value": settings.default_baseline_datetime, "lag": settings.overlap_seconds}
    if plan.mode == "full_refresh" and plan.stateful:
        return {**base, "initial_value": EARLIEST}
    if plan.mode == "backfill":
        # end_value makes dlt's incremental stateless: a backfill never moves the stored cursor
        return {**base, "initial_value": plan.start, "end_value": FAR_FUTURE}
    return None


def _lag(value: str, seconds: int) -> str:
    moved = dt.datetime.strptime(value, WP_DATETIME_FORMAT) - dt.timedelta(seconds=seconds)
    return moved.strftime(WP_DATETIME_FORMAT)


def version_of(record: Dict[str, Any]) -> Optional[str]:
    version = record.get("modified_gmt") or record.get("modified")
    return version if isinstance(version, str) else None


class WrittenVersions:
    """Which record versions are already written, for the overlap dedup.

    `stored` is the map in dlt resource state (id -> version), committed with the load package;
    it only needs the versions the next run's overlap can bring back, so it is pruned to
    `horizon_seconds` behind the newest version up to `now` as it grows (a future-dated version
    comes back every run, so it is kept, and never counts as the newest). `stored` is None for stateless runs
    (backfills): they dedupe within the run only. `recent` bounds the run-local map (None: all),
    which only re-reads within this run consult.
    """

    def __init__(
        self,
        persistent: Optional[MutableMapping[str, Any]],
        horizon_seconds: int,
        recent: Optional[int] = None,
        now: Optional[dt.datetime] = None,
    ) -> None:
        self._horizon = horizon_seconds
        self._recent = recent
        self._latest = (now or dt.datetime.now(dt.UTC)).strftime(WP_DATETIME_FORMAT)
        self._run: OrderedDict[int, str] = OrderedDict()
        self._stored: Dict[str, str] = {} if persistent is None else persistent.setdefault(LEDGER_KEY, {})
        self._persist = persistent is not None
        self._newest = max((v for v in self._stored.values() if v[:19] <= self._latest), default="")
        self._prune()

    def is_written(self, record_id: int, version: Optional[str]) -> bool:
        if version is None:
            return False
        return self._run.get(record_id) == version or self._stored.get(str(record_id)) == version

    def admit(self, record_id: int, version: Optional[str]) -> bool:
        """False when this version is already written; else it is noted as written."""
        if self.is_written(record_id, version):
            return False
        self.add(record_id, version)
        return True

    def add(self, record_id: int, version: Optional[str]) -> None:
        if version is None:
            return
        self._run[record_id] = version
        self._run.move_to_end(record_id)
        if self._recent is not None and len(self._run) > self._recent:
            self._run.popitem(last=False)
        if self._persist:
            self._stored[str(record_id)] = version
            if version[:19] <= self._latest:
                self._newest = max(self._newest, version)
            if len(self._stored) > self._prune_at:
                self._prune()

    def __len__(self) -> int:
        return len(self._stored)

    def _prune(self) -> None:
        """Forget versions too old to come back through the next run's overlap."""
        self._prune_at = max(4096, 2 * len(self._stored))
        if not self._stored or not self._newest:
            return
        try:
            newest = dt.datetime.strptime(self._newest[:19], WP_DATETIME_FORMAT)
        except ValueError:
            return
        cutoff = (newest - dt.timedelta(seconds=self._horizon)).strftime(WP_DATETIME_FORMAT)
        for key in [k for k, v in self._stored.items() if v[:19] < cutoff]:
            del self._stored[key]
        self._prune_at = max(4096, 2 * len(self._stored))


def run_memory(settings: BulletinSettings) -> int:
    """How many recent records the run-local dedup keeps: a gap re-read backs off per_page/2,
    doubling, at most `max_reread_attempts` times (see wordpress.py), so it never reaches back
    more than per_page * 2**attempts records; four times that, and at least 10,000."""
    return max(10_000, 4 * settings.per_page * 2 ** min(settings.max_reread_attempts, 20))


def ledger_horizon(settings: BulletinSettings) -> int:
    # local `modified` and `modified_gmt` differ by the site's UTC offset (at most 14 h) and the
    # next run re-reads `overlap_seconds` behind its cursor: keep a day on top of the overlap
    return settings.overlap_seconds + 86400
