"""The lake lock: one run at a time per lake, on local disk and S3 alike (README: "One run at a time").

`{dataset}/_bulletin_lock.json` names the holder and its expiry; every change is a compare-and-swap
through the destination's fsspec filesystem: on S3 PutObject with `If-None-Match: *` / `If-Match`,
on disk O_EXCL creation (of the lock, or of a guard file renamed over it).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import json
import logging
import os
import posixpath
import secrets
import socket
import threading
import time
from typing import Any, Optional, Tuple

import dlt

from .errors import DestinationError, LakeLocked

LOCK_NAME = "_bulletin_lock.json"
log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Holder:
    host: str
    pid: int
    token: str
    acquired_at: str
    expires_at: str

    def expired(self) -> bool:
        return dt.datetime.fromisoformat(self.expires_at) <= dt.datetime.now(dt.UTC)

    def stale(self) -> bool:
        """Expired, or held by a process of this machine that is gone (a run killed here)."""
        if self.expired():
            return True
        if self.host != socket.gethostname():
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False

    def dump(self) -> bytes:
        return json.dumps(dataclasses.asdict(self)).encode()


def _stamp(seconds: float = 0) -> str:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds)).isoformat(timespec="seconds")


class LakeLock:
    """`acquire()` (raises LakeLocked), then `release()`; renews itself from a daemon thread."""

    def __init__(self, fs: Any, dataset_path: str, ttl_seconds: int, url: str) -> None:
        self.fs = fs
        self.path = posixpath.join(dataset_path, LOCK_NAME)
        self.url = posixpath.join(url, LOCK_NAME)
        self.ttl = ttl_seconds
        self.local = "file" in fs.protocol
        self.holder: Optional[Holder] = None
        self.version: Any = None  # what a compare-and-swap compares: S3's ETag, or the bytes on disk
        self._stop = threading.Event()
        self._renewer: Optional[threading.Thread] = None

    def acquire(self) -> None:
        token = secrets.token_hex(16)
        for _ in range(3):
            holder = Holder(socket.gethostname(), os.getpid(), token, _stamp(), _stamp(self.ttl))
            version = self._create(holder.dump())
            if version is None:
                current = self._read()
                if current is None:
                    continue  # released in the meantime
                other = self._parse(current[0])
                if not other.stale():
                    raise LakeLocked(
                        f"the lake is locked by {other.host} pid {other.pid} since {other.acquired_at} "
                        f"until {other.expires_at}; if no run is active there, wait until then or remove {self.url}"
                    )
                version = self._swap(current[1], holder.dump())
                if version is None:
                    continue  # another run took it over first: see who holds it now
            self.holder, self.version = holder, version
            self._renewer = threading.Thread(target=self._renew_loop, name="lake-lock-renewal", daemon=True)
            self._renewer.start()
            return
        raise LakeLocked(
            f"the lake lock {self.url} expired but could not be taken over (another run is taking it over); "
            f"if no run is active there, remove {self.url} and any {self.url}.* beside it"
        )

    def release(self) -> None:
        """Delete the lock if it is still ours and live: an expired one may be being taken over."""
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()
        if self.holder is None:
            return
        try:
            current = self._read()
            if current is not None:
                holder = self._parse(current[0])
                if holder.token == self.holder.token and not holder.expired():
                    self.fs.rm(self.path)
        except Exception as exc:  # noqa: BLE001 - the run's outcome stands; the lock expires anyway
            log.warning("could not release the lake lock %s: %s", self.url, exc)
        self.holder = None

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            assert self.holder is not None
            renewed = dataclasses.replace(self.holder, expires_at=_stamp(self.ttl))
            try:
                version = self._swap(self.version, renewed.dump())
            except Exception as exc:  # noqa: BLE001 - try again at the next tick, well before expiry
                log.warning("could not renew the lake lock %s: %s", self.url, exc)
                continue
            if version is None:
                log.warning("the lake lock %s was taken over by another run: it expired during this run", self.url)
                return
            self.holder, self.version = renewed, version

    def _parse(self, data: bytes) -> Holder:
        try:
            holder = Holder(**json.loads(data))
            holder.expired()  # a well-formed, zoned expiry
            return holder
        except (ValueError, TypeError) as exc:
            raise LakeLocked(
                f"the lake lock {self.url} cannot be read ({exc}); if no run is active there, remove it"
            ) from exc

    def _read(self) -> Optional[Tuple[bytes, Any]]:
        """(content, version), None when there is no lock. On S3 the ETag is read first: a content
        newer than it only makes the next compare-and-swap fail, never succeed wrongly."""
        try:
            if self.local:
                data = self.fs.cat_file(self.path)
                return data, data
            self.fs.invalidate_cache(self.path)
            etag = self.fs.info(self.path)["ETag"]
            return self.fs.cat_file(self.path), etag
        except FileNotFoundError:
            return None

    def _create(self, data: bytes) -> Any:
        """Write the lock if there is none: its version, or None when one exists."""
        try:
            if self.local:
                with self.fs.open(self.path, "xb") as handle:
                    handle.write(data)
                return data
            return self.fs.pipe_file(self.path, data, mode="create")["ETag"]
        except FileExistsError:
            return None

    def _swap(self, version: Any, data: bytes) -> Any:
        """Replace the lock only if it is still `version`: the new version, or None."""
        if not self.local:
            try:
                return self.fs.pipe_file(self.path, data, IfMatch=version)["ETag"]
            except OSError as exc:
                response = getattr(exc.__cause__, "response", None) or {}
                code = response.get("Error", {}).get("Code")
                if isinstance(exc, FileNotFoundError) or code in ("PreconditionFailed", "ConditionalRequestConflict"):
                    return None
                raise
        guard = f"{self.path}.{hashlib.sha256(version).hexdigest()[:16]}"
        try:
            with self.fs.open(guard, "xb") as handle:
                handle.write(data)
        except FileExistsError:
            return None  # another run is replacing this very version
        replaced = False
        try:
            current = self._read()
            if current is not None and current[1] == version:
                self.fs.mv(guard, self.path)  # a rename: atomic, and the guard is gone with it
                replaced = True
        finally:
            if not replaced:
                self.fs.rm(guard)
        return data if replaced else None


def lake_lock(pipeline: dlt.Pipeline, ttl_seconds: int, wait_seconds: float = 0.0) -> LakeLock:
    """Take the lock of the pipeline's lake (LakeLocked when another run holds it for longer than
    `wait_seconds`); the caller releases it."""
    with pipeline.destination_client() as client:
        fs = client.fs_client  # type: ignore[attr-defined]
        dataset_path = client.dataset_path  # type: ignore[attr-defined]
        if client.config.is_local_filesystem:  # type: ignore[attr-defined]
            url = dataset_path
            if not client.is_storage_initialized():  # type: ignore[attr-defined]
                # dlt creates the dataset folder only if it does not exist, so the lock cannot
                # create it first; two first runs racing here both find the folder made
                with contextlib.suppress(FileExistsError):
                    client.initialize_storage()  # type: ignore[attr-defined]
        else:
            url = client.make_remote_url(dataset_path)  # type: ignore[attr-defined]
    lock = LakeLock(fs, dataset_path, ttl_seconds, url.rstrip("/"))
    deadline = time.monotonic() + wait_seconds
    try:
        while True:
            try:
                lock.acquire()
                break
            except LakeLocked:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.1)
    except OSError as exc:
        raise DestinationError(f"cannot take the lake lock {lock.url}: {exc}") from exc
    return lock
