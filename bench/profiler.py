"""A small in-process sampling profiler (py-spy is not available): where does a loader's wall time go?

Every `interval` seconds a daemon thread takes `sys._current_frames()` and counts, per thread, the
Python function on top of each stack ("self") and every function on the stack ("inclusive").
A share is the fraction of that thread's samples, i.e. of its wall time; a thread blocked in C
(socket, lock, sleep) is counted at the Python frame that called into C, so idle threads show
their `wait`/`select` frames. Overhead is a few percent at the default 5 ms.

Bias to keep in mind: the sampler needs the GIL to take a sample, so it lands where a thread lets
go of the GIL. C calls that hold it (orjson, pydantic-core, pyarrow kernels) are under-counted,
and calls that release it (hashlib on > 2 KB, socket and pipe writes, lock waits) are
over-counted: their share includes the wait to get the GIL back. Read it together with the
per-thread CPU times and with the cProfile stats (BENCH_CPROFILE=1, calling thread only,
deterministic but with wall-clock timings that include GIL waits).

`profiled(path)` also writes cProfile stats of the calling thread to `path + ".pstats"` when the
environment variable BENCH_CPROFILE=1 is set (cProfile slows Python code 1.5-2x, so the sampling
report is taken without it by default).
"""

from __future__ import annotations

import collections
import contextlib
import os
import sys
import threading
import time
from types import FrameType
from typing import Dict, Iterator, List, Optional, Tuple

Key = Tuple[str, str]  # (short file, function)


def _short(filename: str) -> str:
    for marker in ("site-packages" + os.sep, "lib" + os.sep + "python3"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    cwd = os.getcwd() + os.sep
    return filename[len(cwd) :] if filename.startswith(cwd) else os.path.basename(filename)


class StackSampler:
    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.samples: Dict[str, int] = collections.Counter()
        self.self_counts: Dict[str, Dict[Key, int]] = collections.defaultdict(collections.Counter)
        self.incl_counts: Dict[str, Dict[Key, int]] = collections.defaultdict(collections.Counter)
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._names: Dict[int, str] = {}
        self._short: Dict[str, str] = {}
        self.started = 0.0
        self.seconds = 0.0

    def _name(self, ident: int) -> str:
        name = self._names.get(ident)
        if name is None:
            for t in threading.enumerate():
                self._names[t.ident or 0] = t.name
            name = self._names.get(ident, f"thread-{ident}")
        return name

    def _run(self) -> None:
        me = threading.get_ident()
        while not self._stop.is_set():
            for ident, frame in sys._current_frames().items():  # noqa: SLF001 - documented in the sys module
                if ident == me:
                    continue
                name = self._name(ident)
                self.samples[name] += 1
                seen = set()
                top = True
                f: Optional[FrameType] = frame
                while f is not None:
                    code = f.f_code
                    fn = self._short.get(code.co_filename)
                    if fn is None:
                        fn = self._short[code.co_filename] = _short(code.co_filename)
                    key = (fn, code.co_name)
                    if top:
                        self.self_counts[name][key] += 1
                        top = False
                    if key not in seen:
                        seen.add(key)
                        self.incl_counts[name][key] += 1
                    f = f.f_back
            time.sleep(self.interval)

    def start(self) -> None:
        self.started = time.perf_counter()
        self._thread = threading.Thread(target=self._run, name="bench-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.seconds = time.perf_counter() - self.started
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def report(self, top: int = 30, min_share: float = 0.01) -> str:
        lines: List[str] = [f"# sampled {self.seconds:.2f} s of wall time every {self.interval * 1000:.0f} ms"]
        for name, total in sorted(self.samples.items(), key=lambda kv: -kv[1]):
            if total < 5:
                continue
            lines.append(f"\n## thread {name!r}: {total} samples")
            lines.append("### inclusive (share of this thread's wall time on the stack)")
            for (fn, func), n in sorted(self.incl_counts[name].items(), key=lambda kv: -kv[1])[:top]:
                if n / total < min_share:
                    break
                lines.append(f"{100 * n / total:6.1f}%  {fn}:{func}")
            lines.append("### self (share of this thread's wall time at the top of the stack)")
            for (fn, func), n in sorted(self.self_counts[name].items(), key=lambda kv: -kv[1])[:top]:
                if n / total < min_share:
                    break
                lines.append(f"{100 * n / total:6.1f}%  {fn}:{func}")
        return "\n".join(lines) + "\n"


class _Timer:
    seconds = 0.0


@contextlib.contextmanager
def profiled(path: str, interval: float = 0.005) -> Iterator[_Timer]:
    """Sample every thread while the block runs; write the report to `path`."""
    timer = _Timer()
    sampler = StackSampler(interval)
    cprof = None
    if os.environ.get("BENCH_CPROFILE") == "1":
        import cProfile

        cprof = cProfile.Profile()
    sampler.start()
    started = time.perf_counter()
    if cprof is not None:
        cprof.enable()
    try:
        yield timer
    finally:
        if cprof is not None:
            cprof.disable()
        timer.seconds = time.perf_counter() - started
        sampler.stop()
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(sampler.report())
        if cprof is not None:
            cprof.dump_stats(path + ".pstats")
