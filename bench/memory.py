"""Memory check: this pipeline alone at growing sizes; peak RSS must stay roughly flat.

    cd <repo> && uv run python bench/memory.py                        # 50,000 and 200,000 records
    uv run python bench/memory.py --sizes 20000,100000,200000 --latency 0

For each size a fresh simulator (half pages, half media, ~`--body-kb` KB each, no latency by
default: the point is memory, not waiting) is started, the pipeline runs once in its own process
with a fresh lake, its peak RSS is measured (kernel high-water mark + a psutil poll) and its
Parquet is read back and checked. Target: peak RSS under `--target-mb` (400) at 200,000 records,
and the largest size's peak at most `--flat` (1.25) × the smallest's. Exit code 0 regardless.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sys
from typing import Any, Dict, List, Optional

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import (  # noqa: E402
    BENCH_DIR,
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


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="50000,200000", help="records per run (half pages, half media)")
    p.add_argument("--body-kb", type=float, default=5.0)
    p.add_argument("--latency", type=float, default=0.0)
    p.add_argument("--connections", type=int, default=50)
    p.add_argument("--target-mb", type=float, default=400.0)
    p.add_argument("--flat", type=float, default=1.25, help="largest/smallest peak RSS allowed")
    p.add_argument("--out", default=os.path.join(os.path.relpath(BENCH_DIR), "out"))
    p.add_argument("--keep", action="store_true")
    p.add_argument("--no-verify", action="store_true", help="skip reading the lake back (faster)")
    p.add_argument("--no-bytecode-cache", action="store_true")
    args = p.parse_args(argv)
    args.size_list = sorted(int(s) for s in args.sizes.split(",") if s.strip())
    return args


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    run_dir = os.path.join(args.out, f"memory-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}")
    os.makedirs(run_dir, exist_ok=True)
    machine = machine_info()
    print(f"# machine: {describe_machine(machine)}", flush=True)
    print("# " + prepare_bytecode(not args.no_bytecode_cache), flush=True)
    rows: List[Dict[str, Any]] = []
    for size in args.size_list:
        pages, media = size // 2, size - size // 2
        sim = Simulator(
            pages, media, args.body_kb, args.latency, log_path=os.path.join(run_dir, f"simulator-{size}.log")
        )
        with sim.start():
            print(f"# {size} records: simulator ready in {sim.seed_seconds:.1f}s", flush=True)
            truth = ground_truth(sim.base_url, ["pages", "media"]) if not args.no_verify else None
            out_dir = os.path.join(run_dir, f"pipeline-{size}")
            run = run_child(
                "pipeline",
                ["--base-url", sim.base_url, "--connections", str(args.connections)],
                out_dir,
                server=sim,
            )
            checks = verify_tables(run, truth) if truth and run.returncode == 0 else None
            check = (
                describe_checks(checks)
                if checks
                else ("not checked" if run.returncode == 0 else f"exit {run.returncode}")
            )
            served = sum(len(t.ids) for t in truth.values()) if truth else None
            json_mb = sum(t.bytes for t in truth.values()) / 1e6 if truth else None
            row = {
                "size": size,
                "served": served,
                "records": sum(c.rows for c in checks.values()) if checks else run.result.get("loaded"),
                "json_mb": json_mb,
                "load_s": run.load_s,
                "peak_rss_mb": run.peak_rss_mb,
                "maxrss_mb": run.maxrss_mb,
                "polled_rss_mb": run.polled_rss_mb,
                "requests": run.server.get("requests"),
                "check": check,
                "returncode": run.returncode,
            }
            rows.append(row)
            print(
                f"#   pipeline: exit {run.returncode}, {row['records']} records in {run.load_s:.1f}s, "
                f"peak RSS {run.peak_rss_mb:.0f} MB, check {check}",
                flush=True,
            )
            if run.returncode != 0:
                print(run.stderr_tail, file=sys.stderr)
            if not args.keep:
                for entry in os.listdir(out_dir):
                    full = os.path.join(out_dir, entry)
                    if os.path.isdir(full):
                        shutil.rmtree(full, ignore_errors=True)

    lines = [
        f"Memory check: this pipeline alone, ~{args.body_kb:g} KB records, {args.latency * 1000:.0f} ms latency, "
        f"{args.connections} connections, HTTP.",
        f"Machine: {describe_machine(machine)}.",
        f"Source: {source_revision()}.",
        "",
        "| records | JSON MB | wall s | peak RSS MB | RSS / smallest | requests | check |",
        "|---:|---:|---:|---:|---:|---:|---|",
    ]
    base = rows[0]["peak_rss_mb"] if rows else 0
    for r in rows:
        lines.append(
            f"| {r['records'] or 0:,} | {r['json_mb'] or 0:.0f} | {r['load_s']:.1f} | {r['peak_rss_mb']:.0f} | "
            f"{r['peak_rss_mb'] / base:.2f}× | {r['requests'] or '—'} | {r['check']} |"
        )
    lines.append("")
    if rows:
        largest = rows[-1]
        ok_runs = all(r["returncode"] == 0 for r in rows)
        lines.append(
            f"- {'PASS' if ok_runs and largest['peak_rss_mb'] < args.target_mb else 'FAIL'} peak RSS under "
            f"{args.target_mb:.0f} MB at {largest['records'] or largest['size']:,} records "
            f"({largest['peak_rss_mb']:.0f} MB)"
        )
        growth = largest["peak_rss_mb"] / base if base else float("inf")
        lines.append(
            f"- {'PASS' if ok_runs and growth <= args.flat else 'FAIL'} roughly flat: largest / smallest peak RSS "
            f"{growth:.2f}× (≤ {args.flat:.2f}×) for {largest['size'] / rows[0]['size']:.0f}× the records"
        )
    text = "\n".join(lines) + "\n"
    print()
    print(text)
    with open(os.path.join(run_dir, "results.md"), "w") as fh:
        fh.write(text)
    with open(os.path.join(run_dir, "results.json"), "w") as fh:
        json.dump(
            {"machine": machine, "args": {k: v for k, v in vars(args).items() if k != "out"}, "rows": rows},
            fh,
            indent=2,
            default=str,
        )
    print(f"# written to {os.path.join(run_dir, 'results.md')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
