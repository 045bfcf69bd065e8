"""Sites for the orchestrator tests: keyword overrides for `resolve_settings`, each with its own lake and state."""

from __future__ import annotations

import pathlib
import socket
from typing import Any, Dict

from tests.conftest import FAST_HTTP


def closed_port_url() -> str:
    """A REST base on a loopback port nothing listens on: the site is unreachable."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/wp-json/wp/v2/"


def site_options(root: pathlib.Path, base_url: str, name: str) -> Dict[str, Any]:
    """`root/name/lake` and `root/name/pipelines`, as tests.conftest.Lake(root / name, ...) reads them."""
    return {
        "base_url": base_url,
        "bucket_url": str(root / name / "lake"),
        "pipelines_dir": str(root / name / "pipelines"),
        "site_id": name,
        "http": FAST_HTTP,
    }
