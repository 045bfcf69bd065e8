"""The dlt source: one rest_api resource per WordPress collection, each followed by the envelope.

The `RESTAPIConfig` built here declares what is read (`orderby=id`, `modified_after` from the
incremental placeholder, the cursor and its lag), with the paginator (wordpress.py) and the session
(transport.py) plugged in; each page is one arrow table (digest.py) that the envelope turns into the
collection's table and `rejected`.
"""

from __future__ import annotations

from typing import Any, Dict, Iterator, List, Optional

import dlt
from dlt.common import jsonpath
from dlt.extract.resource import DltResource
from dlt.sources.rest_api import RESTAPIConfig, rest_api_resources

from .envelope import REJECTED_TABLE, Envelope
from .extraction import SOURCE_NAME, Extraction, collection_path
from .settings import BulletinSettings, redact_config_traces, resolve_settings
from .transport import WordPressSession, site_auth
from .window import (
    LEDGER_KEY,
    LEDGER_NEWEST_KEY,
    WindowPlan,
    WrittenVersions,
    incremental_config,
    ledger_horizon,
    plan_window,
    run_memory,
)
from .wordpress import OverlappingWindowPaginator, ProgressCallback

READ_AHEAD = 8
# a WordPress list answer is the page itself; compiled once, as rest_api would per page
WHOLE_ANSWER = jsonpath.compile_path("$")


def api_resource_name(endpoint: str) -> str:
    """The rest_api resource of a collection; its dlt state holds the `modified` cursor."""
    return endpoint


def envelope_resource_name(endpoint: str) -> str:
    """The envelope transformer of a collection; its dlt state holds the written versions."""
    return f"{endpoint}_envelope"


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


def _envelope_transformer(api_resource: DltResource, endpoint: str, plan: WindowPlan, run: Extraction) -> DltResource:
    settings = run.settings

    @dlt.transformer(data_from=api_resource, name=envelope_resource_name(endpoint), write_disposition="append")
    def envelope(page: List[Any]) -> Iterator[Any]:
        wrapper = run.envelopes.get(endpoint)
        if wrapper is None:
            inserted_at = run.started()
            # a snapshot keeps no ledger; a backfill notes what it writes for the next incremental run
            persistent = dlt.current.resource_state() if plan.mode != "snapshot" else None
            if persistent is not None and plan.mode == "full_refresh":
                for key in (LEDGER_KEY, LEDGER_NEWEST_KEY):  # a full refresh writes every version again
                    persistent.pop(key, None)
            if persistent is not None and plan.continued is not None:
                # the versions the lake already holds count as written (continuation.py)
                persistent.setdefault(LEDGER_KEY, {}).update(plan.continued.versions)
            horizon, memory = ledger_horizon(settings), run_memory(settings)
            ledger = WrittenVersions(persistent, horizon, memory, inserted_at, moves_cursor=plan.stateful)
            wrapper = run.envelopes[endpoint] = Envelope(endpoint, inserted_at, ledger)
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
    base_url: Optional[str] = None,
    endpoints: Optional[List[str]] = None,
    extraction: Any = None,
    **overrides: Any,
) -> Any:
    """WordPress collections as `{endpoint}` tables in the lake's contract, plus `rejected`.

    An ordinary dlt source: `pipeline.run(bulletin_source())` is lossless on its own (window from dlt
    state with overlap, dedup of written versions, lake lock, site check, pinned partition time).

    Args:
        base_url: the REST base, e.g. https://site/wp-json/wp/v2/ (default: `sources.bulletin.base_url`).
        endpoints: the collections to load (default: `sources.bulletin.endpoints`, pages and media).
        extraction: an `Extraction` made by a caller that holds the lake lock and reads the counters
            (our CLI); None makes one from the settings.
        **overrides: any other key of `BulletinSettings` (e.g. `site_id`, `http={...}`); keys not given
            come from dlt config under `sources.bulletin`.

    Returns:
        The source: per endpoint an envelope transformer writing `{endpoint}` and `rejected`.
    """
    redact_config_traces()  # dlt resolved base_url for this call; a user:pass@ must not reach its trace
    if extraction is None:
        extraction = Extraction(resolve_settings(base_url=base_url, endpoints=endpoints, **overrides))
    run: Extraction = extraction
    settings = run.settings
    plans = {
        e: plan_window(e, settings, None, settings.collection(e).incremental, run.continued.get(e))
        for e in settings.endpoints
    }
    config = build_rest_api_config(settings, plans, run.session, run.paginators, run.progress)
    api_resources = {r.name: r for r in rest_api_resources(config)}
    for endpoint in settings.endpoints:
        yield _envelope_transformer(api_resources[api_resource_name(endpoint)], endpoint, plans[endpoint], run)
