"""This pipeline, through its public API only: `run_pipeline(resolve_settings(...))`, full refresh.

Only the settings the pipeline keeps across rewrites are passed: `base_url`, a fresh
`bucket_url` and `pipelines_dir`, `full_refresh=True`, `site_id`, and `http={"max_connections":
N}`; the endpoints (pages, media) and everything else are the pipeline's defaults. Timed section:
the `run_pipeline` call; the imports before it are reported separately as `import_s`. The lake
is read back by the harness (every Parquet file under a folder named after an endpoint).

The pipeline is imported inside `main()`, as the README recommends for scripts: its digest worker
processes import the main module again (Python's spawn start method), and this keeps them light.

`--sample-stacks FILE` also samples every thread's stack during the timed section and writes
where the wall time goes to FILE (see `bench/profiler.py`).
"""

from __future__ import annotations

import time

T0 = time.perf_counter()

import os  # noqa: E402
import sys  # noqa: E402

from bench.loaders._child import emit, parse_args  # noqa: E402


def main() -> int:
    from bulletin_pipeline import resolve_settings, run_pipeline

    imported = time.perf_counter()
    sample_to = None
    argv = sys.argv[1:]
    if "--sample-stacks" in argv:
        i = argv.index("--sample-stacks")
        sample_to = argv[i + 1]
        del argv[i : i + 2]
    args = parse_args(__doc__ or "", argv)
    settings = resolve_settings(
        base_url=args.base_url,
        bucket_url=os.path.join(args.out, "lake"),
        pipelines_dir=os.path.join(args.out, "pipelines"),
        full_refresh=True,
        site_id="bench",
        http={"max_connections": args.connections},
    )
    if sample_to:
        from bench.profiler import profiled

        with profiled(sample_to) as timer:
            summary = run_pipeline(settings)
        load_s = timer.seconds
    else:
        started = time.perf_counter()
        summary = run_pipeline(settings)
        load_s = time.perf_counter() - started
    emit(
        {
            "loader": "pipeline",
            "import_s": imported - T0,
            "load_s": load_s,
            "lake": "lake",
            # what the run says of itself, where it says it (not relied upon: the lake is checked)
            **{k: getattr(summary, k) for k in ("loaded", "requests", "retries") if hasattr(summary, k)},
        }
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
