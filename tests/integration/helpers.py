"""Helpers for tests against the real WordPress (see conftest.py)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .conftest import WordPress

# [gallery] numbers its markup by how many galleries this PHP request rendered
# before it: id='gallery-3', #gallery-3 in the <style>, and caption ids such as
# gallery-3-650. The same page is gallery-1 alone and gallery-N in a list.
_GALLERY_N = re.compile(r"\bgallery-\d+\b")
# wpautop wraps shortcode output in <p>...</p> once a block-editor page was
# rendered earlier in the same request: do_blocks() removes wpautop and
# _restore_wpautop_hook() re-adds it at the end of priority 10, i.e. after
# shortcode_unautop, which then no longer strips the <p>. <p> cannot contain
# <div>/<style>, so a <p> directly before one, or a </p> directly after </div>,
# is always this artifact.
_P_BEFORE_BLOCK = re.compile(r"<p>\s*(?=<(?:div|style|figure)\b)")
_P_AFTER_BLOCK = re.compile(r"(</(?:div|figure)>)\s*</p>")
# The two variants also differ in blank lines between tags.
_WS_BETWEEN_TAGS = re.compile(r">\s+<")


def normalize_rendered(html: str) -> str:
    """Rendered HTML with WordPress's per-response instability removed, so two
    renderings of an unchanged record compare equal "modulo the quirk":
    gallery-N numbering -> gallery-N, the <p> wrapper wpautop may put around
    shortcode output, and whitespace between tags. Not for display."""
    html = _GALLERY_N.sub("gallery-N", html)
    html = _P_BEFORE_BLOCK.sub("", html)
    html = _P_AFTER_BLOCK.sub(r"\1", html)
    html = _WS_BETWEEN_TAGS.sub("><", html)
    return html.strip()


def walk(wp: WordPress, path: str, **params: Any) -> Iterator[dict[str, Any]]:
    """Every item of a collection, page by page (page=1..X-WP-TotalPages as the
    first response says). Raises AssertionError on a non-200 response."""
    page = 1
    while True:
        resp = wp.rest(path, page=page, **params)
        assert resp.status_code == 200, (resp.url, resp.status_code, resp.json)
        yield from resp.json
        if page >= (resp.total_pages or 0):
            return
        page += 1
