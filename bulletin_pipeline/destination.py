"""dlt's filesystem destination, set up for the lake: bucket, layout, partition time, compression.

The lake is `{bucket_url}/{dataset_name}/`; dlt's own bookkeeping (`_dlt_loads`,
`_dlt_pipeline_state`, `_dlt_version`) lives beside the collection folders and ignores the
layout. Partition values come from one timestamp per run, overridable with --load-date/--load-time,
pinned in the run's load package at extract: every file of a package lands in the same
`load_date=/load_time=` folder, however often and by whichever later run it is loaded (recovery.py).
"""

from __future__ import annotations

import datetime as dt
import os
from typing import Optional

import pendulum
from dlt.destinations import filesystem

from .recovery import package_partition
from .settings import BulletinSettings, parse_date, parse_time

DATASET_NAME = "bulletin_raw"


def partition_datetime(settings: BulletinSettings, now: dt.datetime) -> pendulum.DateTime:
    """The run's partition timestamp (UTC), with the --load-date/--load-time overrides applied."""
    moment = now.astimezone(dt.UTC)
    if settings.load_date:
        day = parse_date(settings.load_date, "--load-date")
        moment = moment.replace(year=day.year, month=day.month, day=day.day)
    if settings.load_time:
        clock = parse_time(settings.load_time, "--load-time")
        moment = moment.replace(hour=clock.hour, minute=clock.minute, second=clock.second)
    return pendulum.instance(moment.replace(microsecond=0), tz="UTC")


def normalized_bucket_url(bucket_url: str) -> str:
    """Local folders become absolute: dlt keys restored state on the destination's location."""
    if "://" in bucket_url:
        return bucket_url
    return os.path.abspath(bucket_url)


# Where each kind of store takes its credentials from, by bucket_url scheme.
_CREDENTIALS = {
    "s3": "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
    "(or DESTINATION__FILESYSTEM__CREDENTIALS__AWS_ACCESS_KEY_ID / __AWS_SECRET_ACCESS_KEY)",
    "gs": "GOOGLE_APPLICATION_CREDENTIALS "
    "(or DESTINATION__FILESYSTEM__CREDENTIALS__PROJECT_ID / __CLIENT_EMAIL / __PRIVATE_KEY)",
    "az": "DESTINATION__FILESYSTEM__CREDENTIALS__AZURE_STORAGE_ACCOUNT_NAME / __AZURE_STORAGE_ACCOUNT_KEY",
}
_SCHEMES = {"s3a": "s3", "gcs": "gs", "abfs": "az", "abfss": "az", "adl": "az"}


def credentials_hint(bucket_url: str) -> str:
    """Which settings hold the credentials of the store `bucket_url` names."""
    scheme = bucket_url.split("://", 1)[0].lower() if "://" in bucket_url else "file"
    return _CREDENTIALS.get(_SCHEMES.get(scheme, scheme), "DESTINATION__FILESYSTEM__CREDENTIALS__*")


def make_destination(settings: BulletinSettings, bucket_url: Optional[str] = None) -> filesystem:
    assert settings.bucket_url is not None
    return filesystem(
        bucket_url=normalized_bucket_url(bucket_url or settings.bucket_url),
        layout=settings.layout,
        current_datetime=package_partition,
    )


def configure_parquet(settings: BulletinSettings) -> None:
    """Parquet writer options go through dlt's config (the arrow path writes during extract)."""
    for section in (
        "NORMALIZE__DATA_WRITER__COMPRESSION",
        "EXTRACT__DATA_WRITER__COMPRESSION",
        "DATA_WRITER__COMPRESSION",
    ):
        os.environ.setdefault(section, settings.compression)


def configure_arrow_memory() -> None:
    """Arrow buffers from jemalloc, unless ARROW_DEFAULT_MEMORY_POOL says otherwise.

    Every page passes through short-lived arrow buffers; jemalloc hands freed memory back to the
    system as it decays, where pyarrow's default pool keeps it (bench/README.md has the figures).
    """
    if os.environ.get("ARROW_DEFAULT_MEMORY_POOL"):
        return
    import pyarrow as pa

    try:
        pa.set_memory_pool(pa.jemalloc_memory_pool())
    except (NotImplementedError, pa.ArrowNotImplementedError):
        pass  # a pyarrow build without jemalloc: keep its default
