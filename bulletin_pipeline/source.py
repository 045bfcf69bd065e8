"""The dlt source: one rest_api resource per WordPress collection, each followed by the envelope.

The `RESTAPIConfig` built here is the one declarative description of what is read: path, query
parameters (`orderby=id` for a stable order, `modified_after` from the incremental placeholder),
the incremental cursor and its lag. WordPress-specific behaviour plugs in at rest_api's extension
points (paginator, session) from `wordpress.py`; the envelope transformer turns each API page into
one arrow table for the collection's table and, when needed, one for `rejected`.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any, Callable, Dict, Iterator, List, Optional
from urllib.parse import urlsplit

import dlt
import requests
from dlt.common import jsonpath
from dlt.extract.resource import DltResource
from dlt.sources.helpers.rest_client.utils import join_url
from dlt.sources.rest_api import RESTAPIConfig, rest_api_resources

from .envelope import DigestedPages, Envelope
from .settings import BulletinSettings
from .window import WindowPlan, WrittenVersions, incremental_config, ledger_horizon, run_memory
from .wordpress import OverlappingWindowPaginator, ProgressCallback, WordPressSession

SOURCE_NAME = "bulletin"
DATA_SELECTOR = jsonpath.compile_path("$")  # a WordPress list answer is the page itself
REJECTED_TABLE = "rejected"
# windows asked for together with the first one when a whole collection is read (at most this
# many wasted requests on a collection smaller than that)
SPECULATIVE_WINDOWS = 8


def api_resource_name(endpoint: str) -> str:
    """The rest_api resource of a collection; its dlt state holds the `modified` cursor."""
    return endpoint


def envelope_resource_name(endpoint: str) -> str:
    return f"{endpoint}_envelope"


def build_rest_api_config(
    settings: BulletinSettings,
    plans: Dict[str, WindowPlan],
    session: WordPressSession,
    progress: Optional[ProgressCallback] = None,
    paginators: Optional[Dict[str, OverlappingWindowPaginator]] = None,
) -> RESTAPIConfig:
    """`paginators`, when given, receives each endpoint's paginator (its re-read counters)."""
    resources: List[Any] = []
    for endpoint in settings.endpoints:
        plan = plans[endpoint]
        params = _listing_params(settings, endpoint)
        incremental = incremental_config(plan, settings)
        if plan.start is not None:
            params["modified_after"] = "{incremental.start_value}" if incremental else plan.start
        paginator = _paginator(settings, plan, session, progress)
        if paginators is not None:
            paginators[endpoint] = paginator
        endpoint_config: Dict[str, Any] = {
            "path": _listing_path(settings, endpoint),
            "params": params,
            # compiled once: dlt would otherwise re-parse the JSONPath for every page
            "data_selector": DATA_SELECTOR,
            "paginator": paginator,
        }
        if incremental:
            endpoint_config["incremental"] = incremental
        resources.append({"name": api_resource_name(endpoint), "endpoint": endpoint_config})
    return {
        "client": {"base_url": settings.base_url or "", "session": session},
        # dlt's extract thread takes the endpoints' pages in turn (round robin); the network under
        # them is concurrent through each paginator's prefetch. (`parallelized` would move only
        # the waiting for a page into dlt's thread pool: measured no faster.)
        "resource_defaults": {"write_disposition": "append", "max_table_nesting": 0},
        "resources": resources,
    }


def _listing_params(settings: BulletinSettings, endpoint: str) -> Dict[str, Any]:
    return {"orderby": "id", "order": "asc", **(settings.collection(endpoint).params or {})}


def _listing_path(settings: BulletinSettings, endpoint: str) -> str:
    return settings.collection(endpoint).path or endpoint


def _paginator(
    settings: BulletinSettings,
    plan: WindowPlan,
    session: WordPressSession,
    progress: Optional[ProgressCallback] = None,
) -> OverlappingWindowPaginator:
    return OverlappingWindowPaginator(
        plan.endpoint,
        session,
        per_page=settings.per_page,
        # the endpoints are read in parallel: together they keep max_connections in flight
        # (and hold at most that many pages ahead of the extract, ~0.6 MB each)
        prefetch_window=-(-settings.http.max_connections // max(1, len(settings.endpoints))),
        max_reread_attempts=settings.max_reread_attempts,
        progress=progress,
        incremental=settings.collection(plan.endpoint).incremental,
        speculative_windows=SPECULATIVE_WINDOWS if plan.reads_whole_collection else 0,
    )


def request_first_windows(settings: BulletinSettings, plans: Dict[str, WindowPlan], session: WordPressSession) -> None:
    """Ask now for the first windows of every listing that needs no cursor, before dlt sets up.

    dlt's setup (pipeline, destination, state, source) takes ~0.2 s of the extract thread before
    RESTClient asks for a first page; a full refresh knows its URLs without any state, so the
    network and the digest workers use that time. The windows are asked for by a paginator built
    as the source builds it, from the request RESTClient will make (`_create_request`: the path,
    joined to the base URL unless absolute, the same params, no headers or auth in our client
    config), so the real paginator finds them pending at the same URLs; any it does not ask for
    are dropped when the listings end (`WordPressSession.listing_ended`).
    """
    for endpoint in settings.endpoints:
        plan = plans[endpoint]
        if not plan.reads_whole_collection or plan.start is not None:
            continue  # modified_after comes from dlt's incremental: known only once dlt resolved it
        path = _listing_path(settings, endpoint)
        url = path if urlsplit(path).scheme in ("http", "https") else join_url(settings.base_url or "", path)
        request = requests.Request("GET", url=url, params=_listing_params(settings, endpoint))
        _paginator(settings, plan, session).request_early(request)


def _envelope_transformer(
    api_resource: DltResource,
    endpoint: str,
    plan: WindowPlan,
    settings: BulletinSettings,
    inserted_at: dt.datetime,
    on_envelope: Callable[[Envelope], None],
    pages: DigestedPages,
) -> DltResource:
    @dlt.transformer(
        data_from=api_resource,
        name=envelope_resource_name(endpoint),
        write_disposition="append",
    )
    def envelope(page: List[Any]) -> Iterator[Any]:
        holder = _state.get(endpoint)
        if holder is None:
            # Only stateful runs persist what they wrote; backfills and full refreshes of an
            # endpoint that has a cursor dedupe within the run only.
            persistent = dlt.current.resource_state() if plan.stateful else None
            ledger = WrittenVersions(persistent, ledger_horizon(settings), recent=run_memory(settings))
            holder = Envelope(endpoint, inserted_at, ledger, pages)
            _state[endpoint] = holder
            on_envelope(holder)
        data, rejected = holder.wrap(page)
        holder.stats.last_at = time.monotonic()
        # both tables are named per item: a static table_name hint on the resource would make dlt
        # compute the `rejected` table's schema from the wrong table
        if data is not None:
            yield dlt.mark.with_table_name(data, endpoint)
        if rejected is not None:
            yield dlt.mark.with_table_name(rejected, REJECTED_TABLE)

    _state: Dict[str, Envelope] = {}
    return envelope


@dlt.source(name=SOURCE_NAME, section=SOURCE_NAME, max_table_nesting=0)
def bulletin_source(
    settings: BulletinSettings,
    plans: Dict[str, WindowPlan],
    session: WordPressSession,
    inserted_at: dt.datetime,
    progress: Optional[ProgressCallback] = None,
    on_envelope: Optional[Callable[[Envelope], None]] = None,
    paginators: Optional[Dict[str, OverlappingWindowPaginator]] = None,
) -> Any:
    """WordPress collections -> `{endpoint}` tables in the original Parquet contract (+ `rejected`)."""
    config = build_rest_api_config(settings, plans, session, progress, paginators)
    api_resources = {r.name: r for r in rest_api_resources(config)}
    for endpoint in settings.endpoints:
        yield _envelope_transformer(
            api_resources[api_resource_name(endpoint)],
            endpoint,
            plans[endpoint],
            settings,
            inserted_at,
            on_envelope or (lambda _: None),
            session.pages,
        )
    yield _site_marker(settings.site_id or settings.base_url or "")


def _site_marker(site_id: str) -> DltResource:
    """Records which site the cursors belong to (state is only written from inside a resource)."""

    @dlt.resource(name="site_marker")
    def site_marker() -> Iterator[Any]:
        dlt.current.source_state()["site"] = site_id
        yield from ()

    return site_marker
