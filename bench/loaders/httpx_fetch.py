"""The capacity profile's reference: a plain httpx script fetching every list page, bodies only.

One `httpx.AsyncClient` (HTTP/1.1) with `--connections` connections, all kept alive
(`max_keepalive_connections` = `max_connections`, else httpcore 1.0 closes a connection after
each request while more are open, encode/httpcore#1000). Page 1 of every endpoint at once
(`orderby=id&order=asc&per_page=100`) for `X-WP-TotalPages`, then every other page of every
endpoint queued at once: the client's pool keeps `--connections` in flight. No retries, no
parsing, nothing written. Timed section: from the first request to the last body read.

Afterwards (not timed) the bodies are parsed and the ids fetched written to `ids.json`, which the
harness compares with the ground truth.
"""

from __future__ import annotations

import time

T0 = time.perf_counter()

import asyncio  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
from typing import Any, Dict, List, Tuple  # noqa: E402

import httpx  # noqa: E402
import orjson  # noqa: E402

from bench.loaders._child import emit, parse_args  # noqa: E402

T_IMPORTED = time.perf_counter()


async def fetch(args: Any) -> Dict[str, List[bytes]]:
    limits = httpx.Limits(max_connections=args.connections, max_keepalive_connections=args.connections)
    # one timeout for everything, the pool wait included: requests queue in the client by design
    async with httpx.AsyncClient(limits=limits, timeout=600.0) as client:

        async def get(endpoint: str, page: int) -> Tuple[str, httpx.Response]:
            params = {"per_page": args.per_page, "orderby": "id", "order": "asc", "page": page}
            response = await client.get(f"{args.base_url}{endpoint}", params=params)
            response.raise_for_status()
            return endpoint, response

        firsts = await asyncio.gather(*(get(e, 1) for e in args.endpoints))
        rest = [
            (endpoint, page)
            for endpoint, first in firsts
            for page in range(2, int(first.headers.get("X-WP-TotalPages", 1)) + 1)
        ]
        answers = firsts + await asyncio.gather(*(get(e, p) for e, p in rest))
    bodies: Dict[str, List[bytes]] = {e: [] for e in args.endpoints}
    for endpoint, response in answers:
        bodies[endpoint].append(response.content)
    return bodies


def main() -> int:
    args = parse_args(__doc__ or "")
    started = time.perf_counter()
    bodies = asyncio.run(fetch(args))
    load_s = time.perf_counter() - started
    ids = {e: [item["id"] for body in pages for item in orjson.loads(body)] for e, pages in bodies.items()}
    with open(os.path.join(args.out, "ids.json"), "w") as fh:
        json.dump(ids, fh)
    emit(
        {
            "loader": "httpx",
            "import_s": T_IMPORTED - T0,
            "load_s": load_s,
            "records": sum(len(v) for v in ids.values()),
            "requests": sum(len(v) for v in bodies.values()),
            "json_mb": sum(len(b) for v in bodies.values() for b in v) / 1e6,
        }
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
