"""Harness plumbing shared by `run_bench.py` and `memory.py`.

* `Simulator`: the WordPress simulator in its own process (started once, reused by every loader:
  it only serves GETs, so there is no state to reset between loaders); `stats()` reads its
  counters (requests, peak in flight, statuses) from its `/__stats` route.
* `ground_truth`: walks every endpoint once (page=1..N, concurrently) and keeps the set of ids
  served - what every loader must write, no more, no less.
* `run_child`: one loader in its own process; wall time, peak RSS (the kernel's high-water mark
  VmHWM the loader reads from /proc/self/status as it exits, and a 50 ms psutil poll of its whole
  process tree; the larger wins), CPU time, and the CPU the simulator and every other process
  used meanwhile (they share the machine's cores), and the simulator's counters for that loader
  alone. `wait4`'s `ru_maxrss` is recorded but not used: with vfork/posix_spawn it keeps the
  harness's own RSS from before the exec.
* `verify_tables`: reads every Parquet file a loader wrote back and checks the contract: the four
  columns and their types, one row per served id (none missing, none twice, none unknown),
  `dl_hash == sha256(payload)` and `payload`'s `id == id` on every row. A loader names the
  folder it wrote (`lake`); an endpoint's table is every Parquet file under a folder named after
  it there, so the check does not depend on how a loader lays out its lake.
"""

from __future__ import annotations

import asyncio
import glob
import hashlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Set

import orjson
import psutil

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH_DIR)
RESULT_PREFIX = "BENCH_RESULT "

LOADER_MODULES = {
    "httpx": "bench.loaders.httpx_fetch",
    "original": "bench.loaders.original_design",
    "pipeline": "bench.loaders.pipeline",
    "stock": "bench.loaders.stock_rest_api",
}
LOADER_TITLES = {
    "httpx": "plain httpx (list pages, bodies only)",
    "pipeline": "this pipeline",
    "stock": "dlt stock `rest_api`",
    "original": "original design (re-impl.)",
}


PYCACHE = os.path.join(BENCH_DIR, "out", "pycache")
_use_pycache_prefix = False


def prepare_bytecode(enabled: bool = True) -> str:
    """Make sure loaders import compiled bytecode, as any deployed Python does.

    With PYTHONDONTWRITEBYTECODE set and no `__pycache__` in the venv, every process would compile
    dlt, pyarrow, polars... from source on each import (seconds, also inside the timed sections,
    where dlt imports lazily). Then the bytecode is compiled once into `bench/out/pycache`
    (PYTHONPYCACHEPREFIX; nothing is written into the venv or the sources) and the loaders use it.
    """
    global _use_pycache_prefix
    import importlib.util

    spec = importlib.util.find_spec("dlt")
    package_dir = os.path.dirname(spec.origin) if spec and spec.origin else ""
    if not enabled:
        return "bytecode: as the environment has it"
    if os.path.isdir(os.path.join(package_dir, "__pycache__")) and not os.environ.get("PYTHONDONTWRITEBYTECODE"):
        return "bytecode: the venv's own __pycache__"
    site_packages = os.path.dirname(package_dir)
    _use_pycache_prefix = True
    stamp = os.path.join(PYCACHE, f".compiled-{sys.implementation.cache_tag}-{int(os.path.getmtime(site_packages))}")
    if not os.path.exists(stamp):
        os.makedirs(PYCACHE, exist_ok=True)
        print("# compiling bytecode once into bench/out/pycache (about a minute) ...", flush=True)
        subprocess.run(
            [sys.executable, "-m", "compileall", "-q", "-j", "0", site_packages,
             os.path.join(ROOT, "bulletin_pipeline"), BENCH_DIR],
            cwd=ROOT, env=child_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False,
        )  # fmt: skip
        open(stamp, "w").close()
    return "bytecode: compiled once into bench/out/pycache (PYTHONPYCACHEPREFIX)"


def child_env() -> Dict[str, str]:
    env = dict(os.environ)
    if _use_pycache_prefix:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = PYCACHE
    env["RUNTIME__DLTHUB_TELEMETRY"] = "false"  # loopback only: no anonymous telemetry from dlt
    # as our CLI and a plain install: dlt would import Airflow (the dev group's, for the orchestrator tests)
    env.setdefault("PROVIDERS__ENABLE_AIRFLOW_SECRETS", "false")
    env["PYTHONPATH"] = ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("PYTHONWARNINGS", "ignore::DeprecationWarning")
    return env


# -- the simulator ----------------------------------------------------------------------------------
class Simulator:
    def __init__(
        self,
        pages: int,
        media: int,
        body_kb: float,
        latency: float = 0.0,
        workers: Optional[int] = None,
        service_time: float = 0.0,
        log_path: Optional[str] = None,
    ) -> None:
        self.cmd = [
            sys.executable, "-m", "tests.simulator",
            "--pages", str(pages), "--media", str(media), "--body-kb", str(body_kb),
            "--latency", str(latency), "--host", "127.0.0.1", "--port", "0",
        ]  # fmt: skip
        if workers:
            self.cmd += ["--workers", str(workers), "--service-time", str(service_time)]
        self.log_path = log_path
        self.proc: Optional[subprocess.Popen[str]] = None
        self.base_url = ""
        self.seed_seconds = 0.0

    def start(self, timeout: float = 600.0) -> Simulator:
        if self.proc is not None:
            raise RuntimeError("this simulator is already started")
        log = open(self.log_path, "w") if self.log_path else subprocess.DEVNULL
        started = time.perf_counter()
        self.proc = subprocess.Popen(self.cmd, cwd=ROOT, env=child_env(), stdout=subprocess.PIPE, stderr=log, text=True)
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(
                    f"simulator exited with {self.proc.wait()} before it was ready (log: {self.log_path})"
                )
            if line.startswith("BASE_URL="):
                self.base_url = line.split("=", 1)[1].strip()
                self.seed_seconds = time.perf_counter() - started
                return self
        self.stop()
        raise RuntimeError("simulator did not print BASE_URL in time")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def cpu_seconds(self) -> float:
        try:
            t = psutil.Process(self.pid).cpu_times()
            return float(t.user + t.system)
        except psutil.Error:
            return 0.0

    def stats(self, reset: bool = False) -> Dict[str, Any]:
        """The simulator's counters since the last reset (`/__stats`); `reset` zeroes them after."""
        origin = self.base_url.split("/wp-json/", 1)[0]
        with urllib.request.urlopen(f"{origin}/__stats{'?reset=1' if reset else ''}", timeout=30) as r:
            return dict(json.loads(r.read()))

    def rss_mb(self) -> float:
        try:
            return psutil.Process(self.pid).memory_info().rss / 2**20
        except psutil.Error:
            return 0.0

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> Simulator:
        # `with Simulator(...).start():` and `with Simulator(...):` both start exactly one process
        return self if self.proc is not None else self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


# -- ground truth -----------------------------------------------------------------------------------
@dataclass
class EndpointTruth:
    ids: Set[int]
    total_pages: int
    x_wp_total: int
    bytes: int


def ground_truth(
    base_url: str, endpoints: List[str], connections: int = 10, per_page: int = 100
) -> Dict[str, EndpointTruth]:
    import httpx

    async def walk() -> Dict[str, EndpointTruth]:
        out: Dict[str, EndpointTruth] = {}
        # few connections: httpcore's pool costs O(queued requests x connections) per event
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        async with httpx.AsyncClient(limits=limits, timeout=600.0) as client:

            async def page(url: str, truth: EndpointTruth, n: int) -> None:
                params: Dict[str, Any] = {"per_page": per_page, "orderby": "id", "order": "asc", "page": n}
                r = await client.get(url, params=params)
                r.raise_for_status()
                truth.bytes += len(r.content)
                truth.ids.update(item["id"] for item in orjson.loads(r.content))
                if n == 1:
                    truth.total_pages = int(r.headers["X-WP-TotalPages"])
                    truth.x_wp_total = int(r.headers["X-WP-Total"])

            for endpoint in endpoints:
                url = f"{base_url}{endpoint}"
                truth = EndpointTruth(set(), 0, 0, 0)
                await page(url, truth, 1)
                await asyncio.gather(*(page(url, truth, n) for n in range(2, truth.total_pages + 1)))
                out[endpoint] = truth
        return out

    return asyncio.run(walk())


# -- one loader process -----------------------------------------------------------------------------
@dataclass
class ChildRun:
    name: str
    returncode: int
    wall_s: float  # the whole process, interpreter start to exit
    peak_rss_mb: float
    maxrss_mb: float  # wait4's ru_maxrss: not used, it can be the harness's RSS (vfork + exec)
    polled_rss_mb: float  # psutil poll of the process tree
    cpu_s: float  # user + system of the process
    server_cpu_s: float
    others_cpu_s: float = 0.0  # CPU used meanwhile by every other process on the machine
    steal_s: float = 0.0  # CPU time the hypervisor took away (VMs)
    server: Dict[str, Any] = field(default_factory=dict)  # the simulator's counters for this loader alone
    result: Dict[str, Any] = field(default_factory=dict)
    out_dir: str = ""
    stderr_tail: str = ""

    @property
    def load_s(self) -> float:
        return float(self.result.get("load_s", float("nan")))


def _busy(t: Any) -> float:
    """Machine-wide CPU seconds spent not idle (steal excluded: not ours to use)."""
    return float(sum(getattr(t, f, 0.0) for f in ("user", "nice", "system", "irq", "softirq")))


def _poll_rss(pid: int, stop: threading.Event, peak: List[float], timeline: List[Any], interval: float = 0.05) -> None:
    try:
        proc = psutil.Process(pid)
    except psutil.Error:
        return
    tick = 0
    children: List[psutil.Process] = []
    while not stop.is_set():
        try:
            if tick % 10 == 0:
                children = proc.children(recursive=True)
            rss = proc.memory_info().rss
            for child in children:
                try:
                    rss += child.memory_info().rss
                except psutil.Error:
                    pass
        except psutil.Error:
            return
        peak[0] = max(peak[0], rss)
        timeline.append((time.perf_counter(), rss))
        tick += 1
        stop.wait(interval)


def run_child(
    name: str,
    args: List[str],
    out_dir: str,
    server: Optional[Simulator] = None,
    timeout: float = 900.0,
    env: Optional[Dict[str, str]] = None,
) -> ChildRun:
    """Run loader `name` (`python -m bench.loaders.X args... --out out_dir`) and measure it."""
    if os.path.exists(out_dir):
        shutil.rmtree(out_dir)
    os.makedirs(out_dir)
    stdout_path = os.path.join(out_dir, "stdout.txt")
    stderr_path = os.path.join(out_dir, "stderr.txt")
    cmd = [sys.executable, "-m", LOADER_MODULES[name], *args, "--out", out_dir]
    if server:
        server.stats(reset=True)
    server_cpu0 = server.cpu_seconds() if server else 0.0
    machine0 = psutil.cpu_times()
    with open(stdout_path, "w") as out, open(stderr_path, "w") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, env={**child_env(), **(env or {})}, stdout=out, stderr=err)
        stop = threading.Event()
        peak = [0.0]
        timeline: List[Any] = []
        poller = threading.Thread(target=_poll_rss, args=(proc.pid, stop, peak, timeline), daemon=True)
        poller.start()
        deadline = time.monotonic() + timeout
        status, usage = 0, None
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.01)
        wall = time.perf_counter() - started
        stop.set()
        poller.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
    server_cpu = (server.cpu_seconds() - server_cpu0) if server else 0.0
    server_stats = server.stats() if server else {}
    machine1 = psutil.cpu_times()
    busy = _busy(machine1) - _busy(machine0)
    steal = getattr(machine1, "steal", 0.0) - getattr(machine0, "steal", 0.0)
    own_cpu = (usage.ru_utime + usage.ru_stime) if usage else 0.0
    with open(os.path.join(out_dir, "rss.csv"), "w") as fh:  # seconds since start, MB
        fh.write("seconds,rss_mb\n")
        for t, rss in timeline:
            fh.write(f"{t - started:.3f},{rss / 2**20:.1f}\n")
    maxrss_mb = usage.ru_maxrss / 1024 if usage else 0.0  # Linux: KiB
    polled_mb = peak[0] / 2**20
    result: Dict[str, Any] = {}
    with open(stdout_path) as fh:
        for line in fh:
            if line.startswith(RESULT_PREFIX):
                result = json.loads(line[len(RESULT_PREFIX) :])
    with open(stderr_path, errors="replace") as fh:
        tail = fh.read()[-3000:]
    return ChildRun(
        name=name,
        returncode=proc.returncode,
        wall_s=wall,
        peak_rss_mb=max(float(result.get("vm_hwm_mb") or 0.0), polled_mb),
        maxrss_mb=maxrss_mb,
        polled_rss_mb=polled_mb,
        cpu_s=own_cpu,
        server_cpu_s=server_cpu,
        others_cpu_s=max(0.0, busy - own_cpu - server_cpu),
        steal_s=steal,
        server=server_stats,
        result=result,
        out_dir=out_dir,
        stderr_tail=tail,
    )


# -- reading the lake back --------------------------------------------------------------------------
CONTRACT = ("id", "dl_inserted_at", "payload", "dl_hash")


@dataclass
class TableCheck:
    files: int = 0
    rows: int = 0
    missing: int = 0
    duplicates: int = 0
    unknown: int = 0
    bad_hash: int = 0
    bad_payload: int = 0
    schema_issues: List[str] = field(default_factory=list)
    extra_columns: List[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (
            self.missing
            or self.duplicates
            or self.unknown
            or self.bad_hash
            or self.bad_payload
            or self.schema_issues
            or not self.files
        )


def _type_issues(schema: Any) -> List[str]:
    import pyarrow as pa

    issues = []
    names = schema.names
    for col in CONTRACT:
        if col not in names:
            issues.append(f"no column {col}")
    if "id" in names and schema.field("id").type != pa.int64():
        issues.append(f"id is {schema.field('id').type}")
    if "dl_inserted_at" in names:
        t = schema.field("dl_inserted_at").type
        if not (pa.types.is_timestamp(t) and str(t.tz) in ("UTC", "+00:00", "Etc/UTC")):
            issues.append(f"dl_inserted_at is {t}")
    for col in ("payload", "dl_hash"):
        if col in names:
            t = schema.field(col).type
            if not (pa.types.is_string(t) or pa.types.is_large_string(t) or str(t) == "string_view"):
                issues.append(f"{col} is {t}")
    return issues


def table_files(lake: str, endpoint: str) -> List[str]:
    """Every Parquet file under a folder named `endpoint` (the outermost ones) in `lake`."""
    files: List[str] = []
    for folder, subfolders, _ in os.walk(lake):
        if os.path.basename(folder) == endpoint:
            files += glob.glob(os.path.join(folder, "**", "*.parquet"), recursive=True)
            subfolders.clear()
    return sorted(files)


def verify_table(files: List[str], expected: Set[int]) -> TableCheck:
    import pyarrow.parquet as pq

    check = TableCheck()
    check.files = len(files)
    seen: Set[int] = set()
    for f in files:
        pf = pq.ParquetFile(f)
        schema = pf.schema_arrow
        for issue in _type_issues(schema):
            if issue not in check.schema_issues:
                check.schema_issues.append(issue)
        for name in schema.names:
            if name not in CONTRACT and name not in check.extra_columns:
                check.extra_columns.append(name)
        columns = [c for c in CONTRACT if c in schema.names]
        if "id" not in columns:
            check.rows += pf.metadata.num_rows
            continue
        for batch in pf.iter_batches(batch_size=8192, columns=columns):
            ids = batch.column(batch.schema.get_field_index("id")).to_pylist()
            check.rows += len(ids)
            has_payload = "payload" in columns and "dl_hash" in columns
            payloads = batch.column(batch.schema.get_field_index("payload")).to_pylist() if has_payload else None
            hashes = batch.column(batch.schema.get_field_index("dl_hash")).to_pylist() if has_payload else None
            for i, record_id in enumerate(ids):
                if record_id in seen:
                    check.duplicates += 1
                else:
                    seen.add(record_id)
                if payloads is None or hashes is None:
                    continue
                raw = payloads[i].encode("utf-8")
                if hashlib.sha256(raw).hexdigest() != hashes[i]:
                    check.bad_hash += 1
                try:
                    if orjson.loads(raw).get("id") != record_id:
                        check.bad_payload += 1
                except (orjson.JSONDecodeError, AttributeError):
                    check.bad_payload += 1
    check.missing = len(expected - seen)
    check.unknown = len(seen - expected)
    return check


def verify_tables(run: ChildRun, truth: Dict[str, EndpointTruth]) -> Dict[str, TableCheck]:
    lake = os.path.join(run.out_dir, run.result.get("lake", "__missing__"))
    return {endpoint: verify_table(table_files(lake, endpoint), t.ids) for endpoint, t in truth.items()}


def verify_ids(run: ChildRun, truth: Dict[str, EndpointTruth]) -> str:
    """For a loader that writes no lake (plain httpx): the ids it fetched, from its `ids.json`."""
    try:
        with open(os.path.join(run.out_dir, "ids.json")) as fh:
            fetched = json.load(fh)
    except (OSError, ValueError):
        return "no ids.json"
    problems = []
    for endpoint, t in truth.items():
        got = fetched.get(endpoint, [])
        missing, unknown, twice = len(t.ids - set(got)), len(set(got) - t.ids), len(got) - len(set(got))
        parts = [f"{n} {label}" for label, n in (("missing", missing), ("unknown", unknown), ("twice", twice)) if n]
        if parts:
            problems.append(f"{endpoint}: " + ", ".join(parts))
    return "; ".join(problems) if problems else "ok"


def describe_checks(checks: Dict[str, TableCheck]) -> str:
    problems = []
    for endpoint, c in checks.items():
        parts = []
        if not c.files:
            parts.append("no files")
        for label, n in (
            ("missing", c.missing),
            ("duplicated", c.duplicates),
            ("unknown ids", c.unknown),
            ("bad dl_hash", c.bad_hash),
            ("bad payload", c.bad_payload),
        ):
            if n:
                parts.append(f"{n} {label}")
        parts += c.schema_issues
        if parts:
            problems.append(f"{endpoint}: " + ", ".join(parts))
    extra = sorted({col for c in checks.values() for col in c.extra_columns})
    text = "; ".join(problems) if problems else "ok"
    if extra:
        text += f" (+{', '.join(extra)})"
    return text


# -- the machine ------------------------------------------------------------------------------------
def source_revision() -> str:
    """The commit measured, and whether the pipeline's files differ from it (others edit them)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "bulletin_pipeline", "pyproject.toml", "uv.lock"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        return "unknown"
    return f"{head}{' + uncommitted changes in bulletin_pipeline/' if dirty else ''}"


def machine_info() -> Dict[str, Any]:
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    from importlib import metadata

    versions = {}
    for dist in ("dlt", "httpx", "pyarrow", "polars", "pydantic", "orjson", "hypercorn"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = "?"
    return {
        "cpu": cpu,
        "cores": len(os.sched_getaffinity(0)),
        "ram_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "versions": versions,
    }


def describe_machine(info: Dict[str, Any]) -> str:
    v = ", ".join(f"{k} {val}" for k, val in info["versions"].items())
    return f"{info['cpu']}, {info['cores']} cores, {info['ram_gb']} GB RAM, {info['os']}, Python {info['python']}; {v}"
