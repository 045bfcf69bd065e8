"""Benchmark profiles: this pipeline against what a user would otherwise run, in the same run.

    cd <repo> && uv run python bench/run_bench.py                     # --profile capacity
    uv run python bench/run_bench.py --profile loopback
    uv run python bench/run_bench.py --base-url http://127.0.0.1:8089/wp-json/wp/v2/   # a real site

* `capacity` (default): a server-bound site, as a real WordPress behind PHP workers is: the
  simulator serves at most `--workers` (4) requests at once, each holding its worker
  `--service-time` (0.4 s), the rest queue; 5,000 pages + 5,000 media, no added latency, 8 client
  connections. This pipeline against a plain httpx script fetching the same list pages at the
  same concurrency. Targets: wall <= 1.15x plain httpx's; never more requests in flight at the
  server than `--connections`; no 429/503.
* `loopback`: a client-CPU-bound site: 20,000 pages + 20,000 media, 50 ms added to every
  request, no server limit, 50 connections. This pipeline against a re-implementation of the
  original design and dlt's stock `rest_api`. Targets: wall <= 0.6x the original's, peak RSS
  <= 1/3 of the original's; the ratio to stock is reported, with no target.
* `--base-url URL`: the capacity comparison against an external site (e.g. the real-WordPress
  tier of scripts/wordpress/); ground truth from a walk of that site; the server's own
  counters (peak in flight, 429/503) are not observable there.

Starts the simulator once (its own process), walks it once for the ground truth (the ids every
loader must write), then runs each loader in its own process, one after the other (with
`--repeat N`, N rounds of all loaders, alternated; medians reported), measuring wall time, peak
RSS and the simulator's counters per loader; reads every loader's output back and checks it;
prints a markdown table and the targets (PASS/FAIL; the exit code is 0 regardless). Results go
to `--out/<label>-<time>/results.md` and `results.json`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import shutil
import statistics
import sys
import time
from typing import Any, Dict, List, Optional

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import (  # noqa: E402
    BENCH_DIR,
    LOADER_TITLES,
    ChildRun,
    Simulator,
    describe_checks,
    describe_machine,
    ground_truth,
    machine_info,
    prepare_bytecode,
    run_child,
    source_revision,
    verify_ids,
    verify_tables,
)

ENDPOINTS = ["pages", "media"]  # the pipeline's defaults; the loader does not choose them
PROFILES: Dict[str, Dict[str, Any]] = {
    "capacity": {
        "pages": 5000, "media": 5000, "latency": 0.0, "workers": 4, "service_time": 0.4,
        "connections": 8, "loaders": ["httpx", "pipeline"],
    },
    "loopback": {
        "pages": 20000, "media": 20000, "latency": 0.05, "workers": None, "service_time": 0.0,
        "connections": 50, "loaders": ["original", "pipeline", "stock"],
    },
}  # fmt: skip
CAPACITY_RATIO = 1.15
LOOPBACK_WALL = 0.6
LOOPBACK_RSS = 1 / 3


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profile", choices=sorted(PROFILES), default="capacity")
    p.add_argument("--base-url", default=None, help="an external site's REST base (capacity comparison only)")
    p.add_argument("--pages", type=int, default=None, help="simulated pages (capacity 5000, loopback 20000)")
    p.add_argument("--media", type=int, default=None, help="simulated media (capacity 5000, loopback 20000)")
    p.add_argument("--body-kb", type=float, default=5.0, help="simulated record size")
    p.add_argument("--latency", type=float, default=None, help="seconds added to every request (loopback 0.05)")
    p.add_argument("--workers", type=int, default=None, help="requests in service at once (capacity 4)")
    p.add_argument("--service-time", type=float, default=None, help="seconds a request holds a worker (0.4)")
    p.add_argument("--connections", type=int, default=None, help="client connections (capacity 8, loopback 50)")
    p.add_argument("--loaders", default=None, help="comma list (capacity: httpx,pipeline; loopback: original,...)")
    p.add_argument("--repeat", type=int, default=1, help="N alternated rounds of every loader; medians reported")
    p.add_argument("--out", default=os.path.join(os.path.relpath(BENCH_DIR), "out"))
    p.add_argument("--label", default=None, help="name of this run's folder (default: the profile)")
    p.add_argument("--keep", action="store_true", help="keep every loader's lake (default: delete after checking)")
    p.add_argument("--sample-stacks", action="store_true", help="sample this pipeline's stacks (bench/profiler.py)")
    p.add_argument(
        "--no-bytecode-cache",
        action="store_true",
        help="do not compile bytecode into bench/out/pycache when the environment forbids writing it",
    )
    args = p.parse_args(argv)
    if args.base_url and args.profile != "capacity":
        p.error("--base-url runs the capacity comparison (pipeline vs plain httpx) only")
    if args.base_url and not args.base_url.endswith("/"):
        args.base_url += "/"
    for key, value in PROFILES[args.profile].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if isinstance(args.loaders, str):
        args.loaders = [n.strip() for n in args.loaders.split(",") if n.strip()]
    unknown = set(args.loaders) - set(LOADER_TITLES)
    if unknown:
        p.error(f"unknown loader(s): {', '.join(sorted(unknown))}")
    args.label = args.label or (args.profile + ("-external" if args.base_url else ""))
    return args


def fmt_ratio(x: Optional[float]) -> str:
    return "—" if x is None or not math.isfinite(x) else f"{x:.2f}×"


def median_run(runs: List[ChildRun]) -> ChildRun:
    """The run of median wall time, with the median peak RSS and the highest peak in flight."""
    if len(runs) == 1:
        return runs[0]
    pick = sorted(runs, key=lambda r: r.load_s)[len(runs) // 2]
    pick.peak_rss_mb = statistics.median(r.peak_rss_mb for r in runs)
    if all(r.server for r in runs):
        pick.server = {**pick.server, "peak_in_flight": max(r.server["peak_in_flight"] for r in runs)}
        pick.server["rejected"] = max(r.server["rejected"] for r in runs)
    return pick


def ok(r: Optional[ChildRun]) -> bool:
    return r is not None and r.returncode == 0 and math.isfinite(r.load_s) and r.result["check"].startswith("ok")


def target(what: str, passed: bool, detail: str) -> str:
    return f"- {'PASS' if passed else 'FAIL'} {what} ({detail})"


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    run_dir = os.path.join(args.out, f"{args.label}-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}")
    os.makedirs(run_dir, exist_ok=True)
    machine = machine_info()
    print(f"# machine: {describe_machine(machine)}", flush=True)
    print("# " + prepare_bytecode(not args.no_bytecode_cache), flush=True)
    results: Dict[str, Any] = {
        "args": {k: v for k, v in vars(args).items() if k != "out"},
        "machine": machine,
        "revision": source_revision(),
        "loadavg": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }
    sim = None
    if not args.base_url:
        sim = Simulator(
            args.pages, args.media, args.body_kb, args.latency, args.workers, args.service_time,
            log_path=os.path.join(run_dir, "simulator.log"),
        ).start()  # fmt: skip
        print(f"# simulator ready in {sim.seed_seconds:.1f}s at {sim.base_url}", flush=True)
    base_url = args.base_url or (sim.base_url if sim else "")
    attempts: Dict[str, List[ChildRun]] = {name: [] for name in args.loaders}
    try:
        t = time.perf_counter()
        # the walk stays within the site's capacity: at most as many requests as the loaders make
        truth = ground_truth(base_url, ENDPOINTS, connections=min(10, args.connections))
        walked = [f"{k} {len(v.ids)} ids ({v.total_pages} pages, X-WP-Total {v.x_wp_total})" for k, v in truth.items()]
        print(f"# ground truth in {time.perf_counter() - t:.1f}s: {', '.join(walked)}", flush=True)
        common = ["--base-url", base_url, "--connections", str(args.connections)]
        for i in range(args.repeat):
            for name in args.loaders:
                extra = []
                if name == "pipeline" and args.sample_stacks:
                    extra = ["--sample-stacks", os.path.join(run_dir, f"stacks-pipeline-{i}.txt")]
                out_dir = os.path.join(run_dir, f"{name}-{i}")
                print(f"# running {name} ({i + 1}/{args.repeat}) ...", flush=True)
                run = run_child(name, common + extra, out_dir, server=sim)
                run.result.setdefault("load_s", float("nan"))
                if run.returncode != 0:
                    run.result["check"] = f"exit {run.returncode}"
                    print(run.stderr_tail, file=sys.stderr)
                elif name == "httpx":
                    run.result["check"] = verify_ids(run, truth)
                else:
                    check = verify_tables(run, truth)
                    run.result["check"] = describe_checks(check)
                    run.result["verified_rows"] = sum(c.rows for c in check.values())
                print(
                    f"#   {name}: exit {run.returncode}, load {run.load_s:.2f}s, peak RSS {run.peak_rss_mb:.0f} MB, "
                    f"server {json.dumps(run.server) if run.server else '—'}, check {run.result['check']}",
                    flush=True,
                )
                if not args.keep:
                    for entry in os.listdir(out_dir):
                        if os.path.isdir(os.path.join(out_dir, entry)):
                            shutil.rmtree(os.path.join(out_dir, entry), ignore_errors=True)
                attempts[name].append(run)
    finally:
        if sim is not None:
            results["simulator_rss_mb"] = sim.rss_mb()
            sim.stop()
    runs = {name: median_run(a) for name, a in attempts.items()}

    records = sum(len(e.ids) for e in truth.values())
    page_requests = sum(e.total_pages for e in truth.values())
    json_mb = sum(e.bytes for e in truth.values()) / 1e6
    if sim is None:
        site = f"external site {base_url}"
    elif args.workers:
        site = f"simulator, {args.workers} workers × {args.service_time:g} s a request (others queue)"
        site += f", {args.latency * 1000:.0f} ms latency" if args.latency else ", no added latency"
    else:
        site = f"simulator, {args.latency * 1000:.0f} ms latency per request, no server limit"
    lines = [
        f"Profile: {args.profile}. Workload: {records:,} records "
        f"({', '.join(f'{len(v.ids):,} {k}' for k, v in truth.items())}), {page_requests} page requests of 100, "
        f"{json_mb:.0f} MB of JSON; {site}; {args.connections} client connections"
        + (f"; medians of {args.repeat} alternated rounds" if args.repeat > 1 else "")
        + ".",
        f"Machine: {describe_machine(machine)}.",
        f"Source: {results['revision']}; load average at start {results['loadavg']}.",
        "",
    ]
    if args.profile == "capacity":
        lines += capacity_report(args, runs, page_requests, sim is not None)
    else:
        lines += loopback_report(runs)
    lines += details(runs)
    text = "\n".join(lines) + "\n"
    print()
    print(text)
    results.update(
        {
            "records": records,
            "page_requests": page_requests,
            "json_mb": json_mb,
            "runs": {
                n: {
                    "load_s": r.load_s, "process_s": r.wall_s, "peak_rss_mb": r.peak_rss_mb, "maxrss_mb": r.maxrss_mb,
                    "polled_rss_mb": r.polled_rss_mb, "cpu_s": r.cpu_s, "server_cpu_s": r.server_cpu_s,
                    "others_cpu_s": r.others_cpu_s, "steal_s": r.steal_s, "server": r.server,
                    "returncode": r.returncode, "result": r.result,
                    "all_load_s": [a.load_s for a in attempts[n]],
                }
                for n, r in runs.items()
            },
        }
    )  # fmt: skip
    with open(os.path.join(run_dir, "results.md"), "w") as fh:
        fh.write(text)
    with open(os.path.join(run_dir, "results.json"), "w") as fh:
        json.dump(results, fh, indent=2, default=str)
    print(f"# written to {os.path.join(run_dir, 'results.md')}")
    return 0


def capacity_report(
    args: argparse.Namespace, runs: Dict[str, ChildRun], page_requests: int, observed: bool
) -> List[str]:
    ref, p = runs.get("httpx"), runs.get("pipeline")
    lines = [
        "| loader | records | check | wall s | vs plain httpx | peak in flight | 429/503 | requests | peak RSS MB |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    if observed and args.workers:
        bound = math.ceil(page_requests / min(args.workers, args.connections)) * args.service_time
        lines.append(
            f"| server bound: ceil({page_requests} / {min(args.workers, args.connections)}) × {args.service_time:g} s "
            f"| | | {bound:.2f} | {fmt_ratio(bound / ref.load_s) if ok(ref) else '—'} | | | | |"  # type: ignore[union-attr]
        )
    for name, r in runs.items():
        srv = r.server
        lines.append(
            f"| {LOADER_TITLES[name]} | {r.result.get('verified_rows', r.result.get('records', 0)):,} "
            f"| {r.result['check']} | {r.load_s:.2f} "
            f"| {fmt_ratio(r.load_s / ref.load_s) if ok(ref) else '—'} "  # type: ignore[union-attr]
            f"| {srv.get('peak_in_flight', '—')} | {srv.get('rejected', '—')} "
            f"| {srv.get('requests', r.result.get('requests', '—'))} | {r.peak_rss_mb:.0f} |"
        )
    lines += ["", "Targets:", ""]
    if ok(p) and ok(ref):
        assert p is not None and ref is not None
        ratio = p.load_s / ref.load_s
        detail = f"{ratio:.2f}×: {p.load_s:.2f} s vs {ref.load_s:.2f} s"
        lines.append(target(f"wall ≤ {CAPACITY_RATIO:g}× plain httpx", ratio <= CAPACITY_RATIO, detail))
    else:
        lines.append("- FAIL wall ≤ 1.15× plain httpx (a run failed or its check did not pass)")
    if p is not None and p.server:
        peak, rejected = p.server["peak_in_flight"], p.server["rejected"]
        detail = f"peak {peak} vs {args.connections}"
        lines.append(target("requests in flight ≤ max_connections", peak <= args.connections, detail))
        lines.append(target("no 429/503 provoked", rejected == 0, f"{rejected}"))
    elif p is not None:
        retries = p.result.get("retries")
        lines.append(
            "- (external site: requests in flight and 429/503 are not observable here"
            + (f"; the pipeline reports {retries} retries)" if retries is not None else ")")
        )
    for name, r in runs.items():
        lines.append(target(f"{name}: every served record, once", ok(r), r.result["check"]))
    return lines


def loopback_report(runs: Dict[str, ChildRun]) -> List[str]:
    orig, stock, p = runs.get("original"), runs.get("stock"), runs.get("pipeline")
    lines = [
        "| loader | records | check | wall s | peak RSS MB | wall / original | RSS / original | stock wall / wall |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for name, r in runs.items():
        if r.returncode != 0:
            lines.append(f"| {LOADER_TITLES[name]} | — | {r.result['check']} | failed | | | | |")
            continue
        lines.append(
            f"| {LOADER_TITLES[name]} | {r.result.get('verified_rows', 0):,} | {r.result['check']} | {r.load_s:.2f} "
            f"| {r.peak_rss_mb:.0f} | {fmt_ratio(r.load_s / orig.load_s) if ok(orig) else '—'} "  # type: ignore[union-attr]
            f"| {fmt_ratio(r.peak_rss_mb / orig.peak_rss_mb) if ok(orig) else '—'} "  # type: ignore[union-attr]
            f"| {fmt_ratio(stock.load_s / r.load_s) if ok(stock) else '—'} |"  # type: ignore[union-attr]
        )
    lines += ["", "Targets:", ""]
    if ok(p) and ok(orig):
        assert p is not None and orig is not None
        wall, rss = p.load_s / orig.load_s, p.peak_rss_mb / orig.peak_rss_mb
        detail = f"{wall:.2f}×: {p.load_s:.2f} s vs {orig.load_s:.2f} s"
        lines.append(target("wall ≤ 0.6× the original design", wall <= LOOPBACK_WALL, detail))
        detail = f"{rss:.2f}×: {p.peak_rss_mb:.0f} MB vs {orig.peak_rss_mb:.0f} MB"
        lines.append(target("peak RSS ≤ ⅓ of the original design", rss <= LOOPBACK_RSS, detail))
    else:
        lines.append("- FAIL wall ≤ 0.6×, peak RSS ≤ ⅓ of the original design (a run failed or its check did not pass)")
    if ok(p) and ok(stock):
        assert p is not None and stock is not None
        speedup = f"{stock.load_s / p.load_s:.2f}× faster than stock `rest_api`"
        lines.append(f"- (reported, no target) {speedup} ({p.load_s:.2f} s vs {stock.load_s:.2f} s)")
    for name, r in runs.items():
        lines.append(target(f"{name}: every served record written once, contract intact", ok(r), r.result["check"]))
    return lines


def details(runs: Dict[str, ChildRun]) -> List[str]:
    lines = [
        "",
        "Details (wall s = the loader's timed section, imports excluded; process s = interpreter start to exit; "
        "requests, peak in flight, HTTP versions: the simulator's counters for each loader alone; "
        "other processes' CPU includes an external site's server when it runs on this machine):",
        "",
        "| loader | process s | import s | loader CPU s | simulator CPU s | other processes' CPU s | steal s "
        "| requests | peak in flight | HTTP versions |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name, r in runs.items():
        srv = r.server
        versions = ", ".join(f"HTTP/{k}: {v}" for k, v in srv.get("http_versions", {}).items()) or "—"
        sim_cpu = f"{r.server_cpu_s:.2f}" if srv else "—"
        lines.append(
            f"| {LOADER_TITLES[name]} | {r.wall_s:.2f} | {r.result.get('import_s', float('nan')):.2f} | {r.cpu_s:.2f} "
            f"| {sim_cpu} | {r.others_cpu_s:.2f} | {r.steal_s:.2f} | {srv.get('requests', '—')} "
            f"| {srv.get('peak_in_flight', '—')} | {versions} |"
        )
    return lines


if __name__ == "__main__":
    raise SystemExit(main())
