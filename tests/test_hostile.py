"""Issue 14 against a hostile WordPress-shaped server (tests/hostile.py): a future-dated record,
a missing or lying X-WP-Total, a `modified` not in WordPress's format, a trickling server."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import pathlib
import re
import time
from typing import Any, Dict, List

import pytest

from bulletin_pipeline.errors import BulletinError
from bulletin_pipeline.pipeline import RunSummary, make_pipeline, stored_cursor
from bulletin_pipeline.source import READ_AHEAD
from bulletin_pipeline.verify import verify_lake
from bulletin_pipeline.wordpress import WINDOW_OVERLAP

from .conftest import Lake
from .hostile import CLOCK, SITE_TZ, WP_FORMAT, HostileServer, record, stamp
from .test_cli import cli, lake_args

CLI_ENV = {"SOURCES__BULLETIN__SITE_ID": "test-site"}  # the site id Lake's runs store


def pages(count: int, now: dt.datetime = CLOCK) -> List[Dict[str, Any]]:
    """`count` pages, ids 1..count, saved 20 s apart in the hours before `now`, in an order
    unrelated to their ids (any one window holds records near the newest)."""
    start = now - dt.timedelta(hours=3)
    return [record("pages", i, start + dt.timedelta(seconds=20 * ((i * 37) % count))) for i in range(1, count + 1)]


def cursor(lake: Lake, endpoint: str = "pages") -> Any:
    return stored_cursor(make_pipeline(lake.settings()), endpoint)


def loaded(summary: RunSummary, endpoint: str = "pages") -> int:
    return next(e.loaded for e in summary.endpoints if e.endpoint == endpoint)


def site_time(value: str) -> dt.datetime:
    return dt.datetime.strptime(value, WP_FORMAT).replace(tzinfo=SITE_TZ)


@pytest.mark.parametrize("date_header", ["clock", None], ids=["date-header", "no-date-header"])
def test_a_future_dated_record_is_loaded_but_never_carries_the_cursor_past_the_sites_now(
    tmp_path: pathlib.Path, date_header: Any
):
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)  # the site's clock agrees with ours
    site_pages = pages(250, now)
    future = site_pages[76]
    future.update(modified="2099-01-01T00:00:00", modified_gmt="2099-01-01T05:00:00")
    # two hours ahead of the site's clock, yet its local time is behind the UTC wall clock
    soon = stamp(site_pages[77], now + dt.timedelta(hours=2))
    with HostileServer({"pages": site_pages}, now=now, date_header=date_header) as server:
        lake = Lake(tmp_path, server)

        def site_now() -> str:
            """The server's Date, or without one the time now, in site time."""
            return (server.now if date_header else dt.datetime.now(dt.UTC)).astimezone(SITE_TZ).strftime(WP_FORMAT)

        assert loaded(lake.run(endpoints=["pages"])) == 250
        assert sorted(r["id"] for r in lake.rows("pages")) == list(range(1, 251))  # the future ones too
        assert lake.rows("rejected") == []
        first = cursor(lake)
        assert first is not None and first <= site_now(), f"cursor {first} is past the site's now {site_now()}"

        newest = max(r["modified"] for r in site_pages if r not in (future, soon))
        original = site_pages[4]["modified_gmt"]
        edited = stamp(site_pages[4], site_time(newest) + dt.timedelta(seconds=1))
        assert loaded(lake.run(endpoints=["pages"])) == 1, "the edit just after the newest record was not loaded once"
        assert lake.versions("pages")[5] == {original, edited["modified_gmt"]}

        assert loaded(lake.run(endpoints=["pages"])) == 0, "an unchanged run loaded records again"

        future.update(modified="2099-06-01T00:00:00", modified_gmt="2099-06-01T05:00:00")
        assert loaded(lake.run(endpoints=["pages"])) == 1, "the changed future-dated record was not loaded"
        assert lake.versions("pages")[77] == {"2099-01-01T05:00:00", "2099-06-01T05:00:00"}
        assert len(lake.rows("pages")) == 252, "a record version was written twice"
        assert cursor(lake) <= site_now()


# Bounded whatever the header claims: the windows 250 records take, plus a fixed allowance for
# the windows read ahead on the header's word and a dozen empty ones to be sure of the end.
WINDOWS_FOR_250 = 1 + -(-(250 - 100) // (100 - WINDOW_OVERLAP))
MAX_REQUESTS = WINDOWS_FOR_250 + READ_AHEAD + 12


@pytest.mark.parametrize("total", [None, 10, 10**8], ids=["stripped", "lying-low", "lying-high"])
def test_a_missing_or_lying_total_loses_nothing_and_the_walk_ends(tmp_path: pathlib.Path, total: Any):
    site_pages = pages(250)
    with HostileServer({"pages": site_pages}, total=total) as server:
        lake = Lake(tmp_path, server)
        lake.run(endpoints=["pages"])
        ids = [r["id"] for r in lake.rows("pages")]
        assert sorted(ids) == list(range(1, 251)), f"{len(set(ids))} of 250 records loaded ({len(ids)} rows)"
        assert server.count("pages") <= MAX_REQUESTS, f"{server.count('pages')} requests for 250 records"

        # every record is still inside the next run's overlap: run 2 walks the whole listing again
        for second, index in enumerate((149, 239)):
            stamp(site_pages[index], CLOCK - dt.timedelta(minutes=30) + dt.timedelta(seconds=second))
        server.requests.clear()
        assert loaded(lake.run(endpoints=["pages"])) == 2, "an edit made between the runs was not loaded"
        versions = lake.versions("pages")
        assert {i for i, v in versions.items() if len(v) == 2} == {150, 240}
        assert len(lake.rows("pages")) == 252
        assert server.count("pages") <= MAX_REQUESTS, f"{server.count('pages')} requests for 250 records"


def test_a_modified_not_in_wordpress_format_is_rejected_and_wedges_nothing(tmp_path: pathlib.Path):
    site_pages = pages(20)
    media = [record("media", 100 + i, CLOCK - dt.timedelta(hours=2, minutes=i)) for i in range(1, 11)]
    good = {"pages": max(r["modified"] for r in site_pages), "media": max(r["modified"] for r in media)}
    for id, value in {21: "2024-01-01T10:00:00Z", 22: "9999-99-99 garbage", 23: 12345}.items():
        site_pages.append({**record("pages", id, CLOCK - dt.timedelta(hours=1)), "modified": value})
    # an offset WordPress never prints, sorting after every good `modified` of the collection
    media.append({**record("media", 111, CLOCK - dt.timedelta(hours=1)), "modified": f"{good['media']}+00:00"})
    with HostileServer({"pages": site_pages, "media": media}) as server:
        lake = Lake(tmp_path, server)
        lake.run()
        rejected = lake.rows("rejected")
        assert {(r["endpoint"], r["id"]) for r in rejected} == {
            ("pages", 21),
            ("pages", 22),
            ("pages", 23),
            ("media", 111),
        }
        assert all("modified" in r["error"] for r in rejected), [r["error"] for r in rejected]
        assert sorted(r["id"] for r in lake.rows("pages")) == list(range(1, 21))
        assert sorted(r["id"] for r in lake.rows("media")) == list(range(101, 111))
        assert (cursor(lake, "pages"), cursor(lake, "media")) == (good["pages"], good["media"])

        page = stamp(site_pages[2], CLOCK - dt.timedelta(minutes=10))
        medium = stamp(media[4], CLOCK - dt.timedelta(minutes=9))
        result = cli(*lake_args(lake), cwd=tmp_path, env=CLI_ENV)
        assert result.returncode == 0, result.stderr
        assert page["modified_gmt"] in lake.versions("pages")[3] and len(lake.rows("pages")) == 21
        assert medium["modified_gmt"] in lake.versions("media")[105] and len(lake.rows("media")) == 11
        assert (cursor(lake, "pages"), cursor(lake, "media")) == (page["modified"], medium["modified"])


def test_an_id_beyond_64_bits_or_a_boolean_is_rejected_and_a_lone_surrogate_is_kept(tmp_path: pathlib.Path):
    site_pages = pages(20)
    moment = CLOCK - dt.timedelta(hours=1)
    site_pages += [{**record("pages", 21, moment), "id": 2**70}, {**record("pages", 22, moment), "id": True}]
    surrogate = {**record("pages", 23, moment), "title": {"rendered": "half a pair: \ud800"}}
    with HostileServer({"pages": site_pages + [surrogate], "media": []}) as server:
        lake = Lake(tmp_path, server)
        lake.run()
        rejected = lake.rows("rejected")
        assert [(r["id"], "id" in r["error"]) for r in rejected] == [(None, True), (None, True)], rejected
        assert {json.loads(r["payload"])["id"] for r in rejected} == {2**70, True}
        assert sorted(r["id"] for r in lake.rows("pages")) == list(range(1, 21)) + [23]
        kept = next(r for r in lake.rows("pages") if r["id"] == 23)
        assert json.loads(kept["payload"])["title"]["rendered"] == "half a pair: \ud800", "the payload is exact"
        assert kept["dl_hash"] == hashlib.sha256(kept["payload"].encode("utf-8")).hexdigest()
        assert cursor(lake) == max(r["modified"] for r in site_pages[:20] + [surrogate])
        assert verify_lake(lake.settings()).clean, "an empty collection (media) is clean, the surrogate's hash holds"


def test_a_trickling_server_times_out_within_total_timeout_and_the_cursor_stays(tmp_path: pathlib.Path):
    site_pages = pages(30)
    with HostileServer({"pages": site_pages}) as server:
        lake = Lake(tmp_path, server)
        lake.run(endpoints=["pages"])
        before = cursor(lake)
        stamp(site_pages[0], CLOCK - dt.timedelta(minutes=10))
        server.trickle = 2.0  # one byte every 2 s
        http = {"total_timeout": 3, "max_attempts": 2, "backoff_initial": 0.1, "backoff_max": 0.1}
        started = time.monotonic()
        with pytest.raises(BulletinError) as failed:
            lake.run(endpoints=["pages"], http=http)
        elapsed = time.monotonic() - started
        message = str(failed.value)
        assert failed.value.exit_code == 1 and "\n" not in message
        assert re.search(r"time-?out|timed out|took longer", message, re.I), message
        assert elapsed < 20, f"the run took {elapsed:.0f}s against a 3 s total_timeout"
        assert cursor(lake) == before and len(lake.rows("pages")) == 30
