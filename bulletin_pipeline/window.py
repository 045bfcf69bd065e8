"""The incremental window: which records a run asks for, and why none is lost or written twice.

WordPress's `modified_after` is strict, site-local and per second, so a record saved in the
cursor's second or in the hour repeated when daylight saving ends sits at or before the cursor:
every incremental run re-reads `overlap_seconds` behind it (dlt's `lag`). dlt's boundary dedup
keys on that untrustworthy cursor, so it is off and `WrittenVersions` drops versions already
written instead; a version is `id` + `modified_gmt` (a hash varies with WordPress's rendering,
local `modified` repeats in the DST hour).
"""

from __future__ import annotations

import datetime as dt
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Dict, MutableMapping, Optional

from .continuation import Continuation
from .settings import WP_DATETIME_FORMAT, BulletinSettings, parse_date

# Full refresh of a collection that has no cursor yet: a floor below any real `modified`.
EARLIEST = "1900-01-01T00:00:00"
# Stateless runs (backfill) need an end_value; dlt treats the end as exclusive.
FAR_FUTURE = "9999-12-31T23:59:59"
LEDGER_KEY = "written_versions"
# the newest version a cursor-moving run wrote: the ledger keeps `horizon` behind it
LEDGER_NEWEST_KEY = "written_versions_newest"
# Back past any cursor before the year 2800, yet keeps dlt's lagged strings at four-digit years.
FULL_READ_LAG = 900 * 365 * 86400


@dataclass(frozen=True)
class WindowPlan:
    """What one endpoint asks for in this run, after applying the baseline precedence."""

    endpoint: str
    mode: str  # full_refresh | backfill | incremental | initial | continuation | snapshot
    start: Optional[str]  # sent as modified_after (None: no filter)
    stateful: bool  # does this run move the stored cursor?
    stored_cursor: Optional[str]
    continued: Optional[Continuation] = None  # the lake's cursor and written versions (continuation.py)

    def describe(self) -> str:
        if self.mode == "snapshot":
            return "whole collection (not incremental)"
        if self.start is None:
            return "whole collection"
        if self.continued is not None:
            return f"modified after {self.start} (continuing the lake from {self.continued.cursor})"
        return f"modified after {self.start}"


def plan_window(
    endpoint: str,
    settings: BulletinSettings,
    stored_cursor: Optional[str],
    incremental: bool = True,
    continued: Optional[Continuation] = None,
) -> WindowPlan:
    """Baseline precedence: --full-refresh > --last-modified-date > stored cursor > the lake's newest
    `modified` (`continued`) > default baseline."""
    if not incremental:
        return WindowPlan(endpoint, "snapshot", None, False, None)
    if settings.full_refresh:
        # stateful, so the written versions and the cursor move on with the records read
        return WindowPlan(endpoint, "full_refresh", None, True, stored_cursor)
    if settings.last_modified_date:
        day = parse_date(settings.last_modified_date, "--last-modified-date")
        # "modified on or after D": WordPress's filter is strict, so start one second earlier.
        start = (dt.datetime.combine(day, dt.time()) - dt.timedelta(seconds=1)).strftime(WP_DATETIME_FORMAT)
        return WindowPlan(endpoint, "backfill", start, False, stored_cursor)
    if stored_cursor:
        # dlt's lag never crosses initial_value; mirror that so the summary shows what is sent
        lagged = max(_lag(stored_cursor, settings.overlap_seconds), settings.default_baseline_datetime)
        return WindowPlan(endpoint, "incremental", lagged, True, stored_cursor)
    if continued is not None:
        lagged = max(_lag(continued.cursor, settings.overlap_seconds), settings.default_baseline_datetime)
        return WindowPlan(endpoint, "continuation", lagged, True, None, continued)
    return WindowPlan(endpoint, "initial", settings.default_baseline_datetime, True, None)


def incremental_config(plan: WindowPlan, settings: BulletinSettings) -> Optional[Dict[str, Any]]:
    """The rest_api `incremental` block for a plan (None: the endpoint is read without one)."""
    # primary_key=[]: dlt's boundary dedup off (it would drop a record saved again in the same second)
    base: Dict[str, Any] = {"cursor_path": "modified", "on_cursor_value_missing": "include", "primary_key": []}
    if plan.mode in ("incremental", "initial"):
        return {**base, "initial_value": settings.default_baseline_datetime, "lag": settings.overlap_seconds}
    if plan.mode == "continuation":
        # no cursor in state: dlt starts at initial_value, the lake's cursor already lagged
        return {**base, "initial_value": plan.start, "lag": settings.overlap_seconds}
    if plan.mode == "full_refresh":
        # a lag past any cursor: dlt starts at initial_value whatever the state holds
        return {**base, "initial_value": EARLIEST, "lag": FULL_READ_LAG}
    if plan.mode == "backfill":
        # end_value makes dlt's incremental stateless: a backfill never moves the stored cursor
        return {**base, "initial_value": plan.start, "end_value": FAR_FUTURE}
    return None


def _lag(value: str, seconds: int) -> str:
    moved = dt.datetime.strptime(value, WP_DATETIME_FORMAT) - dt.timedelta(seconds=seconds)
    return moved.strftime(WP_DATETIME_FORMAT)


class WrittenVersions:
    """Which record versions are already written, for the overlap dedup.

    `persistent` is dlt resource state (None: dedup within the run only); its map (id -> version)
    is pruned to `horizon_seconds` behind the newest version a cursor-moving run wrote, not after
    `now`. A run that does not move the cursor (a backfill, a repair) writes what it reads, yet
    notes it, so the next incremental run does not write it again. `recent` bounds the run-local map."""

    def __init__(
        self,
        persistent: Optional[MutableMapping[str, Any]],
        horizon_seconds: int,
        recent: Optional[int] = None,
        now: Optional[dt.datetime] = None,
        moves_cursor: bool = True,
    ) -> None:
        self._horizon = horizon_seconds
        self._recent = recent
        self._latest = (now or dt.datetime.now(dt.UTC)).strftime(WP_DATETIME_FORMAT)
        self._moves_cursor = moves_cursor
        self._run: OrderedDict[int, str] = OrderedDict()
        stored: Dict[str, str] = {} if persistent is None else persistent.get(LEDGER_KEY, {})
        newest = None if persistent is None else persistent.get(LEDGER_NEWEST_KEY)
        self._newest: str = newest or max((v for v in stored.values() if v[:19] <= self._latest), default="")
        # with no cursor run to anchor it, a backfill's notes could only grow: it keeps none
        self._persistent = persistent if persistent is not None and (moves_cursor or self._newest) else None
        self._stored = {} if self._persistent is None else self._persistent.setdefault(LEDGER_KEY, stored)
        if self._persistent is not None and self._newest:
            self._persistent[LEDGER_NEWEST_KEY] = self._newest
        self._prune()

    def is_written(self, record_id: int, version: Optional[str]) -> bool:
        if version is None:
            return False
        if self._run.get(record_id) == version:
            return True
        return self._moves_cursor and self._stored.get(str(record_id)) == version

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
        if self._persistent is not None:
            self._stored[str(record_id)] = version
            if self._moves_cursor and version[:19] <= self._latest and version > self._newest:
                self._newest = self._persistent[LEDGER_NEWEST_KEY] = version
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
    """Records the run-local dedup keeps: four times the farthest a gap re-read reaches back
    (per_page * 2**attempts), at least 10,000."""
    return max(10_000, 4 * settings.per_page * 2 ** min(settings.max_reread_attempts, 20))


def ledger_horizon(settings: BulletinSettings) -> int:
    # the overlap plus a day: local `modified` and `modified_gmt` differ by up to 14 h
    return settings.overlap_seconds + 86400
