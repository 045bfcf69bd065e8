"""JSON bytes exactly as WordPress (PHP ``wp_json_encode``) writes them.

WordPress serves REST responses through PHP's ``json_encode`` without ``JSON_UNESCAPED_SLASHES``
or ``JSON_UNESCAPED_UNICODE``: every ``/`` is written ``\\/`` and every non-ASCII character as a
``\\uXXXX`` escape (surrogate pairs for emoji), with no spaces between tokens. Clients that hash
or compare raw bytes see exactly this, so the simulator writes the same bytes. (The stdlib
encoder with ``ensure_ascii`` is as fast here as orjson plus re-escaping, and simpler.)
"""

from __future__ import annotations

import json
from typing import Any

_ENCODER = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"), allow_nan=False)


def dumps(value: Any) -> bytes:
    """Encode ``value`` like PHP's ``json_encode`` with WordPress's default flags."""
    # In JSON text a "/" can only occur inside a string, so a plain replace is exact.
    return _ENCODER.encode(value).replace("/", "\\/").encode("ascii")


def error_body(code: str, message: str, status: int, **data: Any) -> bytes:
    """A ``WP_Error`` as the REST server renders it: ``{"code","message","data":{"status"...}}``."""
    return dumps({"code": code, "message": message, "data": {"status": status, **data}})
