"""Many sites: `[[sources.bulletin.sites]]` entries, each one site's settings overrides.

A site inherits every `[sources.bulletin]` setting and overrides what its entry names. Each site
has its own dlt pipeline (`bulletin_pipeline__{name}`: working folder, state, cursors) and its own
lake (`bucket_url`, by default `{shared bucket_url}/{name}`, which also holds its lock), so one
site's failure or lock never touches another. Fan-out is the orchestrator's (Dagster asset groups,
an Actions matrix); this module only says what the sites are.
"""

from __future__ import annotations

import dataclasses
import os
import re
from typing import Any, Dict, List, Optional

import dlt

from .errors import ConfigError, first_line
from .settings import DEFAULT_BUCKET_URL, DEFAULT_PIPELINE_NAME, BulletinSettings, resolve_settings

SITES_KEY = "sources.bulletin.sites"
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
# set by the site's name, never by its entry
_DERIVED = {"pipeline_name", "sites"}


@dataclasses.dataclass(frozen=True)
class Site:
    name: str
    overrides: Dict[str, Any]
    """`resolve_settings` keywords: the entry's keys, with `bucket_url` and `pipeline_name` filled in."""

    @property
    def pipeline_name(self) -> str:
        return str(self.overrides["pipeline_name"])

    def settings(self, **more: Any) -> BulletinSettings:
        """The site's settings; `more` (flags, run options) wins over its entry."""
        given = {k: v for k, v in more.items() if v is not None}
        if "http" in given:
            given["http"] = {**(self.overrides.get("http") or {}), **given["http"]}
        return resolve_settings(**{**self.overrides, **given})


def site_pipeline_name(name: str) -> str:
    return f"{DEFAULT_PIPELINE_NAME}__{name}"


def load_sites(entries: Optional[List[Any]] = None) -> List[Site]:
    """The configured sites (`entries`, else `sources.bulletin.sites` from dlt config); [] when none."""
    if entries is None:
        try:
            entries = dlt.config.get(SITES_KEY, list) or []
        except Exception as exc:  # noqa: BLE001 - dlt's parse errors are multi-line
            raise ConfigError(f"{SITES_KEY} is not a list of tables: {first_line(exc)}") from exc
    shared_bucket = _shared_bucket_url()
    allowed = {f.name for f in dataclasses.fields(BulletinSettings)} - _DERIVED
    sites: List[Site] = []
    lakes: Dict[str, str] = {}
    for index, entry in enumerate(entries):
        where = f"{SITES_KEY}[{index}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where} must be a table with name and base_url, got {entry!r}")
        name = entry.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            raise ConfigError(f"{where}: name {name!r} must be lowercase a-z, 0-9 or _, starting with a letter")
        where = f"{where} ({name})"
        if not entry.get("base_url"):
            raise ConfigError(f"{where}: base_url is missing, e.g. https://www.example.edu/wp-json/wp/v2/")
        unknown = sorted(set(entry) - allowed - {"name"})
        if unknown:
            keys = ", ".join(unknown)
            raise ConfigError(f"{where}: unknown key(s) {keys}; a site takes the keys of sources.bulletin")
        if any(site.name == name for site in sites):
            raise ConfigError(f"{where}: another site has the name {name!r}; names must be unique")
        overrides = {k: v for k, v in entry.items() if k != "name"}
        overrides.setdefault("bucket_url", _join(shared_bucket, name))
        overrides["pipeline_name"] = site_pipeline_name(name)
        lake = str(overrides["bucket_url"]).rstrip("/")
        if lake in lakes:
            raise ConfigError(f"{where}: bucket_url {lake!r} is also site {lakes[lake]!r}'s; each site needs its own")
        lakes[lake] = name
        sites.append(Site(name, overrides))
    return sites


def find_site(name: str, sites: Optional[List[Site]] = None) -> Site:
    sites = load_sites() if sites is None else sites
    for site in sites:
        if site.name == name:
            return site
    known = ", ".join(s.name for s in sites) or f"none (add {SITES_KEY} entries to .dlt/config.toml)"
    raise ConfigError(f"no site named {name!r} in {SITES_KEY}; configured: {known}")


def _shared_bucket_url() -> str:
    return str(
        dlt.config.get("sources.bulletin.bucket_url")
        or dlt.config.get("destination.filesystem.bucket_url")
        or DEFAULT_BUCKET_URL
    )


def _join(bucket_url: str, name: str) -> str:
    if "://" in bucket_url:
        return f"{bucket_url.rstrip('/')}/{name}"
    return os.path.join(bucket_url, name)
