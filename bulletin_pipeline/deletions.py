"""The deletion sweep: a tombstone for every id the lake holds live and the site no longer serves.

Runs inside a run that holds the lake lock with the state restored (after its load, or in
`reconcile --repair`): each endpoint's complete listing (sweep.py) against the lake's live ids
(lakeindex.py), every absence confirmed with `include=`, then one dlt load of the `deleted` rows in
the run's partition. An endpoint whose listing is incomplete gets no tombstone.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Dict, List, Optional

import dlt

from .destination import partition_datetime
from .lake import open_lake
from .lakeindex import build_index
from .settings import BulletinSettings
from .sweep import Listing, SweepIncomplete, confirm_gone, sweep
from .tombstones import Tombstone, tombstone_source
from .transport import HttpxAdapter


@dataclass
class SweepResult:
    """One endpoint's deletion sweep: its listing, and the tombstones written (None: incomplete)."""

    listing: Listing
    tombstones: Optional[int] = None

    def describe(self) -> str:
        endpoint = self.listing.endpoint
        if self.tombstones is None:
            return f"{endpoint}: deletion sweep incomplete, no tombstones written ({self.listing.problem})"
        return (
            f"{endpoint}: deletion sweep of {len(self.listing.served)} served, {self.tombstones} tombstone(s) written"
        )


def sweep_deletions(
    pipeline: dlt.Pipeline,
    settings: BulletinSettings,
    adapter: HttpxAdapter,
    inserted_at: dt.datetime,
    listings: Optional[Dict[str, Listing]] = None,
) -> Dict[str, SweepResult]:
    """Sweep `settings.endpoints` (unless `listings` are given) and write their tombstones through
    `pipeline`; the caller holds the lake lock and has the state restored."""
    if listings is None:
        listings = {endpoint: sweep(adapter, settings, endpoint) for endpoint in settings.endpoints}
    results = {endpoint: SweepResult(listing) for endpoint, listing in listings.items()}
    tombstones: List[Tombstone] = []
    with open_lake(pipeline) as lake:
        for endpoint, result in results.items():
            if not result.listing.complete:
                continue
            live = build_index(lake, endpoint).live()
            try:
                gone, _ = confirm_gone(adapter, settings, endpoint, set(live) - set(result.listing.served))
            except SweepIncomplete as exc:
                result.listing.problem = str(exc)
                continue
            tombstones.extend(Tombstone(i, endpoint, live[i].dl_hash, live[i].modified) for i in sorted(gone))
            result.tombstones = len(gone)
    if tombstones:
        source = tombstone_source(tombstones, inserted_at, partition_datetime(settings, inserted_at))
        pipeline.run(source, loader_file_format="parquet").raise_on_failed_jobs()
    return results
