"""The CPU floor: the least work that turns the API's bytes into the lake's rows, on one core.

First (not in the floor) every page of every endpoint is fetched into memory (`orderby=id`,
page=1..N, all pages of an endpoint gathered at once over `--connections` connections); that
fetch is timed separately (`fetch_s`, `fetch_cpu_s`): what the HTTP client alone costs.
Then, pinned to one core, with no network, for each page:
`orjson.loads` -> per item `orjson.dumps` -> `hashlib.sha256(...).hexdigest()` -> one pyarrow table
(`id`, `dl_inserted_at`, `payload`, `dl_hash`) -> `ParquetWriter.write_table` (snappy), one file
per endpoint. `load_s` is that CPU time; the harness compares it with the network bound
`ceil(requests / connections) x latency` and takes the larger as the lower bound.

Afterwards (not part of the floor) it times, for reference, what the pipeline adds on top of the
floor per page: Pydantic validation of a whole page (`bulletin_pipeline.schemas.page_validator`).
"""

from __future__ import annotations

import time

T0 = time.perf_counter()

import asyncio  # noqa: E402
import datetime as dt  # noqa: E402
import gc  # noqa: E402
import hashlib  # noqa: E402
import os  # noqa: E402
from typing import Any, Dict, List  # noqa: E402

import httpx  # noqa: E402
import orjson  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from bench.loaders._child import emit, parse_args, rel, ssl_verify  # noqa: E402

T_IMPORTED = time.perf_counter()

SCHEMA = pa.schema(
    [
        pa.field("id", pa.int64(), nullable=False),
        pa.field("dl_inserted_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("payload", pa.string(), nullable=False),
        pa.field("dl_hash", pa.string(), nullable=False),
    ]
)


async def fetch_bodies(args: Any) -> Dict[str, List[bytes]]:
    limits = httpx.Limits(max_connections=args.connections, max_keepalive_connections=args.connections)
    async with httpx.AsyncClient(http2=True, limits=limits, timeout=60.0, verify=ssl_verify(args.ca)) as client:

        async def get(url: str, page: int) -> httpx.Response:
            params = {"per_page": args.per_page, "orderby": "id", "order": "asc", "page": page}
            response = await client.get(url, params=params)
            response.raise_for_status()
            return response

        out: Dict[str, List[bytes]] = {}
        for endpoint in args.endpoints:
            url = f"{args.base_url}{endpoint}"
            first = await get(url, 1)
            total_pages = int(first.headers.get("X-WP-TotalPages", 1))
            rest = await asyncio.gather(*(get(url, p) for p in range(2, total_pages + 1)))
            out[endpoint] = [first.content] + [r.content for r in rest]
        return out


def main() -> int:
    args = parse_args(__doc__ or "")
    fetch_started, fetch_cpu0 = time.perf_counter(), time.process_time()
    bodies = asyncio.run(fetch_bodies(args))
    fetch_s, fetch_cpu_s = time.perf_counter() - fetch_started, time.process_time() - fetch_cpu0
    total_bytes = sum(len(b) for pages in bodies.values() for b in pages)
    requests = sum(len(pages) for pages in bodies.values())
    gc.collect()

    allowed = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {allowed[-1]})
    stages = {"parse": 0.0, "dumps+sha256": 0.0, "arrow": 0.0, "parquet": 0.0}
    inserted_at = pa.scalar(dt.datetime.now(dt.UTC), pa.timestamp("us", tz="UTC"))
    written = 0
    cpu0 = time.process_time()
    started = time.perf_counter()
    for endpoint, pages in bodies.items():
        path = os.path.join(args.out, endpoint, "part-0.parquet")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with pq.ParquetWriter(path, SCHEMA, compression="snappy") as writer:
            for body in pages:
                t0 = time.perf_counter()
                items = orjson.loads(body)
                t1 = time.perf_counter()
                ids = []
                payloads = []
                hashes = []
                for item in items:
                    payload = orjson.dumps(item)
                    ids.append(item["id"])
                    payloads.append(payload)
                    hashes.append(hashlib.sha256(payload).hexdigest())
                t2 = time.perf_counter()
                table = pa.Table.from_arrays(
                    [
                        pa.array(ids, pa.int64()),
                        pa.repeat(inserted_at, len(ids)),
                        pa.array(payloads, pa.string()),
                        pa.array(hashes, pa.string()),
                    ],
                    schema=SCHEMA,
                )
                t3 = time.perf_counter()
                writer.write_table(table)
                t4 = time.perf_counter()
                stages["parse"] += t1 - t0
                stages["dumps+sha256"] += t2 - t1
                stages["arrow"] += t3 - t2
                stages["parquet"] += t4 - t3
                written += len(ids)
    load_s = time.perf_counter() - started
    cpu_s = time.process_time() - cpu0
    os.sched_setaffinity(0, set(allowed))

    # reference only, not part of the floor: what whole-page Pydantic validation costs
    extra: Dict[str, float] = {}
    try:
        from bulletin_pipeline.schemas import model_for, page_validator

        validators = {e: page_validator(model_for(e)) for e in args.endpoints}
        t0 = time.perf_counter()
        for endpoint, pages in bodies.items():
            for body in pages:
                validators[endpoint].validate_python(orjson.loads(body))
        extra["pydantic_page_validation_with_parse_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        for pages in bodies.values():
            for body in pages:
                orjson.loads(body)
        extra["parse_only_s"] = time.perf_counter() - t0
    except Exception as exc:  # noqa: BLE001 - reference numbers only
        extra["error"] = repr(exc)  # type: ignore[assignment]

    emit(
        {
            "loader": "floor",
            "import_s": T_IMPORTED - T0,
            "load_s": load_s,
            "cpu_s": cpu_s,
            "fetch_s": fetch_s,
            "fetch_cpu_s": fetch_cpu_s,
            "records": written,
            "requests": requests,
            "bytes": total_bytes,
            "stages": stages,
            "extra": extra,
            "tables": {e: rel(os.path.join(args.out, e), args.out) for e in args.endpoints},
        }
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
