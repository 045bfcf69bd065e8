"""Typed settings under `sources.bulletin`, read through dlt's config providers (config.toml,
secrets.toml, environment); values passed to `resolve_settings` (CLI flags) win.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import difflib
import os
import re
from typing import Any, Callable, Dict, List, Optional, TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

import dlt
from dlt.common.configuration import configspec, resolve_configuration
from dlt.common.configuration.specs import BaseConfiguration
from dlt.common.configuration.utils import get_resolved_traces
from dlt.common.typing import TSecretStrValue

from .errors import ConfigError, cause_chain, first_line
from .redact import Names, query_names, redact_url, redact_value, without_credentials
from .tables import table_name

SECTIONS = ("sources", "bulletin")
DEFAULT_PIPELINE_NAME = "bulletin_pipeline"
DEFAULT_BUCKET_URL = "."  # the lake is {bucket_url}/{dataset_name}: ./bulletin_raw/
DEFAULT_LAYOUT = "{table_name}/load_date={YYYY}-{MM}-{DD}/load_time={HH}:{mm}:{ss}/{load_id}.{file_id}.{ext}"
# WordPress's own format for `modified`: site-local, no zone, whole seconds.
WP_DATETIME_FORMAT = "%Y-%m-%dT%H:%M:%S"
EARLIEST_DATE = dt.date(1900, 1, 1)  # no WordPress record is older (window.py's floor)
T = TypeVar("T")
_COLLECTION_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


@configspec
class HttpSettings(BaseConfiguration):
    """Connection pool, timeouts and retry policy (the original's `http_client` block)."""

    max_connections: int = 50
    max_keepalive_connections: int = 20
    connect_timeout: float = 10.0
    total_timeout: float = 30.0
    http2: bool = True
    max_attempts: int = 5
    backoff_initial: float = 5.0
    backoff_max: float = 60.0
    verify: Optional[str] = None
    """`None` verifies TLS with the system CAs; a path uses that CA bundle; "false" disables."""
    username: Optional[str] = None
    password: Optional[TSecretStrValue] = None
    """HTTP Basic credentials (secrets.toml or env); a base_url's `user:pass@` lands here."""
    secret_params: Optional[List[str]] = None
    """Query parameters whose values are masked in every output and store; a base_url's query names land here."""


@configspec
class CollectionSettings(BaseConfiguration):
    """Per-collection overrides; a collection needs none of these to be loaded."""

    path: Optional[str] = None
    """REST path below `base_url` when it differs from the name (custom post types' `rest_base`)."""
    incremental: bool = True
    """False for collections without `modified` (categories, tags, users): read fully every run."""
    params: Optional[Dict[str, Any]] = None


@configspec
class BulletinSettings(BaseConfiguration):
    base_url: Optional[str] = None
    endpoints: List[str] = dataclasses.field(default_factory=lambda: ["pages", "media"])
    per_page: int = 100
    default_baseline_datetime: str = "2000-01-01T00:00:00"
    overlap_seconds: int = 7200
    """How far each incremental run re-reads behind the stored cursor (see window.py)."""
    strict: bool = False
    full_refresh: bool = False
    if_changed: bool = False
    """Probe each endpoint first; load only those with versions not yet written (see probe.py)."""
    sweep_deletions: bool = False
    """After the load, tombstone the ids the site no longer serves (deletions.py)."""
    last_modified_date: Optional[str] = None
    load_date: Optional[str] = None
    load_time: Optional[str] = None
    bucket_url: Optional[str] = None
    layout: str = DEFAULT_LAYOUT
    compression: str = "snappy"
    pipelines_dir: Optional[str] = None
    pipeline_name: str = DEFAULT_PIPELINE_NAME
    """dlt's pipeline (its working folder and state); a configured site's is `bulletin_pipeline__{name}`."""
    max_reread_attempts: int = 5
    digest_workers: Optional[int] = None
    """Page-digest processes (digest.py); default one per CPU core but one, 0: in this process."""
    lock_ttl_seconds: int = 1800
    """Expiry of the lake lock (lock.py) a killed run leaves behind; a run renews it every third."""
    site_id: Optional[str] = None
    """Which site the stored state belongs to (default: base_url); a mismatch stops the run."""
    http: HttpSettings = dataclasses.field(default_factory=HttpSettings)
    collections: Optional[Dict[str, Any]] = None
    params: Optional[Dict[str, Any]] = None
    """Query parameters sent to every collection; a base_url's query lands here."""

    def on_resolved(self) -> None:
        if self.bucket_url is None:
            self.bucket_url = dlt.config.get("destination.filesystem.bucket_url") or DEFAULT_BUCKET_URL

    def collection(self, name: str) -> CollectionSettings:
        raw = (self.collections or {}).get(name) or {}
        if not isinstance(raw, dict):
            raise ConfigError(f"collections.{name} must be a table of settings, got {raw!r}")
        unknown = set(raw) - {"path", "incremental", "params"}
        if unknown:
            raise ConfigError(
                f"collections.{name}: unknown key(s) {', '.join(sorted(unknown))}; allowed: path, incremental, params"
            )
        params = {**(self.params or {}), **(raw.get("params") or {})}
        return CollectionSettings(**{**raw, "params": params or None})


def resolve_settings(**overrides: Any) -> BulletinSettings:
    """Resolve settings from dlt's providers, with non-None `overrides` (CLI flags) winning."""
    explicit = {k: v for k, v in overrides.items() if v is not None}
    http_overrides = explicit.pop("http", None)
    try:
        configured = dlt.config.get(".".join((*SECTIONS, "endpoints"))) if "endpoints" not in explicit else None
        if isinstance(configured, str) and not configured.lstrip().startswith("["):  # `pages,media`, not JSON
            explicit["endpoints"] = configured.split(",")
        settings = resolve_configuration(BulletinSettings(), sections=SECTIONS, explicit_value=explicit)
    except Exception as exc:  # dlt's config errors are multi-line; keep the first line (a TOML error's is its cause)
        line = first_line(exc)
        *_, innermost = cause_chain(exc)
        raise ConfigError(
            f"invalid configuration: {line}{' ' + first_line(innermost) if line.endswith(':') else ''}"
        ) from exc
    check_config_keys()
    if http_overrides:
        for key, value in http_overrides.items():
            setattr(settings.http, key, value)
    validate(settings)
    redact_config_traces(settings.http.secret_params or ())
    return settings


def check_config_keys() -> None:
    """A misspelled key under [sources.bulletin] (or its http table) in a TOML file is an error: dlt ignores it."""
    allowed = {"": set(BulletinSettings.get_resolvable_fields()) | {"sites"}}
    allowed["http."] = set(HttpSettings.get_resolvable_fields())
    for provider in dlt.config.config_providers:
        table, _ = (None, None) if provider.is_empty else provider.get_value(SECTIONS[1], Any, None, SECTIONS[0])
        if not isinstance(table, dict):
            continue  # environment variables and vaults are looked up by key: they cannot be listed
        http = table.get("http")
        tables: Dict[str, Dict[str, Any]] = {"": table, "http.": http if isinstance(http, dict) else {}}
        for prefix, keys in allowed.items():
            for key in sorted(set(tables[prefix]) - keys):
                close = difflib.get_close_matches(key, keys, n=1)
                hint = f"did you mean {prefix}{close[0]}?" if close else "see the keys in README.md's Configuration"
                raise ConfigError(f"{provider.name}: unknown key sources.bulletin.{prefix}{key}; {hint}")


def redact_config_traces(names: Names = ()) -> None:
    """dlt's run trace keeps the resolved config values (a base_url with user:pass@): redact them."""
    traces = get_resolved_traces()
    for log in (traces.resolved_traces, traces.all_traces):
        log[:] = [t._replace(value=redact_value(t.value, names)) for t in log]


def validate(settings: BulletinSettings) -> None:
    """Fail early, in one line, on settings that would only fail later in the middle of a load."""
    if not settings.base_url:
        raise ConfigError(
            "base_url is not set: pass --base-url https://site/wp-json/wp/v2/ (or --demo), "
            "or set sources.bulletin.base_url in .dlt/config.toml / SOURCES__BULLETIN__BASE_URL"
        )
    try:
        if not re.match(r"^https?://[^/\s]+", settings.base_url, re.IGNORECASE):
            raise ValueError
        scheme, netloc, path, query, _ = urlsplit(settings.base_url)
    except ValueError:
        raise ConfigError(
            f"base_url {redact_url(settings.base_url, query_names(settings.base_url))!r} is not an http(s) URL; "
            "expected the REST base, e.g. https://www.example.edu/wp-json/wp/v2/"
        ) from None
    check_authority(settings.base_url, path)
    # credentials go to the Authorization header, the query to every request's params
    if "@" in netloc:
        userinfo, _, netloc = netloc.rpartition("@")
        username, _, password = userinfo.partition(":")
        settings.http.username, settings.http.password = unquote(username), unquote(password)
    if query:  # every value there is a secret (a nonce, a token by any name); params set apart are not
        pairs = parse_qsl(query, keep_blank_values=True)
        settings.params = {**(settings.params or {}), **dict(pairs)}
        settings.http.secret_params = sorted({*(settings.http.secret_params or ()), *(name for name, _ in pairs)})
    settings.base_url = urlunsplit((scheme, netloc, path if path.endswith("/") else path + "/", "", ""))
    settings.site_id = without_credentials(settings.site_id or settings.base_url)
    settings.bucket_url = checked_bucket_url(settings.bucket_url)
    if not re.fullmatch(r"[a-z0-9_]+", settings.pipeline_name):
        raise ConfigError(f"pipeline_name {settings.pipeline_name!r} may hold only a-z, 0-9 and _ (it names a folder)")
    if settings.http.password and not settings.http.username:
        raise ConfigError("http.password is set but http.username is not; set both (or user:pass@ in base_url)")
    if isinstance(settings.endpoints, str):
        settings.endpoints = settings.endpoints.split(",")
    settings.endpoints = [e.strip() for e in settings.endpoints if e and e.strip()]
    if not settings.endpoints:
        raise ConfigError("endpoints is empty: name at least one collection, e.g. --endpoints pages,media")
    for name in settings.endpoints:
        if not _COLLECTION_NAME.match(name):
            raise ConfigError(f"endpoint name {name!r} is not a WordPress collection name (a-z, 0-9, _ or -)")
        table = table_name(name)
        if table in ("rejected", "deleted") or table.startswith("_dlt"):
            raise ConfigError(
                f"endpoint name {name!r} names a table the pipeline writes itself (rejected, deleted, _dlt_*)"
            )
        settings.collection(name)  # validates overrides
    if len(set(settings.endpoints)) != len(settings.endpoints):
        raise ConfigError(f"endpoints lists a collection twice: {','.join(settings.endpoints)}")
    _check_tables(settings.endpoints)
    if not 3 <= settings.per_page <= 100:
        raise ConfigError(
            f"per_page must be between 3 and 100, got {settings.per_page}: windows overlap by 2 records to "
            "prove nothing slipped between them, and WordPress serves at most 100"
        )
    parse_wp_datetime(settings.default_baseline_datetime, "default_baseline_datetime")
    if settings.last_modified_date is not None:
        day = parse_date(settings.last_modified_date, "--last-modified-date")
        if day < EARLIEST_DATE:  # also keeps the window's arithmetic within datetime's range
            raise ConfigError(
                f"--last-modified-date {settings.last_modified_date!r} is before {EARLIEST_DATE}, older than any "
                "WordPress record; use --full-refresh to read every record"
            )
    if settings.load_date is not None:
        parse_date(settings.load_date, "--load-date")
    if settings.load_time is not None:
        parse_time(settings.load_time, "--load-time")
    if settings.overlap_seconds < 0:
        raise ConfigError(f"overlap_seconds must be >= 0, got {settings.overlap_seconds}")
    if settings.lock_ttl_seconds < 1:
        raise ConfigError(f"lock_ttl_seconds must be >= 1, got {settings.lock_ttl_seconds}")
    if settings.digest_workers is not None and settings.digest_workers < 0:
        raise ConfigError(f"digest_workers must be 0 or more, got {settings.digest_workers}")
    missing = [p for p in ("{table_name}", "{load_id}", "{file_id}") if p not in settings.layout]
    if missing:
        raise ConfigError(
            f"layout {settings.layout!r} lacks {', '.join(missing)}: without them runs and files overwrite "
            f"one another; e.g. {DEFAULT_LAYOUT}"
        )
    if settings.compression not in ("none", "snappy", "gzip", "brotli", "lz4", "zstd"):
        raise ConfigError(f"compression {settings.compression!r} is not one of none, snappy, gzip, brotli, lz4, zstd")
    http = settings.http
    if http.max_connections < 1 or http.max_attempts < 1:
        raise ConfigError("http.max_connections and http.max_attempts must be >= 1")


def _check_tables(endpoints: List[str]) -> None:
    """Two endpoints whose names dlt normalises to one table would land in one folder, mixed."""
    seen: Dict[str, str] = {}
    for name in endpoints:
        table = table_name(name)
        if table in seen:
            raise ConfigError(
                f"endpoints {seen[table]!r} and {name!r} would both be written to the table {table!r} "
                "(dlt's table names: a-z, 0-9 and _); rename one in collections, its path can stay"
            )
        seen[table] = name


def check_authority(url: str, path: str) -> None:
    """An unencoded `/`, `#` or `?` in a password splits the URL before its `@`: fail now, echoing nothing of it."""
    try:
        urlsplit(url).port  # noqa: B018 - parsing the port is the check
        if "@" not in path:  # a WordPress REST path has none; one there ended a password early
            return
    except ValueError:
        if "@" not in url:
            raise ConfigError("base_url has a port that is not a number from 0 to 65535") from None
    raise ConfigError(
        "credentials in base_url must be percent-encoded (/ as %2F, # as %23, ? as %3F, @ as %40), "
        "or set them apart as sources.bulletin.http.username and password"
    )


def checked_bucket_url(bucket_url: Optional[str]) -> str:
    """`bucket_url` with `~` expanded; a typo (`s3:/x`, empty, unknown scheme, no bucket) is an error, not a folder."""
    value = (bucket_url or "").strip()
    example = "e.g. s3://my-bucket/prefix, file:///data/lake or a folder such as ./lake"
    if not value:
        raise ConfigError(f"bucket_url is empty; leave it unset for the current folder, or give one, {example}")
    typo = re.match(r"^([a-zA-Z][a-zA-Z0-9+.-]+):/*(?!/)(.*)$", value)
    if typo and "://" not in value:  # `s3:/x`, `s3:x`: a URL missing a slash, not a folder named `s3:`
        slashes = ":///" if typo[1].lower() == "file" else "://"
        raise ConfigError(f"bucket_url {value!r} is not a valid URL; did you mean '{typo[1]}{slashes}{typo[2]}'?")
    if "://" not in value:
        return os.path.expanduser(value)
    import fsspec  # dlt's filesystem destination opens the bucket through fsspec

    scheme, _, rest = value.partition("://")
    if scheme.lower() not in fsspec.available_protocols():
        raise ConfigError(f"bucket_url {redact_url(value)!r}: unknown scheme {scheme!r}; {example}")
    if not rest.strip("/"):
        raise ConfigError(f"bucket_url {value!r} names no bucket or path; {example}")
    return value


def _parse(value: str, what: str, pattern: str, parse: Callable[[str], T], form: str) -> T:
    try:
        if not re.fullmatch(pattern, value):
            raise ValueError
        return parse(value)
    except ValueError:
        raise ConfigError(f"{what} {value!r} is not {form}") from None


def parse_date(value: str, what: str) -> dt.date:
    return _parse(
        value, what, r"\d{4}-\d{2}-\d{2}", dt.date.fromisoformat, "a date in YYYY-MM-DD form, e.g. 2024-01-15"
    )


def parse_time(value: str, what: str) -> dt.time:
    return _parse(value, what, r"\d{2}:\d{2}:\d{2}", dt.time.fromisoformat, "a time in HH:MM:SS form, e.g. 06:30:00")


def parse_wp_datetime(value: str, what: str) -> dt.datetime:
    try:
        return dt.datetime.strptime(value, WP_DATETIME_FORMAT)
    except (TypeError, ValueError):
        raise ConfigError(f"{what} {value!r} is not a WordPress datetime in YYYY-MM-DDTHH:MM:SS form") from None
