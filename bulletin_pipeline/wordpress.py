"""How a WordPress collection is walked so that no record is lost while the site changes: by `id`, in
`offset` windows that overlap, re-reading when the ids stop being contiguous (README: "Why nothing is lost").
"""

from __future__ import annotations

import copy
import logging
from typing import Any, Callable, Dict, List, Optional, Tuple

import requests
from dlt.sources.helpers.rest_client.paginators import BasePaginator

from .errors import InconsistentListing
from .transport import WordPressSession

log = logging.getLogger(__name__)

# Records each window shares with the one before: one proves contiguity, two absorb a hidden item.
WINDOW_OVERLAP = 2
# Consecutive windows without a visible record before the walk stops (a total that lies high).
MAX_BLIND_WINDOWS = 10

ProgressCallback = Callable[[str, int, int, int], None]  # (endpoint, windows done, planned, records seen)


class OverlappingWindowPaginator(BasePaginator):
    """Invariant: every record with id <= `covered` that stayed listed was read; a window that
    does not connect (lowest id > `covered`) makes it re-read further back."""

    def __init__(
        self,
        endpoint: str,
        session: WordPressSession,
        per_page: int,
        prefetch_window: int,
        max_reread_attempts: int,
        progress: Optional[ProgressCallback] = None,
    ) -> None:
        super().__init__()
        self.endpoint = endpoint
        self.session = session
        self.per_page = per_page
        self.step = max(1, per_page - WINDOW_OVERLAP)
        self.prefetch_window = max(1, prefetch_window)
        self.max_reread_attempts = max_reread_attempts
        self.progress = progress
        self.rereads = 0
        self._start_listing(None)

    def _start_listing(self, request: Optional[requests.Request]) -> None:
        self._request = request
        self._offset = 0  # the window being requested
        self._next_planned = 0  # where the planned walk (0, step, 2*step, ...) continues
        self._covered: Optional[int] = None
        self._total: Optional[int] = None
        self._blind_total: Optional[int] = None
        self._gap: Optional[Tuple[Optional[int], Optional[int]]] = None  # ids of the window read past a gap
        self._back = 0
        self._gap_attempts = 0
        self._blind_windows = 0
        self._prefetched: Dict[int, str] = {}  # offset -> URL of the windows asked for ahead of dlt
        self._windows_done = 0
        self._records = 0

    def init_request(self, request: requests.Request) -> None:  # type: ignore[override]
        request.params = {**dict(request.params or {}), "per_page": self.per_page, "offset": 0}  # type: ignore[arg-type]
        self._start_listing(request)

    def update_request(self, request: requests.Request) -> None:  # type: ignore[override]
        request.params["offset"] = self._offset  # type: ignore[index]

    def update_state(self, response: requests.Response, data: Optional[List[Any]] = None) -> None:  # type: ignore[override]
        # a page is one arrow table (digest.py); its rows are the window's records
        pages = data or []
        rows = sum(page.num_rows for page in pages)
        ids = [i for page in pages for i in page.column("id").to_pylist() if i is not None]
        try:
            total: Optional[int] = int(response.headers["X-WP-Total"])
        except (KeyError, ValueError):
            total = None
        if total == 0 and self._offset > 0 and not rows:
            total = None  # past the end WordPress answers X-WP-Total: 0, meaning "unknown", not "empty"
        previous_total = self._total
        if total is not None:
            self._total = total
        self._windows_done += 1
        self._records += rows
        offset = self._offset
        self._blind_windows = 0 if ids else self._blind_windows + 1
        if self._blind_windows > MAX_BLIND_WINDOWS:
            log.warning(
                "%s: %d windows in a row without a record (X-WP-Total %s)", self.endpoint, self._blind_windows, total
            )
            return self._finish()
        total_says_more = total is not None and offset + self.per_page < total
        reaches_end = rows < self.per_page and not total_says_more

        if not self._connects(offset, ids, total, previous_total):
            return self._open_gap(offset, ids, total)
        # a window without visible records proves nothing by ids: the next may connect on the total
        self._blind_total = total if not ids and not reaches_end else None
        self._connected(offset, ids, reaches_end)

    def _connects(self, offset: int, ids: List[int], total: Optional[int], previous_total: Optional[int]) -> bool:
        if offset == 0 or (ids and self._covered is not None and min(ids) <= self._covered):
            return True
        if self._blind_total is not None and total == self._blind_total:
            return True
        # nothing visible here, nothing moved as far as the count tells: a block of hidden items
        return not ids and total is not None and offset < total and total == previous_total

    def _connected(self, offset: int, ids: List[int], reaches_end: bool) -> None:
        if ids:
            self._covered = max(ids) if self._covered is None else max(self._covered, max(ids))
        if reaches_end:
            return self._finish()
        if self._gap is None:
            self._next_planned = offset + self.step
            return self._ask_for(self._next_planned, planned=True)
        low, high = self._gap
        if low is None or (self._covered is not None and self._covered >= low):
            # the re-read reached into the window read past the gap: contiguous again
            if high is not None:
                self._covered = high if self._covered is None else max(self._covered, high)
            self._gap = None
            return self._ask_for(self._next_planned, planned=True)
        return self._ask_for(offset + self.step)  # contiguous so far; keep re-reading forward

    def _open_gap(self, offset: int, ids: List[int], total: Optional[int]) -> None:
        if self._gap is None:
            self._gap = (min(ids), max(ids)) if ids else (None, None)
            self._next_planned = offset + self.step
            self._back = max(1, self.per_page // 2)
            self._gap_attempts = 0
            known = total if total is not None else self._total
            start = min(offset, known) if known is not None else offset
        else:
            self._back *= 2
            start = offset
        self._gap_attempts += 1
        if self._gap_attempts > self.max_reread_attempts:
            raise InconsistentListing(
                f"{self.endpoint}: the listing kept changing while it was read ({self.max_reread_attempts} "
                f"re-reads did not close a gap after id {self._covered}); nothing was committed, run again",
                url=str(self._request.url) if self._request else "",
            )
        log.info("%s: listing moved near offset %d; re-reading from %d", self.endpoint, offset, start - self._back)
        return self._ask_for(max(0, start - self._back))

    def _ask_for(self, offset: int, planned: bool = False) -> None:
        """RESTClient requests the window at `offset` next: the planned walk, or a re-read."""
        if not planned:
            self.rereads += 1
        self._offset = offset
        self._has_next_page = True
        if planned:
            self._prefetch_ahead()
        self._report()

    def _prefetch_ahead(self) -> None:
        assert self._request is not None  # a listing started (init_request)
        horizon = self._total
        if horizon is None or horizon <= self._next_planned:
            # X-WP-Total missing, or exceeded by full windows: read ahead all the same
            horizon = self._next_planned + self.prefetch_window * self.step
        for offset in range(self._next_planned, horizon, self.step)[: self.prefetch_window]:
            if offset not in self._prefetched:
                window = copy.copy(self._request)
                window.params = {**dict(self._request.params or {}), "offset": offset}  # type: ignore[arg-type]
                # prepared by the session as RESTClient will prepare it: its URL is the key of the answer
                self._prefetched[offset] = self.session.adapter.prefetch(self.session.prepare_request(window))

    def _finish(self) -> None:
        self._has_next_page = False
        self._report()
        self.session.adapter.discard(self._prefetched.values())  # answers nobody will ask for

    def _report(self) -> None:
        if self.progress is not None:
            total = self._total or 0
            planned = 1 + max(0, -(-(total - self.per_page) // self.step))
            self.progress(self.endpoint, self._windows_done, max(planned, self._windows_done), self._records)
