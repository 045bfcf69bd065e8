"""Crash recovery: what a run killed between or inside dlt's steps left behind, made whole.

A load package's files land where they would have, however often and by whichever later run it is
loaded: the partition is pinned in the package at extract (`pin_partition`) and the destination
reads it back for every file it writes (`package_partition`).
"""

from __future__ import annotations

from typing import Any, Dict, cast

import dlt
import pendulum
from dlt.common.storages.exceptions import CurrentLoadPackageStateNotAvailable
from dlt.common.time import ensure_pendulum_datetime
from dlt.extract.resource import DltResource

PARTITION_KEY = "bulletin_partition"


def pin_partition(moment: pendulum.DateTime) -> DltResource:
    """A resource that stores the run's partition time in the package being extracted."""

    @dlt.resource(name="partition_pin")
    def partition_pin() -> Any:
        cast(Dict[str, Any], dlt.current.load_package_state()["state"])[PARTITION_KEY] = moment.isoformat()
        yield from ()

    return partition_pin


def package_partition() -> pendulum.DateTime:
    """The filesystem destination's `current_datetime`: the partition pinned in the package being
    loaded, else the package's creation time, else now; the same paths on every retry."""
    try:
        state = cast(Dict[str, Any], dlt.current.load_package_state()["state"])
    except CurrentLoadPackageStateNotAvailable:
        return pendulum.now("UTC")
    moment = state.get(PARTITION_KEY) or state.get("created_at")
    return ensure_pendulum_datetime(moment, pendulum.UTC) if moment else pendulum.now("UTC")
