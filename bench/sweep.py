"""The deletion sweep's cost: one sweep of every endpoint (sweep.py), against the simulator.

    cd <repo> && uv run python bench/sweep.py                                  # 10,000 + 10,000, 50 ms
    uv run python bench/sweep.py --workers 4 --service-time 0.4 --connections 8   # the capacity profile

A fresh simulator in its own process (half pages, half media), then `sweep()` of each endpoint in
this process through the pipeline's own HTTP adapter: wall time per endpoint, the simulator's
request count, peak in flight and bytes sent. Prints a markdown table; exit 0.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import List, Optional

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import Simulator, describe_machine, machine_info, source_revision  # noqa: E402


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=10_000)
    parser.add_argument("--media", type=int, default=10_000)
    parser.add_argument("--body-kb", type=float, default=5)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--service-time", type=float, default=0.0)
    parser.add_argument("--connections", type=int, default=50)
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    from bulletin_pipeline.settings import resolve_settings
    from bulletin_pipeline.sweep import sweep
    from bulletin_pipeline.transport import HttpxAdapter

    simulator = Simulator(args.pages, args.media, args.body_kb, args.latency, args.workers, args.service_time)
    simulator.start()
    try:
        settings = resolve_settings(
            base_url=simulator.base_url, bucket_url=".", http={"max_connections": args.connections}
        )
        rows = []
        for endpoint in ("pages", "media"):
            adapter = HttpxAdapter(settings.http)
            simulator.stats(reset=True)
            started = time.perf_counter()
            listing = sweep(adapter, settings, endpoint)
            wall = time.perf_counter() - started
            adapter.close()
            stats = simulator.stats()
            rows.append((endpoint, listing, wall, stats))
    finally:
        simulator.stop()
    server = f"{args.latency * 1000:g} ms a request" + (
        f", {args.workers} workers x {args.service_time:g} s" if args.workers else ", no server limit"
    )
    print(f"# sweep: {args.pages:,} pages + {args.media:,} media seeded; {server}; {args.connections} connections")
    print(f"# {describe_machine(machine_info())}; source {source_revision()}\n")
    print("| endpoint | served | hidden | complete | wall s | requests | peak in flight | KB sent |")
    print("|---|---:|---:|---|---:|---:|---:|---:|")
    for endpoint, listing, wall, stats in rows:
        print(
            f"| {endpoint} | {len(listing.served):,} | {listing.hidden:,} | {listing.complete} | {wall:.2f} "
            f"| {stats['requests']} | {stats['peak_in_flight']} | {stats['bytes_sent'] // 1024:,} |"
        )
    served, wall, requests = (
        sum(len(r[1].served) for r in rows),
        sum(r[2] for r in rows),
        sum(r[3]["requests"] for r in rows),
    )
    print(f"\n{served:,} records swept in {wall:.2f} s, {requests} requests")
    return 0


if __name__ == "__main__":
    sys.exit(main())
