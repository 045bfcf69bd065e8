"""A re-implementation of the original Dagster design (its asset code, without Dagster):

* one `httpx.AsyncClient(http2=True, limits=50 connections / 20 keep-alive)`, both endpoints at once;
* per endpoint: GET page 1, read `X-WP-TotalPages`, `asyncio.gather` every other page
  (`response.json()`, i.e. stdlib json);
* every item validated with an endpoint-specific Pydantic model (`model_validate`), then
  `model_dump(by_alias=True)` -> `json.dumps` as the payload, SHA-256 of its UTF-8 as `dl_hash`;
* everything in memory: all rows of an endpoint in one polars DataFrame, written as one snappy
  Parquet file per endpoint.

No retries (tenacity) - the simulator does not fail here. Timed section: from the first request
to the last file closed; imports are reported as `import_s`.
"""

from __future__ import annotations

import time

T0 = time.perf_counter()

import asyncio  # noqa: E402
import datetime as dt  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
from typing import Any, Dict, List, Optional, Union  # noqa: E402

import httpx  # noqa: E402
import polars as pl  # noqa: E402
from pydantic import BaseModel, ConfigDict  # noqa: E402

from bench.loaders._child import emit, parse_args  # noqa: E402

T_IMPORTED = time.perf_counter()


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow")


class Rendered(_Model):
    rendered: str


class WordPressContent(_Model):
    id: int
    date: Optional[str] = None
    date_gmt: Optional[str] = None
    guid: Optional[Rendered] = None
    modified: str
    modified_gmt: Optional[str] = None
    slug: str
    status: str
    type: str
    link: str
    title: Optional[Rendered] = None
    author: Optional[int] = None
    comment_status: Optional[str] = None
    ping_status: Optional[str] = None
    template: Optional[str] = None
    meta: Union[List[Any], Dict[str, Any], None] = None


class PageModel(WordPressContent):
    content: Rendered
    excerpt: Rendered
    parent: int = 0
    menu_order: int = 0
    featured_media: int = 0


class MediaModel(WordPressContent):
    description: Optional[Rendered] = None
    caption: Optional[Rendered] = None
    alt_text: str = ""
    media_type: str
    mime_type: str
    media_details: Union[Dict[str, Any], List[Any], None] = None
    post: Optional[int] = None
    source_url: str


MODELS: Dict[str, type[WordPressContent]] = {"pages": PageModel, "media": MediaModel}


async def fetch_page(client: httpx.AsyncClient, url: str, params: Dict[str, Any], page: int) -> List[Any]:
    response = await client.get(url, params={**params, "page": page})
    response.raise_for_status()
    return response.json()  # type: ignore[no-any-return]


async def fetch_all_pages(client: httpx.AsyncClient, base_url: str, endpoint: str, per_page: int) -> List[Any]:
    url = f"{base_url}{endpoint}"
    params: Dict[str, Any] = {"per_page": per_page, "orderby": "id", "order": "asc"}
    first = await client.get(url, params={**params, "page": 1})
    first.raise_for_status()
    total_pages = int(first.headers.get("X-WP-TotalPages", 1))
    pages = [first.json()]
    pages += await asyncio.gather(*(fetch_page(client, url, params, p) for p in range(2, total_pages + 1)))
    return [item for page in pages for item in page]


async def fetch_multiple_endpoints(args: Any) -> Dict[str, List[Any]]:
    limits = httpx.Limits(max_connections=args.connections, max_keepalive_connections=20)
    timeout = httpx.Timeout(30.0, connect=10.0)
    async with httpx.AsyncClient(http2=True, limits=limits, timeout=timeout) as client:
        results = await asyncio.gather(
            *(fetch_all_pages(client, args.base_url, e, args.per_page) for e in args.endpoints)
        )
    return dict(zip(args.endpoints, results, strict=True))


def export_to_parquet(path: str, validated: List[Dict[str, Any]], inserted_at: dt.datetime) -> int:
    payloads = [json.dumps(item) for item in validated]
    frame = pl.DataFrame(
        {
            "id": [item["id"] for item in validated],
            "dl_inserted_at": [inserted_at] * len(validated),
            "payload": payloads,
            "dl_hash": [hashlib.sha256(p.encode("utf-8")).hexdigest() for p in payloads],
        },
        schema={"id": pl.Int64, "dl_inserted_at": pl.Datetime("us", "UTC"), "payload": pl.Utf8, "dl_hash": pl.Utf8},
    )
    os.makedirs(os.path.dirname(path), exist_ok=True)
    frame.write_parquet(path, compression="snappy")
    return frame.height


def main() -> int:
    args = parse_args(__doc__ or "")
    started = time.perf_counter()
    inserted_at = dt.datetime.now(dt.UTC)
    data = asyncio.run(fetch_multiple_endpoints(args))
    fetched_s = time.perf_counter() - started
    written = 0
    for endpoint in args.endpoints:
        model = MODELS[endpoint]
        validated = [model.model_validate(item).model_dump(by_alias=True) for item in data[endpoint]]  # type: ignore[attr-defined]
        written += export_to_parquet(os.path.join(args.out, endpoint, "part-0.parquet"), validated, inserted_at)
    load_s = time.perf_counter() - started
    emit(
        {
            "loader": "original",
            "import_s": T_IMPORTED - T0,
            "load_s": load_s,
            "fetch_s": fetched_s,
            "records": written,
            "lake": ".",
        }
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
