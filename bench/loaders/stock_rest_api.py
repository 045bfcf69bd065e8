"""dlt's stock `rest_api` source, configured the way dlt's docs show, with the same envelope.

* paginator `page_number` (page=1, 2, ...; no total in the body, so it stops at the first empty
  page); WordPress answers HTTP 400 `rest_post_invalid_page_number` one page past the end, which
  the docs' `response_actions` turn into the end of the listing;
* `per_page=100`, `orderby=id`, `order=asc`;
* the envelope as a processing step (`map`, i.e. `add_map`) producing dict rows with
  `json.dumps` + `hashlib.sha256`, written by dlt's normalizer to Parquet on the filesystem
  destination.

Timed section: building the source and `pipeline.run(...)`; imports are reported as `import_s`.
"""

from __future__ import annotations

import time

T0 = time.perf_counter()

import datetime as dt  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
from typing import Any, Dict  # noqa: E402

import dlt  # noqa: E402
from dlt.destinations import filesystem  # noqa: E402
from dlt.sources.rest_api import rest_api_source  # noqa: E402

from bench.loaders._child import emit, parse_args  # noqa: E402

T_IMPORTED = time.perf_counter()
DATASET = "bulletin_raw"


def main() -> int:
    args = parse_args(__doc__ or "")
    lake = os.path.join(args.out, "lake")
    started = time.perf_counter()
    inserted_at = dt.datetime.now(dt.UTC)

    def envelope(item: Dict[str, Any]) -> Dict[str, Any]:
        payload = json.dumps(item)
        return {
            "id": item["id"],
            "dl_inserted_at": inserted_at,
            "payload": payload,
            "dl_hash": hashlib.sha256(payload.encode("utf-8")).hexdigest(),
        }

    source = rest_api_source(
        {
            "client": {"base_url": args.base_url},
            "resource_defaults": {
                "write_disposition": "append",
                "endpoint": {
                    "params": {"per_page": args.per_page, "orderby": "id", "order": "asc"},
                    "data_selector": "$",
                    "paginator": {"type": "page_number", "base_page": 1, "page_param": "page", "total_path": None},
                    "response_actions": [
                        {"status_code": 400, "content": "rest_post_invalid_page_number", "action": "ignore"}
                    ],
                },
            },
            "resources": [
                {"name": endpoint, "endpoint": {"path": endpoint}, "processing_steps": [{"map": envelope}]}
                for endpoint in args.endpoints
            ],
        },
        name="wordpress",
    )
    pipeline = dlt.pipeline(
        pipeline_name="bench_stock_rest_api",
        destination=filesystem(bucket_url=os.path.abspath(lake)),
        dataset_name=DATASET,
        pipelines_dir=os.path.join(args.out, "pipelines"),
    )
    info = pipeline.run(source, loader_file_format="parquet")
    info.raise_on_failed_jobs()
    load_s = time.perf_counter() - started

    normalize_info = pipeline.last_trace.last_normalize_info if pipeline.last_trace else None
    counts = normalize_info.row_counts if normalize_info else {}
    emit(
        {
            "loader": "stock",
            "import_s": T_IMPORTED - T0,
            "load_s": load_s,
            "records": sum(int(counts.get(e, 0)) for e in args.endpoints),
            "lake": "lake",
        }
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
