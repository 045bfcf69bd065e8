"""This pipeline: `run_pipeline(resolve_settings(...))`, full refresh, fresh lake and pipelines dir.

Timed section: the `run_pipeline` call (state sync, extract, normalize, load, summary); the
imports before it are reported separately as `import_s`.

`--profile FILE` also samples every thread's stack during the timed section (dlt extracts in the
main thread, the HTTP transport runs on its own event-loop thread) and writes where the wall time
goes to FILE (see `bench/profiler.py`); cProfile's stats of the main thread go to FILE.pstats.
"""

from __future__ import annotations

import time

T0 = time.perf_counter()

import os  # noqa: E402
import sys  # noqa: E402

from bench.loaders._child import emit, parse_args, rel  # noqa: E402
from bulletin_pipeline import resolve_settings, run_pipeline  # noqa: E402
from bulletin_pipeline.destination import DATASET_NAME  # noqa: E402

T_IMPORTED = time.perf_counter()


def main() -> int:
    profile_to = None
    argv = sys.argv[1:]
    if "--profile" in argv:
        i = argv.index("--profile")
        profile_to = argv[i + 1]
        del argv[i : i + 2]
    args = parse_args(__doc__ or "", argv)
    bucket = os.path.join(args.out, "lake")
    pipelines_dir = os.path.join(args.out, "pipelines")
    http = {"max_connections": args.connections}
    if args.ca:
        http["verify"] = args.ca
    settings = resolve_settings(
        base_url=args.base_url,
        bucket_url=bucket,
        pipelines_dir=pipelines_dir,
        full_refresh=True,
        site_id="bench",
        endpoints=args.endpoints,
        per_page=args.per_page,
        http=http,
    )
    if profile_to:
        from bench.profiler import profiled

        with profiled(profile_to) as timer:
            summary = run_pipeline(settings)
        load_s = timer.seconds
    else:
        started = time.perf_counter()
        summary = run_pipeline(settings)
        load_s = time.perf_counter() - started

    dataset = os.path.join(bucket, DATASET_NAME)
    emit(
        {
            "loader": "pipeline",
            "import_s": T_IMPORTED - T0,
            "load_s": load_s,
            "records": summary.loaded,
            "rejected": summary.rejected,
            "requests": summary.requests,
            "retries": summary.retries,
            "http_versions": summary.http_versions,
            "tables": {e: rel(os.path.join(dataset, e), args.out) for e in args.endpoints},
            "extra_tables": {"rejected": rel(os.path.join(dataset, "rejected"), args.out)},
            "endpoints": {
                e.endpoint: {
                    "loaded": e.loaded,
                    "rejected": e.rejected,
                    "duplicates": e.duplicates_skipped,
                    "files": e.files,
                    "seconds": e.seconds,
                    "rereads": e.rereads,
                }
                for e in summary.endpoints
            },
        }
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
