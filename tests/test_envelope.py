"""The Parquet contract of a page: exact columns, hashes, determinism, rejected records, dedup.

Pages reach `Envelope.wrap` as they do in a run: the body digested (`digest_page`, what a digest
worker does) into the page's arrow table (`page_table`, what rest_api yields for the page).
"""

import datetime as dt
import hashlib
import json

import orjson
import pytest

from bulletin_pipeline.digest import DigestSpec, digest_page, page_table, serialize
from bulletin_pipeline.envelope import DATA_SCHEMA, REJECTED_SCHEMA, Envelope
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
    """An Envelope for one endpoint, fed pages the way the pipeline feeds it."""

    def __init__(self, endpoint="pages", ledger=None, incremental=True):
        self.spec = DigestSpec(endpoint, incremental)
        self.env = Envelope(endpoint, NOW, ledger or WrittenVersions(None, 0))
        self.stats = self.env.stats

    def wrap(self, records=None, body=None):
        body = body if body is not None else json.dumps(records).encode()
        return self.env.wrap(page_table(digest_page(body, self.spec, NOW)))


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


def test_big_integers_survive_parsing_and_serialising():
    body = orjson.dumps([{"id": 1}]).replace(b"}", b',"big":12345678901234567890123}')
    data, _ = PageFeeder("categories", incremental=False).wrap(body=body)
    assert json.loads(data.column("payload")[0].as_py())["big"] == 12345678901234567890123
    assert serialize({"big": 2**70, "s": "é"}) == '{"big":1180591620717411303424,"s":"é"}'.encode()


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


def test_a_broken_body_is_reported_not_digested():
    with pytest.raises(ValueError):
        digest_page(b'[{"id": 1,', DigestSpec("pages", True), NOW)
    with pytest.raises(ValueError, match="not a list"):
        digest_page(b'{"code": "x"}', DigestSpec("pages", True), NOW)


def test_only_a_trustworthy_modified_reaches_the_cursor_column():
    """dlt's incremental reads `modified`: a future-dated record loads but leaves it empty; a record
    whose `modified` is not WordPress's format is rejected and leaves it empty too."""
    records = [
        page(1),
        page(2, modified="2099-01-01T10:00:00"),
        page(3, modified="2024-01-01T10:00:00Z"),
        page(4, modified="9999-99-99 garbage"),
        {**page(5), "modified": 12345},
    ]
    table = page_table(digest_page(json.dumps(records).encode(), DigestSpec("pages", True), NOW))
    assert table.column("modified").to_pylist() == ["2024-01-01T10:00:00", None, None, None, None]
    errors = table.column("error").to_pylist()
    assert errors[0] is None and errors[1] is None
    assert all("modified" in e for e in errors[2:])
    assert "12345 is not a WordPress datetime" in errors[4]
    data, rejected = PageFeeder().wrap(records)
    assert data.column("id").to_pylist() == [1, 2]
    assert rejected.column("id").to_pylist() == [3, 4, 5]
