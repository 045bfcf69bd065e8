"""Credentials out of everything we print or log: URLs' `user:pass@` and secret-looking values.
As a script (standard library only) it filters stdin to stdout: the workflow's failure artifact."""

from __future__ import annotations

import functools
import logging
import re
import sys
from typing import Any
from urllib.parse import urlsplit, urlunsplit

MASK = "***"
# names whose values are secrets; `author` (a WordPress filter) is not `auth`
SECRET_NAME = r"[\w.-]*(?:key|token|secret|pass|auth(?!or)|sig|credential|session)[\w.-]*"
_QUERY_SECRET = re.compile(rf"((?:^|[&;]){SECRET_NAME}=)[^&;#]*", re.IGNORECASE)
_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s'\"<>`]+", re.IGNORECASE)
# `"api_key": "v"`, `'token': 'v'`, `password = "v"` (JSON, reprs, TOML); `api_key=v` in free text
_QUOTED_SECRET = re.compile(rf"""(["']?{SECRET_NAME}["']?\s*[:=]\s*)(["'])(?:(?!\2).)*\2""", re.IGNORECASE)
_BARE_SECRET = re.compile(rf"((?<![\w/?&;.-]){SECRET_NAME}=)[^\s&;,'\"]+", re.IGNORECASE)
_SECRET_KEY = re.compile(SECRET_NAME, re.IGNORECASE)


def redact_url(url: str) -> str:
    """`url` with its userinfo as `***@` and the values of secret-looking query parameters as `***`."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return _URL.sub(MASK, url)
    netloc = f"{MASK}@{parts.netloc.rpartition('@')[2]}" if "@" in parts.netloc else parts.netloc
    return urlunsplit(parts._replace(netloc=netloc, query=_QUERY_SECRET.sub(rf"\g<1>{MASK}", parts.query)))


def without_credentials(url: str) -> str:
    """`url` without its userinfo (the site's identity): unchanged when it has none."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2])) if "@" in parts.netloc else url


def redact_text(text: str) -> str:
    """`text` with every URL redacted and every secret-looking `name: value` pair masked."""
    text = _URL.sub(lambda m: redact_url(m.group(0)), text)
    text = _QUOTED_SECRET.sub(rf"\g<1>\g<2>{MASK}\g<2>", text)
    return _BARE_SECRET.sub(rf"\g<1>{MASK}", text)


def redact_value(value: Any) -> Any:
    """A config value with its secrets masked: strings as `redact_text`, containers item by item."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: MASK if _SECRET_KEY.fullmatch(str(k)) else redact_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_value(v) for v in value]
    return value


@functools.cache  # once per process
def redact_log_records() -> None:
    """Every log record of this process (ours, httpx's, dlt's) is redacted when it is created."""
    make_record = logging.getLogRecordFactory()

    def redacting(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        message = record.getMessage()
        redacted = redact_text(message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        return record

    logging.setLogRecordFactory(redacting)


if __name__ == "__main__":
    for line in sys.stdin:
        sys.stdout.write(redact_text(line))
