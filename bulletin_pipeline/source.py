"""The dlt source: one rest_api resource per WordPress collection, each followed by the envelope.

The `RESTAPIConfig` built here declares what is read (`orderby=id`, `modified_after` from the
incremental placeholder, the cursor and its lag), with the paginator (wordpress.py) and the session
(transport.py) plugged in; each page is one arrow table (digest.py) that the envelope turns into the
collection's table and `rejected`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Dict, Iterator, List, Optional
from urllib.parse import quote, unquote, urlsplit

import dlt
from dlt.common import jsonpath
from dlt.extract.resource import DltResource
from dlt.sources.helpers.rest_client.utils import join_url
from dlt.sources.rest_api import RESTAPIConfig, rest_api_resources

from .destination import partition_datetime
from .digest import DigestSpec
from .envelope import REJECTED_TABLE, Envelope
from .recovery import pin_partition
from .settings import BulletinSettings
from .transport import WordPressSession, site_auth
from .window import WindowPlan, WrittenVersions, incremental_config, ledger_horizon, run_memory
from .wordpress import OverlappingWindowPaginator, ProgressCallback

SOURCE_NAME = "bulletin"
READ_AHEAD = 8
# a WordPress list answer is the page itself; compiled once, as rest_api would per page
WHOLE_ANSWER = jsonpath.compile_path("$")


def api_resource_name(endpoint: str) -> str:
    """The rest_api resource of a collection; its dlt state holds the `modified` cursor."""
    return endpoint


def envelope_resource_name(endpoint: str) -> str:
    """The envelope transformer of a collection; its dlt state holds the written versions."""
    return f"{endpoint}_envelope"


def collection_path(settings: BulletinSettings, endpoint: str) -> str:
    """The collection's path below base_url, percent-encoded segment by segment: a custom post
    type's rest_base may hold spaces or non-ASCII letters (a path given encoded stays as it is)."""
    path = settings.collection(endpoint).path or endpoint
    return "/".join(quote(unquote(segment), safe="") for segment in path.split("/"))


def digest_specs(settings: BulletinSettings) -> Dict[str, DigestSpec]:
    """URL path of each collection's listing -> how its pages are digested (digest.py)."""
    return {
        urlsplit(join_url(settings.base_url or "", collection_path(settings, e))).path: DigestSpec(
            e, settings.collection(e).incremental
        )
        for e in settings.endpoints
    }


def build_rest_api_config(
    settings: BulletinSettings,
    plans: Dict[str, WindowPlan],
    session: WordPressSession,
    paginators: Dict[str, OverlappingWindowPaginator],
    progress: Optional[ProgressCallback] = None,
) -> RESTAPIConfig:
    """rest_api's config for `settings.endpoints`; each endpoint's paginator goes to `paginators`."""
    # a plain function: rest_api's deep copy of the config must not copy the progress display
    report: Optional[ProgressCallback] = (lambda *args: progress(*args)) if progress else None
    # each endpoint at most READ_AHEAD windows ahead of dlt, all within max_connections
    prefetch_window = min(READ_AHEAD, -(-settings.http.max_connections // max(1, len(settings.endpoints))))
    resources: List[Any] = []
    for endpoint in settings.endpoints:
        plan = plans[endpoint]
        collection = settings.collection(endpoint)
        params: Dict[str, Any] = {"orderby": "id", "order": "asc", **(collection.params or {})}
        incremental = incremental_config(plan, settings)
        if plan.start is not None:
            params["modified_after"] = "{incremental.start_value}" if incremental else plan.start
        paginator = paginators[endpoint] = OverlappingWindowPaginator(
            endpoint,
            session,
            per_page=settings.per_page,
            prefetch_window=prefetch_window,
            max_reread_attempts=settings.max_reread_attempts,
            progress=report,
        )
        endpoint_config: Dict[str, Any] = {
            "path": collection_path(settings, endpoint),
            "params": params,
            "data_selector": WHOLE_ANSWER,
            "paginator": paginator,
        }
        if incremental:
            endpoint_config["incremental"] = incremental
        resources.append({"name": api_resource_name(endpoint), "endpoint": endpoint_config})
    return {
        # credentials as rest_api's auth (masked in its config): requests sends the header
        "client": {"base_url": settings.base_url or "", "session": session, "auth": site_auth(settings.http)},
        "resource_defaults": {"write_disposition": "append", "max_table_nesting": 0},
        "resources": resources,
    }


def _envelope_transformer(
    api_resource: DltResource,
    endpoint: str,
    plan: WindowPlan,
    settings: BulletinSettings,
    inserted_at: dt.datetime,
    envelopes: Dict[str, Envelope],
) -> DltResource:
    @dlt.transformer(data_from=api_resource, name=envelope_resource_name(endpoint), write_disposition="append")
    def envelope(page: List[Any]) -> Iterator[Any]:
        wrapper = envelopes.get(endpoint)
        if wrapper is None:
            # only stateful runs persist what they wrote; others dedupe within the run
            persistent = dlt.current.resource_state() if plan.stateful else None
            ledger = WrittenVersions(persistent, ledger_horizon(settings), run_memory(settings), inserted_at)
            wrapper = envelopes[endpoint] = Envelope(endpoint, inserted_at, ledger)
        for table in page:  # rest_api yields each API page as a list holding its arrow table
            data, rejected = wrapper.wrap(table)
            # named per item: a static table_name hint would give `rejected` the wrong schema
            if data is not None:
                yield dlt.mark.with_table_name(data, endpoint)
            if rejected is not None:
                yield dlt.mark.with_table_name(rejected, REJECTED_TABLE)

    return envelope


@dlt.source(name=SOURCE_NAME, section=SOURCE_NAME, max_table_nesting=0)
def bulletin_source(
    settings: BulletinSettings,
    plans: Dict[str, WindowPlan],
    session: WordPressSession,
    inserted_at: dt.datetime,
    envelopes: Dict[str, Envelope],
    paginators: Dict[str, OverlappingWindowPaginator],
    progress: Optional[ProgressCallback] = None,
) -> Any:
    """WordPress collections -> `{endpoint}` tables in the Parquet contract (+ `rejected`);
    `envelopes` and `paginators` receive each endpoint's envelope and paginator (their counters)."""
    config = build_rest_api_config(settings, plans, session, paginators, progress)
    api_resources = {r.name: r for r in rest_api_resources(config)}
    for endpoint in settings.endpoints:
        yield _envelope_transformer(
            api_resources[api_resource_name(endpoint)], endpoint, plans[endpoint], settings, inserted_at, envelopes
        )
    yield _site_marker(settings.site_id or settings.base_url or "")
    yield pin_partition(partition_datetime(settings, inserted_at))


def _site_marker(site_id: str) -> DltResource:
    """Records which site the cursors belong to (state is only written from inside a resource)."""

    @dlt.resource(name="site_marker")
    def site_marker() -> Iterator[Any]:
        dlt.current.source_state()["site"] = site_id
        yield from ()

    return site_marker
