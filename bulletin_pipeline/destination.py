"""dlt's filesystem destination, set up for the lake (`{bucket_url}/{dataset_name}/`): layout, the
run's partition time (pinned in its load package, recovery.py), compression, storage errors."""

from __future__ import annotations

import datetime as dt
import os
import posixpath
from typing import Iterator

import dlt
import pendulum
from dlt.destinations import filesystem

from .errors import DestinationError, cause_chain, first_line
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


def make_destination(settings: BulletinSettings) -> filesystem:
    bucket_url = settings.bucket_url
    assert bucket_url is not None  # resolve_settings always sets one
    return filesystem(
        # local folders become absolute: dlt keys restored state on the destination's location
        bucket_url=bucket_url if "://" in bucket_url else os.path.abspath(bucket_url),
        layout=settings.layout,
        current_datetime=package_partition,
    )


def configure_parquet(settings: BulletinSettings) -> None:
    """Parquet writer options go through dlt's config (the arrow path writes during extract)."""
    for step in ("NORMALIZE__", "EXTRACT__", ""):
        os.environ.setdefault(f"{step}DATA_WRITER__COMPRESSION", settings.compression)


def configure_arrow_memory() -> None:
    """Arrow buffers from jemalloc (it returns freed memory to the system) unless ARROW_DEFAULT_MEMORY_POOL is set."""
    if os.environ.get("ARROW_DEFAULT_MEMORY_POOL"):
        return
    import pyarrow as pa

    try:
        pa.set_memory_pool(pa.jemalloc_memory_pool())
    except (NotImplementedError, pa.ArrowNotImplementedError):
        pass  # a pyarrow build without jemalloc: keep its default


def preflight_destination(pipeline: dlt.Pipeline) -> None:
    """Prove the destination writable before any page is fetched, not after minutes of fetching."""
    bucket = pipeline.destination.config_params.get("bucket_url", "")  # type: ignore[union-attr]
    try:
        with pipeline.destination_client() as client:
            fs = client.fs_client  # type: ignore[attr-defined]
            dataset_path = client.dataset_path  # type: ignore[attr-defined]
            # beside the dataset until dlt created it: dlt initialises only a missing dataset folder
            folder = dataset_path if fs.isdir(dataset_path) else posixpath.dirname(dataset_path.rstrip("/"))
            if client.config.is_local_filesystem:  # type: ignore[attr-defined]
                # object stores have no folders, and s3fs's makedirs creates a missing bucket
                fs.makedirs(folder, exist_ok=True)
            probe = posixpath.join(folder, "_bulletin_preflight")
            fs.pipe(probe, b"ok")
            fs.rm(probe)
    except Exception as exc:  # noqa: BLE001 - rendered as one line for the user
        raise DestinationError(f"cannot write to {bucket}: {describe_storage_error(exc, bucket)}") from exc


# Where each kind of store takes its credentials from, by bucket_url scheme.
CREDENTIALS = {
    "s3": "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
    "(or DESTINATION__FILESYSTEM__CREDENTIALS__AWS_ACCESS_KEY_ID / __AWS_SECRET_ACCESS_KEY)",
    "gs": "GOOGLE_APPLICATION_CREDENTIALS "
    "(or DESTINATION__FILESYSTEM__CREDENTIALS__PROJECT_ID / __CLIENT_EMAIL / __PRIVATE_KEY)",
    "az": "DESTINATION__FILESYSTEM__CREDENTIALS__AZURE_STORAGE_ACCOUNT_NAME / __AZURE_STORAGE_ACCOUNT_KEY",
}
SCHEMES = {"s3a": "s3", "gcs": "gs", "abfs": "az", "abfss": "az", "adl": "az"}


def describe_storage_error(exc: BaseException, bucket: str = "") -> str:
    """One line for a storage error, with the credential hints of the bucket's kind of store."""
    text = first_line(exc)
    lowered = f"{' '.join(_error_codes(exc))} {text}".lower()
    scheme = bucket.split("://", 1)[0].lower() if "://" in bucket else "file"
    where = CREDENTIALS.get(SCHEMES.get(scheme, scheme), "DESTINATION__FILESYSTEM__CREDENTIALS__*")
    if "nosuchbucket" in lowered or "bucket does not exist" in lowered or "specified bucket" in lowered:
        return f"the bucket does not exist ({text}); create it or fix bucket_url"
    if any(k in lowered for k in ("invalidaccesskeyid", "signaturedoesnotmatch", "accessdenied", "forbidden", "403")):
        return f"the credentials were rejected ({text}); check {where}"
    missing = ("nocredentials", "unable to locate credentials")
    if any(k in lowered for k in missing) or ("configfieldmissingexception" in lowered and "credentials" in lowered):
        return f"no credentials found; set {where}"
    return text


def _error_codes(exc: BaseException) -> Iterator[str]:
    """Exception type names and S3 error codes along the cause chain: s3fs raises a PermissionError
    or FileNotFoundError with only the message, the ClientError (and its code) as its cause."""
    for current in cause_chain(exc):
        yield type(current).__name__
        response = getattr(current, "response", None)
        if isinstance(response, dict):
            yield str(response.get("Error", {}).get("Code", ""))
