"""Errors a user can act on: each renders as one line, which the CLI prints and exits non-zero."""

from __future__ import annotations

from typing import Any, Iterator, Optional


class BulletinError(Exception):
    """Base class: `str(err)` is the one-line, actionable message."""

    exit_code = 1


class ConfigError(BulletinError):
    exit_code = 2


class WordPressError(BulletinError):
    """The site answered something we cannot load; `url` (redacted) names the request."""

    def __init__(self, message: str, url: str = "") -> None:
        super().__init__(message)
        self.url = url


class WordPressUnreachable(WordPressError):
    """Connection refused, DNS failure, timeouts or resets, after every retry."""


class InconsistentListing(WordPressError):
    """The collection kept shifting under us for longer than the re-read budget."""


class EndpointsFailed(WordPressError):
    """Some collections failed (their cursors stay); the others loaded. `summary` is the run's."""

    def __init__(self, summary: Any) -> None:
        failed = "; ".join(f"{endpoint}: {message}" for endpoint, message in summary.failed.items())
        loaded = [e.endpoint for e in summary.endpoints if e.endpoint not in summary.failed]
        super().__init__(
            f"{len(summary.failed)} collection(s) failed, their cursors stay ({failed}); "
            f"loaded: {', '.join(loaded) or 'none'}"
        )
        self.summary = summary


class RejectedRecords(BulletinError):
    """--strict and at least one record failed validation (the records were still written)."""

    exit_code = 3


class DestinationError(BulletinError):
    """The destination (local folder or S3 bucket) cannot be written."""


class LakeLocked(BulletinError):
    """Another run holds the lake's lock (lock.py): this run stops before writing anything."""


class Interrupted(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C; `signal_code` as on dlt's own SignalReceivedException."""

    def __init__(self, signal_code: int) -> None:
        super().__init__(f"signal {signal_code}")
        self.signal_code = signal_code


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message, or its type's name."""
    text = str(exc).strip()
    return (text.splitlines()[0] if text else "") or type(exc).__name__


def cause_chain(exc: BaseException) -> Iterator[BaseException]:
    """`exc`, then its causes (or contexts) innermost last, each once."""
    seen = set()
    current: Optional[BaseException] = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__
