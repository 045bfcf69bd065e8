"""Benchmark: this pipeline vs dlt's stock rest_api vs the original design vs the lower bound.

    cd <repo> && uv run python bench/run_bench.py                       # HTTP/1.1, 50 ms latency
    uv run python bench/run_bench.py --tls                              # HTTPS (HTTP/2 for httpx)
    uv run python bench/run_bench.py --max-concurrency 10               # a server that caps concurrency

Starts the simulator once (its own process), walks it once for the ground truth (the ids every
loader must write), then runs each loader in its own process, one after the other, measuring wall
time and peak RSS per loader, reads every loader's Parquet back and checks it, and prints a
markdown table with the ratios and the targets (PASS/FAIL; the exit code is 0 regardless).
Results go to `--out/<label>-<time>/results.md` and `results.json`.
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
    verify_tables,
)

ORDER = ["floor", "original", "pipeline", "stock"]


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pages", type=int, default=20000)
    p.add_argument("--media", type=int, default=20000)
    p.add_argument("--body-kb", type=float, default=5.0)
    p.add_argument("--latency", type=float, default=0.05, help="seconds the simulator adds to every request")
    p.add_argument("--loaders", default="all", help="all, or a comma list of: pipeline,stock,original,floor")
    p.add_argument("--tls", action="store_true", help="serve HTTPS (HTTP/2 + HTTP/1.1 by ALPN)")
    p.add_argument("--max-concurrency", type=int, default=None, help="the simulator serves at most N at once")
    p.add_argument("--connections", type=int, default=50, help="client connection limit (original: 50)")
    p.add_argument("--repeat", type=int, default=1, help="run each loader N times; report the median")
    p.add_argument("--out", default=os.path.join(os.path.relpath(BENCH_DIR), "out"))
    p.add_argument("--label", default=None, help="name of this run's folder (default: http/https[-capN])")
    p.add_argument("--keep", action="store_true", help="keep every loader's lake (default: delete after checking)")
    p.add_argument("--profile", action="store_true", help="sample this pipeline's stacks (bench/profiler.py)")
    p.add_argument(
        "--no-bytecode-cache",
        action="store_true",
        help="do not compile bytecode into bench/out/pycache when the environment forbids writing it",
    )
    args = p.parse_args(argv)
    names = ORDER if args.loaders == "all" else [n.strip() for n in args.loaders.split(",") if n.strip()]
    unknown = set(names) - set(ORDER)
    if unknown:
        p.error(f"unknown loader(s): {', '.join(sorted(unknown))}")
    args.loader_names = [n for n in ORDER if n in names]
    if args.label is None:
        args.label = ("https" if args.tls else "http") + (f"-cap{args.max_concurrency}" if args.max_concurrency else "")
    return args


def fmt_ratio(x: Optional[float]) -> str:
    if x is None or not math.isfinite(x):
        return "—"
    return f"{x:.2f}×" if x < 10 else f"{x:.1f}×"


def median_run(runs: List[ChildRun]) -> ChildRun:
    if len(runs) == 1:
        return runs[0]
    ordered = sorted(runs, key=lambda r: r.load_s)
    pick = ordered[len(ordered) // 2]
    pick.peak_rss_mb = statistics.median(r.peak_rss_mb for r in runs)
    return pick


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = os.path.join(args.out, f"{args.label}-{stamp}")
    os.makedirs(run_dir, exist_ok=True)
    machine = machine_info()
    endpoints = ["pages", "media"]
    print(f"# machine: {describe_machine(machine)}", flush=True)
    print("# " + prepare_bytecode(not args.no_bytecode_cache), flush=True)

    sim = Simulator(
        args.pages, args.media, args.body_kb, args.latency, tls=args.tls,
        max_concurrency=args.max_concurrency, log_path=os.path.join(run_dir, "simulator.log"),
    )  # fmt: skip
    results: Dict[str, Any] = {
        "args": {k: v for k, v in vars(args).items() if k != "out"},
        "machine": machine,
        "revision": source_revision(),
        "loadavg": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }
    with sim.start():
        print(f"# simulator ready in {sim.seed_seconds:.1f}s at {sim.base_url}", flush=True)
        t = time.perf_counter()
        truth = ground_truth(sim.base_url, endpoints, sim.ca_cert)
        records = sum(len(e.ids) for e in truth.values())
        page_requests = sum(e.total_pages for e in truth.values())
        json_mb = sum(e.bytes for e in truth.values()) / 1e6
        print(
            f"# ground truth in {time.perf_counter() - t:.1f}s: "
            + ", ".join(
                f"{k} {len(v.ids)} ids ({v.total_pages} pages, X-WP-Total {v.x_wp_total})" for k, v in truth.items()
            )
            + f"; {json_mb:.0f} MB of JSON",
            flush=True,
        )
        concurrency = min(args.connections, args.max_concurrency or args.connections)
        network_bound = math.ceil(page_requests / concurrency) * args.latency
        common = ["--base-url", sim.base_url, "--connections", str(args.connections), "--latency", str(args.latency)]
        if sim.ca_cert:
            common += ["--ca", sim.ca_cert]

        runs: Dict[str, ChildRun] = {}
        checks: Dict[str, Any] = {}
        for name in args.loader_names:
            attempts = []
            for i in range(args.repeat):
                extra = []
                if name == "pipeline" and args.profile:
                    extra = ["--profile", os.path.join(run_dir, f"profile-pipeline-{i}.txt")]
                out_dir = os.path.join(run_dir, f"{name}-{i}")
                print(f"# running {name} ({i + 1}/{args.repeat}) ...", flush=True)
                run = run_child(name, common + extra, out_dir, server=sim)
                run.result.setdefault("load_s", float("nan"))
                check = verify_tables(run, truth) if run.returncode == 0 else {}
                run.result["check"] = describe_checks(check) if check else f"exit {run.returncode}"
                run.result["verified_rows"] = sum(c.rows for c in check.values()) if check else 0
                print(
                    f"#   {name}: exit {run.returncode}, load {run.load_s:.2f}s, process {run.wall_s:.2f}s, "
                    f"peak RSS {run.peak_rss_mb:.0f} MB, rows {run.result['verified_rows']}, "
                    f"check {run.result['check']}",
                    flush=True,
                )
                if run.returncode != 0:
                    print(run.stderr_tail, file=sys.stderr)
                if not args.keep:
                    for entry in os.listdir(out_dir):
                        full = os.path.join(out_dir, entry)
                        if os.path.isdir(full):
                            shutil.rmtree(full, ignore_errors=True)
                attempts.append(run)
            runs[name] = median_run(attempts)
            checks[name] = runs[name].result["check"]
        results["simulator_rss_mb"] = sim.rss_mb()

    floor_cpu = runs["floor"].load_s if "floor" in runs and runs["floor"].returncode == 0 else None
    floor = max(network_bound, floor_cpu) if floor_cpu is not None else None
    original = runs.get("original")
    stock = runs.get("stock")

    def ok(r: Optional[ChildRun]) -> bool:
        return r is not None and r.returncode == 0 and math.isfinite(r.load_s)

    lines = []
    variant = f"{'HTTPS' if args.tls else 'HTTP'}" + (
        f", server capped at {args.max_concurrency} concurrent requests" if args.max_concurrency else ""
    )
    lines.append(
        f"Workload: {records:,} records ({', '.join(f'{len(v.ids):,} {k}' for k, v in truth.items())}), "
        f"{page_requests} page requests of {100} records, {json_mb:.0f} MB of JSON, "
        f"{args.latency * 1000:.0f} ms latency per request, {variant}, {args.connections} client connections."
    )
    lines.append(f"Machine: {describe_machine(machine)}.")
    lines.append(f"Source: {results['revision']}; load average at start {results['loadavg']}.")
    lines.append("")
    lines.append(
        "| loader | records | check | wall s | peak RSS MB | wall / floor | vs original (wall) "
        "| vs stock (speed-up) | RSS / original |"
    )
    lines.append("|---|---:|---|---:|---:|---:|---:|---:|---:|")
    lines.append(
        f"| network bound: ceil({page_requests} / {concurrency}) × {args.latency:.3f} s | | | {network_bound:.2f} | | "
        f"{fmt_ratio(network_bound / floor) if floor else '—'} | | | |"
    )
    if "floor" in runs:
        r = runs["floor"]
        lines.append(
            f"| {LOADER_TITLES['floor']} | {r.result.get('verified_rows', 0):,} | {r.result['check']} | "
            f"{r.load_s:.2f} | ({r.peak_rss_mb:.0f}, holds every body) | "
            f"{fmt_ratio(r.load_s / floor) if floor else '—'} | | | |"
        )
        if floor is not None:
            lines.append(f"| **lower bound = max(network, CPU)** | | | **{floor:.2f}** | | 1.00× | | | |")
        if "fetch_s" in r.result:
            lines.append(
                f"| (reference) HTTP fetch alone: httpx, {args.connections} connections, bodies only | | | "
                f"{r.result['fetch_s']:.2f} | | {fmt_ratio(r.result['fetch_s'] / floor) if floor else '—'} | | | |"
            )
    for name in ("pipeline", "stock", "original"):
        if name not in runs:
            continue
        r = runs[name]
        if not ok(r):
            lines.append(f"| {LOADER_TITLES[name]} | — | {r.result['check']} | failed | | | | | |")
            continue
        vs_orig = r.load_s / original.load_s if ok(original) else None  # type: ignore[union-attr]
        speedup = stock.load_s / r.load_s if ok(stock) else None  # type: ignore[union-attr]
        rss_orig = r.peak_rss_mb / original.peak_rss_mb if ok(original) else None  # type: ignore[union-attr]
        lines.append(
            f"| {LOADER_TITLES[name]} | {r.result.get('verified_rows', 0):,} | {r.result['check']} | {r.load_s:.2f} | "
            f"{r.peak_rss_mb:.0f} | {fmt_ratio(r.load_s / floor) if floor else '—'} | {fmt_ratio(vs_orig)} | "
            f"{fmt_ratio(speedup)} | {fmt_ratio(rss_orig)} |"
        )
    lines.append("")
    lines.append(
        "Details (wall s = the loader's timed section, imports excluded; process s = interpreter start to exit):"
    )
    lines.append("")
    lines.append(
        "| loader | process s | import s | loader CPU s | simulator CPU s | other processes' CPU s | steal s "
        "| requests | HTTP versions |"
    )
    lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for name in args.loader_names:
        r = runs[name]
        versions = r.result.get("http_versions") or {}
        versions_text = ", ".join(f"{k}: {v}" if v is not None else k for k, v in versions.items()) or "—"
        lines.append(
            f"| {LOADER_TITLES[name]} | {r.wall_s:.2f} | {r.result.get('import_s', float('nan')):.2f} | "
            f"{r.cpu_s:.2f} | "
            f"{r.server_cpu_s:.2f} | {r.others_cpu_s:.2f} | {r.steal_s:.2f} | {r.result.get('requests', '—')} | "
            f"{versions_text} |"
        )
    if "floor" in runs and runs["floor"].result.get("stages"):
        stages = runs["floor"].result["stages"]
        extra = runs["floor"].result.get("extra", {})
        lines.append("")
        lines.append(
            "CPU floor stages (s): "
            + ", ".join(f"{k} {v:.2f}" for k, v in stages.items())
            + f"; the fetch before it took {runs['floor'].result.get('fetch_s', float('nan')):.2f} s wall, "
            f"{runs['floor'].result.get('fetch_cpu_s', float('nan')):.2f} s CPU"
            + "; for reference, not in the floor: "
            + ", ".join(f"{k} {v:.2f}" for k, v in extra.items() if isinstance(v, (int, float)))
        )

    # targets
    targets: List[str] = []
    p = runs.get("pipeline")
    if ok(p):
        assert p is not None
        if floor is not None:
            targets.append(
                _target("wall ≤ 2× the lower bound", p.load_s <= 2 * floor, f"{p.load_s:.2f} s vs 2 × {floor:.2f} s")
            )
        if ok(original):
            assert original is not None
            targets.append(
                _target(
                    "wall ≤ 0.5× the original design",
                    p.load_s <= 0.5 * original.load_s,
                    f"{p.load_s:.2f} s vs 0.5 × {original.load_s:.2f} s",
                )
            )
            targets.append(
                _target(
                    "peak RSS ≤ ⅓ of the original design's",
                    p.peak_rss_mb <= original.peak_rss_mb / 3,
                    f"{p.peak_rss_mb:.0f} MB vs {original.peak_rss_mb:.0f} / 3 MB",
                )
            )
        if ok(stock):
            assert stock is not None
            targets.append(
                _target(
                    "≥ 10× faster than stock rest_api", stock.load_s >= 10 * p.load_s, f"{stock.load_s / p.load_s:.1f}×"
                )
            )
    for name in args.loader_names:
        r = runs[name]
        targets.append(
            _target(
                f"{name}: every served record written once, contract intact",
                r.returncode == 0 and r.result["check"].startswith("ok"),
                r.result["check"],
            )
        )
    lines.append("")
    lines.append("Targets:")
    lines.append("")
    lines += [f"- {t}" for t in targets]
    text = "\n".join(lines) + "\n"
    print()
    print(text)

    results.update(
        {
            "records": records,
            "page_requests": page_requests,
            "json_mb": json_mb,
            "network_bound_s": network_bound,
            "floor_s": floor,
            "runs": {
                n: {
                    "load_s": r.load_s, "process_s": r.wall_s, "peak_rss_mb": r.peak_rss_mb, "maxrss_mb": r.maxrss_mb,
                    "polled_rss_mb": r.polled_rss_mb, "cpu_s": r.cpu_s, "server_cpu_s": r.server_cpu_s,
                    "others_cpu_s": r.others_cpu_s, "steal_s": r.steal_s,
                    "returncode": r.returncode, "result": r.result,
                }
                for n, r in runs.items()
            },
            "targets": targets,
        }
    )  # fmt: skip
    with open(os.path.join(run_dir, "results.md"), "w") as fh:
        fh.write(text)
    with open(os.path.join(run_dir, "results.json"), "w") as fh:
        json.dump(results, fh, indent=2, default=str)
    print(f"# written to {os.path.join(run_dir, 'results.md')}")
    return 0


def _target(what: str, passed: bool, detail: str) -> str:
    return f"{'PASS' if passed else 'FAIL'} {what} ({detail})"


if __name__ == "__main__":
    raise SystemExit(main())
