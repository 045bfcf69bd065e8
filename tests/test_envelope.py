"""The Parquet contract of a page: exact columns, hashes, determinism, rejected records, batches.

Pages go the way they go in a run: `digest_page` (what a digest worker does) -> light rows tagged
with their page (`DigestedPages`) -> `Envelope.wrap`, with the end-of-listing row that makes the
envelope hand over its last batch.
"""

import datetime as dt
import hashlib
import json

import orjson
import pytest

from bulletin_pipeline.digest import digest_page, loads
from bulletin_pipeline.envelope import DATA_SCHEMA, END_OF_LISTING, REJECTED_SCHEMA, DigestedPages, Envelope
from bulletin_pipeline.schemas import Media, Page, WordPressObject, model_for
from bulletin_pipeline.window import WrittenVersions

NOW = dt.datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=dt.UTC)


def page(record_id: int, modified: str = "2024-01-01T10:00:00", **extra):
    record = {
        "id": record_id,
        "date": "2024-01-01T10:00:00",
        "date_gmt": "2024-01-01T15:00:00",
        "guid": {"rendered": f"https://x.edu/?page_id={record_id}"},
        "modified": modified,
        "modified_gmt": modified.replace("T10", "T15"),
        "slug": f"p-{record_id}",
        "status": "publish",
        "type": "page",
        "link": f"https://x.edu/p-{record_id}/",
        "title": {"rendered": "Écologie 中文 😀"},
        "content": {"rendered": "<p>a/b \u00e9</p>", "protected": False},
        "excerpt": {"rendered": "", "protected": False},
        "author": 1,
        "featured_media": 0,
        "parent": 0,
        "menu_order": 0,
        "comment_status": "closed",
        "ping_status": "closed",
        "template": "",
        "meta": [],
        "acf": {"credits": 3.10, "big": 12345678901234567890123},
        "_links": {"self": [{"href": "https://x.edu/wp-json/wp/v2/pages/1"}]},
    }
    record.update(extra)
    return record


class PageFeeder:
    """An Envelope for one endpoint, fed the way the pipeline feeds it."""

    def __init__(self, endpoint="pages", ledger=None, batch_rows=1000, incremental=True):
        self.endpoint = endpoint
        self.incremental = incremental
        self.pages = DigestedPages()
        self.env = Envelope(endpoint, NOW, ledger or WrittenVersions(None, 0), self.pages, batch_rows=batch_rows)
        self.stats = self.env.stats

    def rows(self, records=None, body=None):
        body = body if body is not None else json.dumps(records).encode()
        return self.pages.tag(self.endpoint, digest_page(body, self.endpoint, self.incremental))

    def wrap(self, records=None, body=None, last=True):
        rows = self.rows(records, body)
        if last:
            rows.append({"id": None, END_OF_LISTING: True})
        return self.env.wrap(rows)


def envelope(ledger=None):
    return PageFeeder(ledger=ledger)


def test_data_table_has_exactly_the_contract_columns_and_hashes_match():
    data, rejected = envelope().wrap([page(1), page(2)])
    assert rejected is None
    assert data.schema == DATA_SCHEMA
    assert data.column_names == ["id", "dl_inserted_at", "payload", "dl_hash"]
    rows = data.to_pylist()
    assert [r["id"] for r in rows] == [1, 2]
    assert {r["dl_inserted_at"] for r in rows} == {NOW}
    for row in rows:
        assert row["dl_hash"] == hashlib.sha256(row["payload"].encode("utf-8")).hexdigest()


def test_payload_keeps_every_field_in_server_order():
    record = page(7)
    data, _ = envelope().wrap([record])
    payload = data.to_pylist()[0]["payload"]
    assert list(orjson.loads(payload)) == list(record)  # same keys, same order
    assert orjson.loads(payload)["acf"]["credits"] == 3.10
    assert "Écologie 中文 😀" in payload  # UTF-8, not \\u escapes


def test_serialisation_is_deterministic_across_parses_of_the_same_json():
    """WordPress escapes slashes and non-ASCII; what matters is the same JSON -> same bytes."""
    wire = json.dumps([page(3)], ensure_ascii=True).replace("/", "\\/").encode()  # PHP's wp_json_encode
    first, _ = envelope().wrap(body=wire)
    second, _ = envelope().wrap(body=wire)
    assert first.column("payload").to_pylist() == second.column("payload").to_pylist()
    assert first.column("dl_hash").to_pylist() == second.column("dl_hash").to_pylist()


def test_big_integers_survive_parsing():
    body = orjson.dumps([{"id": 1}]).replace(b"}", b',"big":12345678901234567890123}')
    assert loads(body)[0]["big"] == 12345678901234567890123


def test_invalid_records_go_to_rejected_with_the_error_and_the_rest_load():
    bad_type = page(2, parent="not-a-number")
    no_modified = page(3)
    del no_modified["modified"]
    not_an_object = "surprise"
    data, rejected = envelope().wrap([page(1), bad_type, no_modified, not_an_object, page(4)])
    assert data.column("id").to_pylist() == [1, 4]
    assert rejected.schema == REJECTED_SCHEMA
    rows = rejected.to_pylist()
    assert [r["id"] for r in rows] == [2, 3, None]
    assert "parent" in rows[0]["error"] and "modified" in rows[1]["error"]
    assert rows[0]["endpoint"] == "pages"
    assert orjson.loads(rows[0]["payload"])["parent"] == "not-a-number"
    assert orjson.loads(rows[2]["payload"]) == "surprise"


def test_already_written_versions_are_skipped_new_versions_are_not():
    ledger = WrittenVersions({}, 10**9)
    env = envelope(ledger=ledger)
    env.wrap([page(1), page(2)])
    data, _ = env.wrap([page(1), page(2, modified="2024-01-02T10:00:00")])
    assert data.column("id").to_pylist() == [2]
    assert env.stats.duplicates == 1


def test_models_per_collection_and_generic_fallback():
    assert model_for("pages") is Page and model_for("media") is Media
    assert model_for("courses").__name__ == "WordPressPost"
    assert model_for("categories", incremental=False) is WordPressObject
    # a category has no `modified`: the generic object model only needs an id
    data, rejected = PageFeeder("categories", incremental=False).wrap([{"id": 5, "name": "Biology", "count": 3}])
    assert rejected is None and data.num_rows == 1


def test_pages_are_handed_over_in_batches_and_the_last_one_at_the_end_of_the_listing():
    feeder = PageFeeder(batch_rows=5)
    assert feeder.wrap([page(1), page(2)], last=False) == (None, None)
    assert feeder.env.pending == 2
    data, _ = feeder.wrap([page(3), page(4), page(5)], last=False)
    assert data.column("id").to_pylist() == [1, 2, 3, 4, 5]  # a full batch leaves at once
    assert feeder.wrap([page(6)], last=False) == (None, None)
    data, _ = feeder.wrap([], last=True)  # the end-of-listing row alone flushes the rest
    assert data.column("id").to_pylist() == [6]
    assert feeder.env.pending == 0 and feeder.stats.loaded == 6


def test_rows_dropped_by_the_incremental_are_not_written_and_their_pages_are_freed():
    feeder = PageFeeder()
    first = feeder.rows([page(1), page(2), page(3)])
    skipped = feeder.rows([page(4)])  # every row filtered out upstream: never reaches wrap
    last = feeder.rows([page(5)])
    data, _ = feeder.env.wrap([first[0], first[2]])
    assert data is None and feeder.env.pending == 2
    data, _ = feeder.env.wrap(last + [{"id": None, END_OF_LISTING: True}])
    assert data.column("id").to_pylist() == [1, 3, 5]
    assert skipped and not feeder.pages._pages["pages"]  # taking page 3 forgot page 2


def test_a_row_without_its_page_fails_loudly_instead_of_being_dropped():
    with pytest.raises(RuntimeError, match="without its digest"):
        envelope().env.wrap([page(1)])


def test_a_broken_body_is_reported_not_digested():
    digested = digest_page(b'[{"id": 1,', "pages")
    assert digested.table is None and "invalid JSON" in (digested.parse_error or "")
    digested = digest_page(b'{"code": "x"}', "pages")
    assert "not a list" in (digested.parse_error or "")
