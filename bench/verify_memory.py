"""Memory check of `verify`: its peak RSS reading lakes of growing size must stay flat.

    cd <repo> && uv run python bench/verify_memory.py                 # 50,000 and 200,000 records
    uv run python bench/verify_memory.py --sizes 200000 --loads 5

For each size a lake is written directly with pyarrow, as the pipeline lays it out (half pages,
half media, ~`--body-kb` KB WordPress-shaped payloads, `--loads` loads each with one snappy file
per table in 5,000-row row groups as dlt writes them, a `_dlt_loads` entry per load; no stored
state, so no cursor is compared), then `run.py verify` runs once in its own process. Its peak RSS
is the kernel's high-water mark (VmHWM) read as it exits. Target: under `--target-mb` (400) at
the largest size and at most `--flat` (1.25) × the smallest's. Exit code 0 regardless.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import os
import random
import re
import shutil
import subprocess
import sys
import time
from typing import List, Optional

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import orjson  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from bench.common import (  # noqa: E402
    BENCH_DIR,
    ROOT,
    child_env,
    describe_machine,
    machine_info,
    prepare_bytecode,
    source_revision,
)

ROW_GROUP = 5000  # rows dlt's writer buffers before it writes a row group
WORDS = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut labore".split()
# the child: verify through the CLI, then its own high-water mark on stderr
CHILD = (
    "import sys\n"
    "from bulletin_pipeline.cli import main\n"
    "code = main(sys.argv[1:])\n"
    "from bench.loaders._child import peak_rss_mb\n"
    "print(f'VM_HWM_MB {peak_rss_mb()}', file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="50000,200000", help="records per lake (half pages, half media)")
    p.add_argument("--loads", type=int, default=2, help="loads per lake (each: one file per table)")
    p.add_argument("--body-kb", type=float, default=5.0)
    p.add_argument("--target-mb", type=float, default=400.0)
    p.add_argument("--flat", type=float, default=1.25, help="largest/smallest peak RSS allowed")
    p.add_argument("--out", default=os.path.join(os.path.relpath(BENCH_DIR), "out"))
    p.add_argument("--keep", action="store_true", help="keep the lakes")
    args = p.parse_args(argv)
    args.size_list = sorted(int(s) for s in args.sizes.split(",") if s.strip())
    return args


def record(collection: str, record_id: int, modified: dt.datetime, body: str) -> bytes:
    stamp = modified.strftime("%Y-%m-%dT%H:%M:%S")
    return orjson.dumps(
        {
            "id": record_id,
            "date": stamp,
            "date_gmt": stamp,
            "guid": {"rendered": f"https://example.edu/?p={record_id}"},
            "modified": stamp,
            "modified_gmt": stamp,
            "slug": f"{collection}-{record_id}",
            "status": "publish" if collection == "pages" else "inherit",
            "type": "page" if collection == "pages" else "attachment",
            "link": f"https://example.edu/{collection}-{record_id}/",
            "title": {"rendered": f"{collection.title()} {record_id}"},
            "content": {"rendered": f"<p>{body}</p>", "protected": False},
            "author": 1 + record_id % 7,
            "meta": [],
        }
    )


def write_lake(folder: str, size: int, loads: int, body_kb: float) -> None:
    """`size` records into `folder/bulletin_raw`, as `loads` loads of the pipeline would lay them out."""
    rng = random.Random(size)
    pool = " ".join(rng.choice(WORDS) for _ in range(200_000))  # each body a slice of it: text, not one repeat
    length = int(body_kb * 1024)
    dataset = os.path.join(folder, "bulletin_raw")
    os.makedirs(os.path.join(dataset, "_dlt_loads"), exist_ok=True)
    start = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    schema = pa.schema(
        [
            pa.field("id", pa.int64(), nullable=False),
            pa.field("dl_inserted_at", pa.timestamp("us", tz="UTC"), nullable=False),
            pa.field("payload", pa.string(), nullable=False),
            pa.field("dl_hash", pa.string(), nullable=False),
        ]
    )
    for load in range(loads):
        inserted = start + dt.timedelta(days=load)
        load_id = f"{int(inserted.timestamp())}.{load:07d}"
        partition = inserted.strftime("load_date=%Y-%m-%d/load_time=%H:%M:%S")
        for table_index, collection in enumerate(("pages", "media")):
            count = (size // 2 if table_index == 0 else size - size // 2) // loads
            first = 1 + table_index * size + load * count
            path = os.path.join(dataset, collection, partition, f"{load_id}.{table_index:010x}.parquet")
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with pq.ParquetWriter(path, schema, compression="snappy") as writer:
                for offset in range(0, count, ROW_GROUP):
                    ids = list(range(first + offset, first + min(count, offset + ROW_GROUP)))
                    bodies = [rng.randrange(len(pool) - length) for _ in ids]
                    payloads = [
                        record(collection, i, start + dt.timedelta(minutes=i), pool[at : at + length])
                        for i, at in zip(ids, bodies, strict=True)
                    ]
                    writer.write_table(
                        pa.table(
                            [
                                pa.array(ids, pa.int64()),
                                pa.repeat(pa.scalar(inserted, schema.field("dl_inserted_at").type), len(ids)),
                                pa.array(payloads, pa.binary()).cast(pa.string()),
                                pa.array([hashlib.sha256(p).hexdigest() for p in payloads], pa.string()),
                            ],
                            schema=schema,
                        )
                    )
        with open(os.path.join(dataset, "_dlt_loads", f"bulletin__{load_id}.jsonl"), "w") as fh:
            fh.write(orjson.dumps({"load_id": load_id, "schema_name": "bulletin", "status": 0}).decode() + "\n")


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    run_dir = os.path.join(args.out, f"verify-memory-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}")
    os.makedirs(run_dir, exist_ok=True)
    machine = machine_info()
    print(f"# machine: {describe_machine(machine)}", flush=True)
    print("# " + prepare_bytecode(), flush=True)
    rows = []
    for size in args.size_list:
        lake = os.path.abspath(os.path.join(run_dir, f"lake-{size}"))
        began = time.perf_counter()
        write_lake(lake, size, args.loads, args.body_kb)
        mb = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(lake) for f in fs) / 1e6
        print(f"# {size:,} records: lake written in {time.perf_counter() - began:.1f}s, {mb:.0f} MB", flush=True)
        began = time.perf_counter()
        child = subprocess.run(
            [sys.executable, "-c", CHILD, "verify", "--bucket-url", lake, "--pipelines-dir", run_dir],
            cwd=ROOT,
            env=child_env(),
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - began
        hwm = next((float(line.split()[1]) for line in child.stderr.splitlines() if line.startswith("VM_HWM_MB")), 0.0)
        verdict = child.stdout.strip().splitlines()[-1] if child.stdout.strip() else child.stderr[-500:]
        seconds = re.search(r" rows in ([0-9.]+)s", verdict)
        rows.append(
            {
                "size": size,
                "mb": mb,
                "verify_s": seconds.group(1) if seconds else "?",  # what verify says it took, imports aside
                "wall": wall,
                "hwm": hwm,
                "code": child.returncode,
            }
        )
        print(f"#   verify: exit {child.returncode} in {wall:.1f}s, peak RSS {hwm:.0f} MB; {verdict}", flush=True)
        if not args.keep:
            shutil.rmtree(lake, ignore_errors=True)

    base = rows[0]["hwm"] or 1.0
    lines = [
        f"Memory check of `verify`: lakes written with pyarrow, ~{args.body_kb:g} KB payloads, {args.loads} load(s).",
        f"Machine: {describe_machine(machine)}.",
        f"Source: {source_revision()}.",
        "",
        "| records | lake MB | verify s | process s | peak RSS MB | RSS / smallest | exit |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        figures = f"{r['mb']:.0f} | {r['verify_s']} | {r['wall']:.1f} | {r['hwm']:.0f} | {r['hwm'] / base:.2f}×"
        lines.append(f"| {r['size']:,} | {figures} | {r['code']} |")
    largest = rows[-1]
    ok = all(r["code"] == 0 for r in rows)
    lines += [
        "",
        f"- {'PASS' if ok and largest['hwm'] < args.target_mb else 'FAIL'} peak RSS under {args.target_mb:.0f} MB "
        f"at {largest['size']:,} records ({largest['hwm']:.0f} MB)",
        f"- {'PASS' if ok and largest['hwm'] / base <= args.flat else 'FAIL'} roughly flat: largest / smallest "
        f"{largest['hwm'] / base:.2f}× (≤ {args.flat:.2f}×)",
    ]
    text = "\n".join(lines) + "\n"
    print("\n" + text)
    with open(os.path.join(run_dir, "results.md"), "w") as fh:
        fh.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
