"""A digest process: `python -m bulletin_pipeline.worker`, started by `transport.WorkerProcess`.

Reads (key, body, collection, incremental) frames on stdin and answers each, in order, on
stdout: ("ok", key, digest_parts(...) as a plain tuple) or ("error", key, one-line message).
Stdin closing ends it. It imports neither dlt, httpx nor pyarrow: it starts in ~0.3 s.
"""

from __future__ import annotations

import gc
import select
import signal
import sys
from typing import Any

from .digest import digest_parts, warm_up
from .frames import oob, read_frame, write_frame


def main() -> None:
    # Ctrl-C reaches the whole process group; the parent stops us by closing stdin
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    source, sink = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # stdout carries frames only: a stray print must not corrupt them
    warm_up(lambda: _readable(source))
    # What exists now (pydantic, the validators: ~10^5 objects) lives as long as the process.
    # Records outlive several young collections while their page is digested, so the collector
    # kept promoting them and then scanned everything in full: ~25 ms each, ~10 times a run
    # (~0.25 s, a tenth of a worker's CPU). Frozen objects are never scanned again.
    gc.freeze()
    while True:
        try:
            message = read_frame(source)
        except EOFError:
            return
        key, body, collection, incremental = message
        try:
            page = digest_parts(body, collection, incremental)
            # a plain tuple: the parent need not resolve this module's classes by name
            answer: Any = (
                "ok",
                key,
                (
                    page.rows,
                    oob(page.payload_data),
                    oob(page.payload_offsets),
                    oob(page.hashes),
                    page.errors,
                    page.parse_error,
                ),
            )
        except Exception as exc:  # noqa: BLE001 - the parent fails the run with this line
            answer = ("error", key, f"a page could not be digested: {exc!r}")
        write_frame(sink, answer)


def _readable(stream: Any) -> bool:
    try:
        return bool(select.select([stream], [], [], 0)[0])
    except (OSError, ValueError):  # pragma: no cover - not a selectable pipe: warm up fully
        return False


if __name__ == "__main__":
    main()
