"""dlt's filesystem destination, set up for the lake (`{bucket_url}/{dataset_name}/`): layout, the
run's partition time (pinned in its load package, recovery.py), compression, storage errors."""

from __future__ import annotations

import datetime as dt
import json
import os
import posixpath
from typing import Any, Iterator, Optional

import dlt
import pendulum
from dlt.destinations import filesystem
from dlt.destinations.impl.filesystem.filesystem import CURRENT_VERSION as STORAGE_VERSION

from .errors import DestinationError, cause_chain, first_line
from .recovery import package_partition
from .settings import DEFAULT_BUCKET_URL, BulletinSettings, parse_date, parse_time

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


def bulletin_destination(
    bucket_url: Optional[str] = None, layout: Optional[str] = None, compression: Optional[str] = None
) -> filesystem:
    """dlt's filesystem destination set up for the lake: partition folders, pinned partition time, Parquet.

    Args:
        bucket_url: where the lake lives (`s3://bucket/prefix`, a folder); default `sources.bulletin.bucket_url`,
            then `destination.filesystem.bucket_url`, then the current folder.
        layout: file layout (default `sources.bulletin.layout`, the contract's partition folders).
        compression: Parquet compression (default `sources.bulletin.compression`, snappy).

    Returns:
        A destination for `dlt.pipeline(..., destination=bulletin_destination(), dataset_name="bulletin_raw")`.
    """
    settings = BulletinSettings()
    settings.bucket_url = bucket_url or _configured("bucket_url") or dlt.config.get("destination.filesystem.bucket_url")
    settings.bucket_url = settings.bucket_url or DEFAULT_BUCKET_URL
    settings.layout = layout or _configured("layout") or settings.layout
    settings.compression = compression or _configured("compression") or settings.compression
    configure_parquet(settings)
    configure_arrow_memory()
    return make_destination(settings)


def _configured(key: str) -> Optional[str]:
    return dlt.config.get(f"sources.bulletin.{key}")  # type: ignore[no-any-return]


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
            if client.config.is_local_filesystem:  # type: ignore[attr-defined]
                adopt_dataset_folder(client)
    except Exception as exc:  # noqa: BLE001 - rendered as one line for the user
        raise DestinationError(f"cannot write to {bucket}: {describe_storage_error(exc, bucket)}") from exc


def adopt_dataset_folder(client: Any) -> None:
    """dlt creates a dataset folder lacking its `init` marker with a `makedirs` that fails on local disk
    when the folder exists (the original's `bulletin_raw/`): write the marker dlt would write."""
    if client.fs_client.isdir(client.dataset_path) and not client.is_storage_initialized():
        client.fs_client.write_text(
            client.init_file_path,
            json.dumps({"initial_version": STORAGE_VERSION, "current_version": STORAGE_VERSION}),
            encoding="utf-8",
        )


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
