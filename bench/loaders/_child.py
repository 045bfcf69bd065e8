"""What every loader process shares: its arguments and the one result line it prints.

Kept free of heavy imports so a loader can time its own imports separately from its load.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Dict, List, Optional

RESULT_PREFIX = "BENCH_RESULT "


def parse_args(description: str, argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--base-url", required=True, help="REST base, e.g. http://127.0.0.1:PORT/wp-json/wp/v2/")
    p.add_argument("--out", required=True, help="folder this loader writes into (created, must be fresh)")
    p.add_argument("--endpoints", default="pages,media")
    p.add_argument("--connections", type=int, default=50, help="client connection limit (original: 50)")
    p.add_argument("--per-page", type=int, default=100)
    args = p.parse_args(argv)
    args.endpoints = [e for e in args.endpoints.split(",") if e]
    os.makedirs(args.out, exist_ok=True)
    return args


def peak_rss_mb() -> Optional[float]:
    """This process's RSS high-water mark (VmHWM), which exec resets - unlike `ru_maxrss`, which
    keeps the forking parent's RSS when the child was started with vfork/posix_spawn."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def emit(result: Dict[str, Any]) -> None:
    """Print the loader's result as the last stdout line (the harness parses it)."""
    result.setdefault("vm_hwm_mb", peak_rss_mb())
    sys.stdout.flush()
    print(RESULT_PREFIX + json.dumps(result, default=str), flush=True)
