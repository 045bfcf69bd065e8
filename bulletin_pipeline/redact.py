"""Credentials out of everything we print or log: URLs' `user:pass@` and secret-looking values.
As a script (standard library only) it filters stdin to stdout: the workflow's failure artifact."""

from __future__ import annotations

import functools
import logging
import re
import sys
from typing import Any, Sequence, Tuple
from urllib.parse import parse_qsl, quote_plus, urlsplit, urlunsplit

MASK = "***"
# names whose values are secrets; `author` (a WordPress filter) is not `auth`
SECRET_NAME = r"[\w.-]*(?:key|token|secret|pass|auth(?!or)|sig|credential|session)[\w.-]*"
_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s'\"<>`]+", re.IGNORECASE)
Names = Sequence[str]
"""Query parameter names whose values are secrets whatever they are called (a base_url's query)."""


@functools.lru_cache(maxsize=64)
def _patterns(names: Tuple[str, ...]) -> Tuple[re.Pattern[str], re.Pattern[str], re.Pattern[str], re.Pattern[str]]:
    """The secret-value patterns for SECRET_NAME and `names` (as given and as a URL's query spells them)."""
    name = "|".join([SECRET_NAME, *(re.escape(n) for n in sorted({*names, *map(quote_plus, names)}) if n)])
    return (
        re.compile(rf"((?:^|[&;])(?:{name})=)[^&;#]*", re.IGNORECASE),  # a URL's query
        # `"api_key": "v"`, `'token': 'v'`, `password = "v"` (JSON, reprs, TOML); `api_key=v` in free text
        re.compile(rf"""(["']?(?:{name})["']?\s*[:=]\s*)(["'])(?:(?!\2).)*\2""", re.IGNORECASE),
        re.compile(rf"((?<![\w/?&;.-])(?:{name})=)[^\s&;,'\"]+", re.IGNORECASE),
        re.compile(name, re.IGNORECASE),  # a dict's key
    )


def query_names(url: str) -> Tuple[str, ...]:
    """The names in `url`'s query (none when it does not parse)."""
    try:
        return tuple(name for name, _ in parse_qsl(urlsplit(url).query, keep_blank_values=True))
    except ValueError:
        return ()


def redact_url(url: str, names: Names = ()) -> str:
    """`url` with its userinfo as `***@` and the values of secret-looking (or `names`) query parameters as `***`."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return _URL.sub(MASK, url)
    netloc = f"{MASK}@{parts.netloc.rpartition('@')[2]}" if "@" in parts.netloc else parts.netloc
    query = _patterns(tuple(names))[0].sub(rf"\g<1>{MASK}", parts.query)
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def without_credentials(url: str) -> str:
    """`url` without its userinfo (the site's identity): unchanged when it has none."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2])) if "@" in parts.netloc else url


def redact_text(text: str, names: Names = ()) -> str:
    """`text` with every URL redacted and every secret-looking (or `names`) `name: value` pair masked."""
    _, quoted, bare, _ = _patterns(tuple(names))
    text = _URL.sub(lambda m: redact_url(m.group(0), names), text)
    text = quoted.sub(rf"\g<1>\g<2>{MASK}\g<2>", text)
    return bare.sub(rf"\g<1>{MASK}", text)


def redact_value(value: Any, names: Names = ()) -> Any:
    """A config value with its secrets masked: strings as `redact_text`, containers item by item."""
    if isinstance(value, str):
        return redact_text(value, names)
    if isinstance(value, dict):
        key = _patterns(tuple(names))[3]
        return {k: MASK if key.fullmatch(str(k)) else redact_value(v, names) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_value(v, names) for v in value]
    return value


@functools.cache  # once per process and set of names
def redact_log_records(names: Tuple[str, ...] = ()) -> None:
    """Every log record of this process (ours, httpx's, dlt's) is redacted when it is created."""
    make_record = logging.getLogRecordFactory()

    def redacting(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        message = record.getMessage()
        redacted = redact_text(message, names)
        if redacted != message:
            record.msg, record.args = redacted, ()
        return record

    logging.setLogRecordFactory(redacting)


if __name__ == "__main__":
    for line in sys.stdin:
        sys.stdout.write(redact_text(line))
