"""What a test can see and steer on a running simulator: stats, a request log, injected faults.

Kept apart from the ASGI app so the state shared between the server thread (writing) and the
test thread (reading, injecting) lives behind one small lock with nothing else in the way.
"""

from __future__ import annotations

import copy
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

BeforeRequest = Callable[[str, dict[str, Any]], None]


@dataclass
class Fault:
    """The next ``count`` matching requests get this instead of the real response.

    ``status=None`` with ``delay`` means: wait, then answer normally (a slow server).
    """

    status: int | None = 503
    count: int = 1
    collection: str | None = None
    retry_after: float | str | None = None
    body: str | bytes | dict[str, Any] | list[Any] | None = None
    content_type: str | None = None
    reset: bool = False
    delay: float | None = None


@dataclass
class ServerStats:
    """A snapshot of what the server has seen since it was created (or ``reset_stats``)."""

    requests: int = 0
    paths: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    # ASGI's spelling: "1.1", "2".
    http_versions: Counter[str] = field(default_factory=Counter)
    # Most requests in flight at once (received, not yet answered), counting those queued for a
    # ``max_concurrency`` slot or a worker.
    peak_concurrency: int = 0
    # Most requests in service at once (never above ``max_concurrency`` or ``workers``).
    peak_active: int = 0
    in_flight: int = 0
    active: int = 0
    faults_served: int = 0
    resets: int = 0
    bytes_sent: int = 0


class LoggedRequest(NamedTuple):
    """One served request: ``(path, params, status)``; status 0 means the connection was reset."""

    path: str
    params: dict[str, Any]
    status: int


class Controls:
    """Thread-safe state shared by the ASGI app and the test thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._stats = ServerStats()
        self._log: list[LoggedRequest] = []
        self.before_request: BeforeRequest | None = None
        self.hook_errors: list[BaseException] = []

    # -- faults --------------------------------------------------------------------------------
    def inject(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def take_fault(self, collection: str | None) -> Fault | None:
        """The first pending fault that matches, with one use consumed."""
        with self._lock:
            for fault in self._faults:
                if fault.collection is None or fault.collection == collection:
                    fault.count -= 1
                    if fault.count <= 0:
                        self._faults.remove(fault)
                    self._stats.faults_served += 1
                    return fault
        return None

    @property
    def pending_faults(self) -> int:
        with self._lock:
            return sum(f.count for f in self._faults)

    # -- accounting ----------------------------------------------------------------------------
    def begin(self, path: str, http_version: str) -> None:
        with self._lock:
            s = self._stats
            s.requests += 1
            s.paths[path] += 1
            s.http_versions[http_version] += 1
            s.in_flight += 1
            s.peak_concurrency = max(s.peak_concurrency, s.in_flight)

    def activate(self, delta: int) -> None:
        with self._lock:
            s = self._stats
            s.active += delta
            s.peak_active = max(s.peak_active, s.active)

    def record(self, path: str, params: dict[str, Any], status: int) -> None:
        """Log a request's outcome; called just *before* the response goes out, so a client
        that has its response can rely on the log already holding it."""
        with self._lock:
            self._stats.statuses[status] += 1
            if status == 0:
                self._stats.resets += 1
            self._log.append(LoggedRequest(path, params, status))

    def end(self, sent: int) -> None:
        with self._lock:
            self._stats.in_flight -= 1
            self._stats.bytes_sent += sent

    def stats(self) -> ServerStats:
        with self._lock:
            return copy.deepcopy(self._stats)

    def request_log(self) -> list[LoggedRequest]:
        with self._lock:
            return list(self._log)

    def reset_stats(self) -> None:
        with self._lock:
            in_flight, active = self._stats.in_flight, self._stats.active
            self._stats = ServerStats(
                in_flight=in_flight, active=active, peak_concurrency=in_flight, peak_active=active
            )
            self._log.clear()
