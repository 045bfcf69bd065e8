"""Baseline precedence and the overlap ledger (pure logic; the HTTP behaviour is in test_pipeline)."""

import pytest

from bulletin_pipeline.continuation import Continuation
from bulletin_pipeline.errors import ConfigError
from bulletin_pipeline.settings import resolve_settings
from bulletin_pipeline.window import WrittenVersions, incremental_config, plan_window, run_memory

BASE = "http://127.0.0.1:1/wp-json/wp/v2/"


def settings(**kw):
    return resolve_settings(base_url=BASE, **kw)


@pytest.mark.parametrize(
    "options, stored, mode, start, stateful",
    [
        ({}, None, "initial", "2000-01-01T00:00:00", True),
        ({}, "2024-03-10T12:00:00", "incremental", "2024-03-10T10:00:00", True),
        ({"last_modified_date": "2024-01-15"}, "2024-03-10T12:00:00", "backfill", "2024-01-14T23:59:59", False),
        ({"last_modified_date": "2024-01-15"}, None, "backfill", "2024-01-14T23:59:59", False),
        ({"full_refresh": True}, "2024-03-10T12:00:00", "full_refresh", None, True),
        ({"full_refresh": True}, None, "full_refresh", None, True),
        (
            {"full_refresh": True, "last_modified_date": "2024-01-15"},
            "2024-03-10T12:00:00",
            "full_refresh",
            None,
            True,
        ),
        ({"default_baseline_datetime": "2020-05-01T00:00:00"}, None, "initial", "2020-05-01T00:00:00", True),
    ],
)
def test_baseline_precedence(options, stored, mode, start, stateful):
    plan = plan_window("pages", settings(**options), stored)
    assert (plan.mode, plan.start, plan.stateful) == (mode, start, stateful)


def test_backfill_is_stateless_in_dlt_terms():
    s = settings(last_modified_date="2024-01-15")
    config = incremental_config(plan_window("pages", s, "2024-03-10T12:00:00"), s)
    assert config["end_value"] and "lag" not in config


def test_incremental_uses_dlt_lag():
    s = settings()
    config = incremental_config(plan_window("pages", s, "2024-03-10T12:00:00"), s)
    assert config["lag"] == 7200 and config["cursor_path"] == "modified"


def test_the_lakes_cursor_comes_after_a_stored_one_and_before_the_baseline():
    lake = Continuation("2024-03-10T12:00:00", {"7": "2024-03-10T16:00:00"})
    s = settings()
    plan = plan_window("pages", s, None, continued=lake)
    assert (plan.mode, plan.start, plan.stateful) == ("continuation", "2024-03-10T10:00:00", True)
    assert plan.describe() == "modified after 2024-03-10T10:00:00 (continuing the lake from 2024-03-10T12:00:00)"
    # dlt has no state for it: the start is its initial value, already lagged
    assert incremental_config(plan, s)["initial_value"] == "2024-03-10T10:00:00"
    assert plan_window("pages", s, "2024-05-01T00:00:00", continued=lake).mode == "incremental"
    assert plan_window("pages", settings(full_refresh=True), None, continued=lake).mode == "full_refresh"
    assert plan_window("pages", settings(last_modified_date="2024-01-15"), None, continued=lake).mode == "backfill"


def test_non_incremental_collection_is_a_snapshot():
    plan = plan_window("categories", settings(), None, incremental=False)
    assert plan.mode == "snapshot" and plan.start is None and not plan.stateful


def test_ledger_prunes_versions_older_than_the_horizon():
    state = {"written_versions": {"1": "2024-01-01T00:00:00", "2": "2024-01-03T00:00:00", "3": "2024-01-02T23:00:00"}}
    ledger = WrittenVersions(state, 3 * 3600)
    assert ledger.is_written(2, "2024-01-03T00:00:00") and ledger.is_written(3, "2024-01-02T23:00:00")
    assert not ledger.is_written(1, "2024-01-01T00:00:00")
    assert set(state["written_versions"]) == {"2", "3"}


@pytest.mark.parametrize(
    "options, message",
    [
        ({"last_modified_date": "2024-13-01"}, "YYYY-MM-DD"),
        ({"last_modified_date": "yesterday"}, "YYYY-MM-DD"),
        ({"load_time": "25:00"}, "HH:MM:SS"),
        ({"endpoints": ["pages", "Pages!"]}, "collection name"),
        ({"per_page": 101}, "between 3 and 100"),
        ({"compression": "rar"}, "compression"),
        # a layout without {load_id} made every run overwrite the last one's file (250 rows -> 1)
        ({"layout": "{table_name}/data.{ext}"}, "lacks {load_id}, {file_id}"),
        ({"layout": "{table_name}/{load_id}.{ext}"}, "lacks {file_id}"),
    ],
)
def test_bad_settings_fail_in_one_line(options, message):
    with pytest.raises(ConfigError) as err:
        settings(**options)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_missing_or_malformed_base_url():
    with pytest.raises(ConfigError, match="base_url is not set"):
        resolve_settings()
    with pytest.raises(ConfigError, match="not an http"):
        resolve_settings(base_url="example.edu/wp-json")


def test_env_config_and_flags_win(monkeypatch):
    monkeypatch.setenv("SOURCES__BULLETIN__BASE_URL", "http://from-env.example/wp-json/wp/v2/")
    monkeypatch.setenv("SOURCES__BULLETIN__HTTP__MAX_CONNECTIONS", "7")
    monkeypatch.setenv("SOURCES__BULLETIN__ENDPOINTS", '["posts"]')
    s = resolve_settings()
    assert s.base_url == "http://from-env.example/wp-json/wp/v2/"
    assert s.http.max_connections == 7 and s.endpoints == ["posts"]
    assert (
        resolve_settings(base_url="http://flag.example/wp-json/wp/v2").base_url == "http://flag.example/wp-json/wp/v2/"
    )


def test_ledger_state_stays_bounded_on_a_large_first_load():
    """A first load of a big site must not put every record into dlt state (memory, state size)."""
    import datetime as dt

    state: dict = {}
    ledger = WrittenVersions(state, 3600)
    start = dt.datetime(2020, 1, 1)
    for n in range(50_000):
        ledger.add(n, (start + dt.timedelta(minutes=n)).strftime("%Y-%m-%dT%H:%M:%S"))
    assert len(state["written_versions"]) < 10_000
    assert ledger.is_written(10, (start + dt.timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%S")), "run-local dedup"
    assert "49999" in state["written_versions"]


def test_the_run_local_dedup_keeps_only_the_records_a_re_read_can_reach():
    ledger = WrittenVersions(None, 0, recent=100)
    for n in range(1000):
        ledger.add(n, f"v{n}")
    assert ledger.is_written(999, "v999") and ledger.is_written(900, "v900")
    assert not ledger.is_written(899, "v899")  # beyond reach: forgotten, memory stays flat
    ledger.add(900, "v900")  # re-read: moves to the newest end, so it survives the next 99 adds
    for n in range(1000, 1099):
        ledger.add(n, f"v{n}")
    assert ledger.is_written(900, "v900") and not ledger.is_written(901, "v901")


def test_run_memory_covers_the_longest_re_read():
    s = settings(per_page=100, max_reread_attempts=5)
    # the paginator backs off 50, 100, 200, 400, 800 records: 1,550 at most
    assert run_memory(s) >= 4 * 1550
