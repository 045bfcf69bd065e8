"""`--if-changed`: one request per endpoint lists the overlap window's versions and compares them with
the ledger (the newest `modified` against the cursor would miss the edits the overlap exists for)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import urlencode

import requests

from .digest import version_of
from .settings import BulletinSettings
from .source import collection_path
from .transport import HttpxAdapter, site_auth
from .window import WindowPlan

PROBE_PAGE = 100


@dataclass
class ProbeResult:
    changed: bool
    reason: str


def probe_endpoint(
    adapter: HttpxAdapter, settings: BulletinSettings, endpoint: str, plan: WindowPlan, written: dict[str, str] | None
) -> ProbeResult:
    """Whether `endpoint` lists a version since the window's start that `written` (id -> version) lacks."""
    if plan.mode != "incremental" or plan.start is None:
        return ProbeResult(True, f"{plan.mode} run")
    params = {"orderby": "modified", "order": "desc", "per_page": PROBE_PAGE, "modified_after": plan.start}
    params.update({"_fields": "id,modified,modified_gmt", **(settings.collection(endpoint).params or {})})
    url = f"{settings.base_url}{collection_path(settings, endpoint)}?{urlencode(params)}"
    request = requests.Request("GET", url, auth=site_auth(settings.http)).prepare()  # Authorization, if any
    reply = adapter.fetch(url, {k: str(v) for k, v in request.headers.items()})
    records = [r for r in json.loads(reply.content) if isinstance(r, dict)]
    total = int(reply.headers.get("X-WP-Total", len(records)) or 0)
    unseen = [r for r in records if (written or {}).get(str(r.get("id"))) != version_of(r)]
    if unseen:
        newest = max(str(r.get("modified")) for r in unseen)
        return ProbeResult(True, f"{len(unseen)} new version(s), newest modified {newest}")
    if len(records) >= PROBE_PAGE and total > len(records):
        # a full probe page may hide more (X-WP-Total also counts hidden media: never alone)
        return ProbeResult(True, f"{total} records in the overlap window, more than one probe page")
    return ProbeResult(False, f"no changes since {plan.stored_cursor}")
