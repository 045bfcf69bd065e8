"""Deletions as data and `reconcile` against a real WordPress: trash, unpublish, delete a media item,
restore. The test works on its own subtree (a parent page, its children and its attachments), through
`collections.*.params.parent`, as the session's site is shared."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from bulletin_pipeline.pipeline import make_pipeline, stored_cursor
from bulletin_pipeline.reconcile import reconcile

from ..conftest import Lake
from ..test_reconcile import current_site, tombstones

pytestmark = pytest.mark.integration

ONE_PIXEL_PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="


def create_attachment(wordpress: Any, parent: int, title: str) -> int:
    """wp_insert_attachment of a one-pixel PNG attached to `parent`; returns its id."""
    snippet = """
        $upload = wp_upload_dir();
        $file = $upload['path'] . '/reconcile-' . wp_generate_password(12, false) . '.png';
        file_put_contents($file, base64_decode($args['png'])) || bulletin_die("could not write $file");
        echo bulletin_check(wp_insert_attachment([
            'post_mime_type' => 'image/png', 'post_title' => $args['title'], 'post_status' => 'inherit',
            'post_author' => 1,
        ], $file, $args['parent'], true), 'wp_insert_attachment');
    """
    return int(wordpress.php(snippet, {"png": ONE_PIXEL_PNG, "title": title, "parent": parent}).strip())


def restore(wordpress: Any, post_id: int) -> None:
    """Out of the trash (WordPress restores to draft since 5.6), then published again."""
    wordpress.php("bulletin_check(wp_untrash_post($args['id']), 'wp_untrash_post');", {"id": post_id})
    wordpress.publish(post_id)


def served(wordpress: Any, collection: str, parent: int) -> dict:
    answer = wordpress.rest(collection, parent=parent, per_page=100, _fields="id,modified_gmt")
    assert answer.status_code == 200
    return {r["id"]: r["modified_gmt"] for r in answer.json}


def test_each_kind_of_removal_is_tombstoned_and_a_restored_page_is_live_again(lake: Lake, wordpress: Any):
    tag = uuid.uuid4().hex[:8]
    parent = wordpress.create_page(f"reconcile parent {tag}")
    trashed, unpublished, restored, kept = (
        wordpress.create_page(f"reconcile child {n} {tag}", content="<p>child</p>", parent=parent) for n in range(4)
    )
    deleted_media, kept_media = (create_attachment(wordpress, parent, f"reconcile media {n} {tag}") for n in range(2))
    scope = {"collections": {"pages": {"params": {"parent": parent}}, "media": {"params": {"parent": parent}}}}
    lake.run(**scope)
    assert {r["id"] for r in lake.rows("pages")} == {trashed, unpublished, restored, kept}
    assert {r["id"] for r in lake.rows("media")} == {deleted_media, kept_media}

    wordpress.trash(trashed)
    wordpress.unpublish(unpublished)
    wordpress.delete(deleted_media)
    wordpress.trash(restored)
    summary = lake.run(sweep_deletions=True, **scope)
    assert {e: d.tombstones for e, d in summary.deletions.items()} == {"pages": 3, "media": 1}
    removed = {("pages", trashed), ("pages", unpublished), ("pages", restored), ("media", deleted_media)}
    assert tombstones(lake) == removed

    restore(wordpress, restored)
    summary = lake.run(sweep_deletions=True, **scope)
    assert {e.endpoint: e.loaded for e in summary.endpoints}["pages"] == 1, "the restored page is loaded again"
    assert {e: d.tombstones for e, d in summary.deletions.items()} == {"pages": 0, "media": 0}
    assert len(lake.rows("deleted")) == len(removed), "a still-deleted id is not tombstoned twice"
    assert set(current_site(lake, "pages")) == {restored, kept}
    assert current_site(lake, "pages") == served(wordpress, "pages", parent)
    assert current_site(lake, "media") == served(wordpress, "media", parent) and kept_media in served(
        wordpress, "media", parent
    )

    report = reconcile(lake.settings(**scope))
    assert report.in_step, [e.describe(False) for e in report.endpoints]


def test_reconcile_repair_heals_a_lake_with_a_file_removed(lake: Lake, wordpress: Any):
    tag = uuid.uuid4().hex[:8]
    parent = wordpress.create_page(f"repair parent {tag}")
    kids = [wordpress.create_page(f"repair child {n} {tag}", parent=parent) for n in range(5)]
    scope = {"endpoints": ["pages"], "collections": {"pages": {"params": {"parent": parent}}}}
    lake.run(**scope)
    cursor = stored_cursor(make_pipeline(lake.settings(**scope)), "pages")
    for path in lake.files("pages"):
        path.unlink()

    report = reconcile(lake.settings(**scope))
    assert not report.in_step and report.endpoints[0].missing == sorted(kids)
    repaired = reconcile(lake.settings(**scope), repair=True)
    assert repaired.in_step and repaired.endpoints[0].loaded == len(kids)
    assert stored_cursor(make_pipeline(lake.settings(**scope)), "pages") == cursor
    assert reconcile(lake.settings(**scope)).in_step
    assert current_site(lake, "pages") == served(wordpress, "pages", parent)
