"""Property: a run under concurrent edits, creations and deletions loses nothing.

Every record version published when a run starts (and still published when it ends) is, after
that run or the next quiet one, in the lake: that version or a newer one. Checked over many
seeded random scenarios: window sizes, concurrency, digest workers or none, and site changes
injected between requests.
Set LOSSLESS_SCENARIOS to run more (the default keeps the suite fast).
"""

from __future__ import annotations

import datetime as dt
import os
import random

import pytest

from tests.simulator import SimulatorServer, Site, seed_site

from .conftest import CLOCK, Lake

SCENARIOS = int(os.environ.get("LOSSLESS_SCENARIOS", "16"))


def perturb(site: Site, rng: random.Random, clock: list) -> None:
    """One random change, as editors make them while we read."""
    published = sorted(site.published_versions("pages"))
    every = site.ids("pages")
    if not published:
        return
    op = rng.choices(["edit", "create", "delete", "unpublish", "publish", "same_second"], [5, 2, 3, 1, 1, 2])[0]
    if op != "same_second":
        clock[0] += dt.timedelta(seconds=rng.randint(1, 3))
    when = clock[0]
    if op in ("edit", "same_second"):
        site.edit("pages", rng.choice(published), at=when, title=f"edit {rng.random():.6f}")
    elif op == "create":
        site.create("pages", at=when, title="created mid-run")
    elif op == "delete":
        site.delete("pages", rng.choice(published))
    elif op == "unpublish":
        site.set_status("pages", rng.choice(published), "draft", at=when)
    else:
        drafts = [i for i in every if i not in site.published_versions("pages")]
        if drafts:
            site.set_status("pages", rng.choice(drafts), "publish", at=when)


@pytest.mark.parametrize("seed", range(SCENARIOS))
def test_no_published_version_is_lost_under_concurrent_changes(seed: int, tmp_path):
    rng = random.Random(seed)
    site = Site(clock=lambda: CLOCK)
    pages = rng.randint(60, 220)
    tie = rng.choice([0, 40]) if pages >= 150 else 0
    seed_site(site, pages=pages, media=0, seed=seed, body_kb=0.2, tie_block=tie)
    clock = [CLOCK + dt.timedelta(hours=1)]
    change_rate = rng.choice([0.2, 0.5, 1.0])
    with SimulatorServer(site, shuffle_ties=True) as server:
        lake = Lake(tmp_path, server)
        options = dict(
            endpoints=["pages"],
            per_page=rng.choice([5, 7, 10, 25]),
            http={"max_connections": rng.choice([1, 3, 8])},
            max_reread_attempts=8,
            # half the scenarios digest their pages in a worker process, as large sites do
            digest_workers=rng.choice([0, 1]),
        )
        if rng.random() < 0.5:
            lake.run(**options)  # start from an incremental state half of the time

        def hook(collection: str, params: dict) -> None:
            if collection == "pages" and rng.random() < change_rate:
                perturb(site, rng, clock)

        at_start = site.published_versions("pages")
        server.before_request = hook
        lake.run(**options)
        server.before_request = None
        assert not server.hook_errors
        at_end = site.published_versions("pages")
        lake.run(**options)  # the next, quiet run
        held = lake.versions("pages")
        for record_id, version in at_start.items():
            if record_id not in at_end:
                continue  # deleted or unpublished meanwhile: nothing to require
            assert any(v >= version for v in held.get(record_id, ())), (
                f"seed {seed}: id {record_id} version {version} lost; lake has {held.get(record_id)}"
            )
        # and the lake now holds exactly what the site publishes, at least once
        for record_id, version in site.published_versions("pages").items():
            assert version in held.get(record_id, ()), f"seed {seed}: current version of {record_id} missing"
