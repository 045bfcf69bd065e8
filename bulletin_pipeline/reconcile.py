"""`reconcile`: the lake against the site, per endpoint, and the repair of what differs.

Each endpoint's sweep (sweep.py) is compared with the lake's live ids (lakeindex.py): ids the lake
lacks, ids whose newest lake version is not the site's, and ids the lake holds that the site no
longer serves (confirmed one by one with `include=`). Read-only by default; `repair` loads the
missing and stale ids through the normal pipeline (a stateless run restricted with `include=`, so
no cursor moves) and writes a tombstone for each id no longer served. Only a complete sweep is
compared: an incomplete one concludes nothing, and never yields a tombstone.
"""

from __future__ import annotations

import copy
import datetime as dt
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from .deletions import sweep_deletions
from .extraction import check_site
from .lake import open_lake
from .lakeindex import LakeIndex, build_index
from .pipeline import dlt_step, locked_lake, make_pipeline, restore_state, run_pipeline
from .settings import EARLIEST_DATE, BulletinSettings
from .sweep import Listing, SweepIncomplete, confirm_gone, sweep
from .transport import HttpxAdapter

# ids per endpoint in one repair run: `include=` of 500 ids keeps the URL near 4 KB
REPAIR_BATCH = 500


@dataclass
class EndpointReport:
    """One endpoint's comparison; `problem` is set when its sweep was incomplete."""

    endpoint: str
    served: int = 0
    hidden: int = 0
    in_lake: int = 0
    missing: List[int] = field(default_factory=list)
    stale: List[int] = field(default_factory=list)
    gone: List[int] = field(default_factory=list)
    problem: Optional[str] = None
    loaded: int = 0
    tombstones: int = 0

    @property
    def differences(self) -> int:
        return len(self.missing) + len(self.stale) + len(self.gone)

    def describe(self, repaired: bool) -> str:
        if self.problem is not None:
            return f"{self.endpoint}: sweep incomplete, nothing compared and no tombstones written ({self.problem})"
        hidden = f" (+{self.hidden} hidden by WordPress)" if self.hidden else ""
        head = f"{self.endpoint}: {self.served} served{hidden}, {self.in_lake} live in the lake"
        if not self.differences:
            return f"{head}: in step"
        parts = [
            f"{len(ids)} {what} ({_sample(ids)})"
            for what, ids in (("missing", self.missing), ("stale", self.stale), ("no longer served", self.gone))
            if ids
        ]
        line = f"{head}: {', '.join(parts)}"
        if repaired:
            line += f"; repaired: {self.loaded} record(s) loaded, {self.tombstones} tombstone(s) written"
        return line


@dataclass
class ReconcileReport:
    endpoints: List[EndpointReport]
    repaired: bool

    @property
    def in_step(self) -> bool:
        """True when every sweep was complete and nothing differs (or all of it was repaired)."""
        complete = all(e.problem is None for e in self.endpoints)
        return complete and (self.repaired or not any(e.differences for e in self.endpoints))


def reconcile(settings: BulletinSettings, repair: bool = False, now: Optional[dt.datetime] = None) -> ReconcileReport:
    """Compare every endpoint of `settings` with the site; `repair` makes the lake match it."""
    inserted_at = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    adapter = HttpxAdapter(settings.http)
    try:
        listings = {endpoint: sweep(adapter, settings, endpoint) for endpoint in settings.endpoints}
        indexes = read_indexes(settings, settings.endpoints)
        reports = [compare(adapter, settings, listings[e], indexes[e]) for e in settings.endpoints]
        if repair:
            loaded = load_records(settings, {r.endpoint: r.missing + r.stale for r in reports}, inserted_at)
            written = write_tombstones(settings, adapter, listings, inserted_at)
            for report in reports:
                report.loaded, report.tombstones = loaded.get(report.endpoint, 0), written.get(report.endpoint, 0)
    finally:
        adapter.close()
    return ReconcileReport(reports, repair)


def compare(adapter: HttpxAdapter, settings: BulletinSettings, listing: Listing, index: LakeIndex) -> EndpointReport:
    """The differences between a sweep and the lake; absences are confirmed with `include=`."""
    report = EndpointReport(listing.endpoint, problem=listing.problem)
    if not listing.complete:
        return report
    live = index.live()
    served = dict(listing.served)
    try:
        gone, still = confirm_gone(adapter, settings, listing.endpoint, set(live) - set(served))
    except SweepIncomplete as exc:
        report.problem = str(exc)
        return report
    served.update(still)  # served after all: the listing moved under the sweep
    report.served, report.hidden, report.in_lake = len(served), listing.hidden, len(live)
    report.missing = sorted(set(served) - set(live))
    report.stale = sorted(i for i in set(served) & set(live) if served[i] != live[i].version)
    report.gone = sorted(gone)
    return report


def read_indexes(settings: BulletinSettings, endpoints: List[str]) -> Dict[str, LakeIndex]:
    """Each endpoint's index, from a lake of this site (a lake another site loaded is refused)."""
    pipeline = make_pipeline(settings)
    with open_lake(pipeline) as lake:
        if lake.fs.isdir(lake.dataset_path):
            restore_state(pipeline)
            check_site(pipeline, settings)
        return {endpoint: build_index(lake, endpoint) for endpoint in endpoints}


def repair_settings(settings: BulletinSettings, ids: Dict[str, List[int]]) -> BulletinSettings:
    """`settings` for a run that loads exactly `ids` (endpoint -> ids): `include=` on each
    collection, a backfill from the earliest date (no cursor moves; the ledger notes what it writes)."""
    repaired = copy.copy(settings)
    repaired.endpoints = [endpoint for endpoint in settings.endpoints if ids.get(endpoint)]
    repaired.full_refresh, repaired.if_changed = False, False
    repaired.last_modified_date = EARLIEST_DATE.isoformat()
    collections = copy.deepcopy(settings.collections or {})
    for endpoint in repaired.endpoints:
        raw = dict(collections.get(endpoint) or {})
        raw["params"] = {**(raw.get("params") or {}), "include": ",".join(map(str, sorted(ids[endpoint])))}
        collections[endpoint] = raw
    repaired.collections = collections
    return repaired


def load_records(settings: BulletinSettings, ids: Dict[str, List[int]], inserted_at: dt.datetime) -> Dict[str, int]:
    """Load `ids` (endpoint -> ids) through the normal pipeline, `REPAIR_BATCH` per endpoint a run;
    returns the records loaded per endpoint."""
    loaded: Dict[str, int] = {}
    longest = max((len(v) for v in ids.values()), default=0)
    for start in range(0, longest, REPAIR_BATCH):
        batch = {endpoint: sorted(v)[start : start + REPAIR_BATCH] for endpoint, v in ids.items()}
        if not any(batch.values()):
            continue
        summary = run_pipeline(repair_settings(settings, batch), now=inserted_at)
        for endpoint in summary.endpoints:
            loaded[endpoint.endpoint] = loaded.get(endpoint.endpoint, 0) + endpoint.loaded
    return loaded


def write_tombstones(
    settings: BulletinSettings, adapter: HttpxAdapter, listings: Dict[str, Listing], inserted_at: dt.datetime
) -> Dict[str, int]:
    """Under the lake lock, the deletion sweep's tombstones for `listings`; how many per endpoint."""
    if not any(listing.complete for listing in listings.values()):
        return {}
    with locked_lake(settings) as lake, dlt_step(lake.pipeline):
        results = sweep_deletions(lake.pipeline, settings, adapter, inserted_at, listings)
    return {endpoint: result.tombstones or 0 for endpoint, result in results.items()}


def _sample(ids: List[int], count: int = 3) -> str:
    shown = ", ".join(map(str, ids[:count]))
    return f"e.g. {shown}{', ...' if len(ids) > count else ''}"
