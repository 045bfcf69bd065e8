"""``python -m tests.simulator``: a seeded simulator in its own process.

Prints ``BASE_URL=...`` (and ``CA_CERT=...`` with ``--tls``) on stdout, flushed, once the port
is listening, then serves until SIGTERM/SIGINT. A separate process keeps the server's CPU work
off the client's interpreter, which is what the benchmark needs.

``--workers 4 --service-time 0.4`` serves like a PHP site with 4 workers taking 0.4 s a request
(the rest queue, never rejected). ``GET /__stats`` answers the server's counters as JSON (peak
requests in flight, queued included; statuses sent; ``?reset=1`` zeroes them): the benchmark
reads them around each loader.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time

from . import records as R
from .seed import seed_site
from .server import SimulatorServer
from .site import Site


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tests.simulator", description=__doc__)
    p.add_argument("--pages", type=int, default=2000)
    p.add_argument("--media", type=int, default=1000)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--body-kb", type=float, default=5.0)
    p.add_argument("--tie-block", type=int, default=0)
    p.add_argument("--years", type=float, default=5.0)
    p.add_argument("--timezone", default="America/New_York")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--latency", type=float, default=0.0, help="seconds added to every request")
    p.add_argument("--tls", action="store_true", help="HTTPS with HTTP/2 + HTTP/1.1 (trustme CA)")
    p.add_argument("--max-concurrency", type=int, default=None, help="at most N requests in the app at once")
    p.add_argument("--workers", type=int, default=None, help="at most N requests in service at once; others queue")
    p.add_argument("--service-time", type=float, default=0.0, help="seconds a request holds a worker")
    p.add_argument("--shuffle-ties", action="store_true")
    p.add_argument("--no-warm", action="store_true", help="do not pre-serialise every record")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    site = Site(timezone=args.timezone)
    seed_site(
        site,
        pages=args.pages,
        media=args.media,
        seed=args.seed,
        body_kb=args.body_kb,
        tie_block=args.tie_block,
        years=args.years,
    )
    if not args.no_warm:
        # Serialise every record now rather than during the first walk (a benchmark would
        # otherwise time the cache filling up).
        gc.disable()
        with site.lock:
            for name in site.collections:
                for rec in site.records(name).values():
                    R.record_bytes(rec)
        gc.enable()
    server = SimulatorServer(
        site,
        host=args.host,
        port=args.port,
        latency=args.latency,
        tls=args.tls,
        max_concurrency=args.max_concurrency,
        workers=args.workers,
        service_time=args.service_time,
        shuffle_ties=args.shuffle_ties,
        stats_path="/__stats",
    )

    def ready() -> None:
        took = time.perf_counter() - started
        print(f"# seeded {args.pages} pages + {args.media} media in {took:.1f}s", file=sys.stderr)
        if server.ca_cert_path:
            print(f"CA_CERT={server.ca_cert_path}", flush=True)
        print(f"BASE_URL={server.base_url}", flush=True)

    server.serve_forever(on_ready=ready)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
