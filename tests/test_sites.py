"""Many sites in one config (`[[sources.bulletin.sites]]`): `--site NAME` runs one of them with
its own pipeline, lake and lock, so a locked or failing site never stops another."""

from __future__ import annotations

import datetime as dt
import pathlib

from .conftest import Lake, assert_lake_has
from .test_cli import cli
from .test_lock import lock_record


def write_config(folder: pathlib.Path, text: str) -> None:
    (folder / ".dlt").mkdir(exist_ok=True)
    (folder / ".dlt" / "config.toml").write_text(text)


def two_sites(folder: pathlib.Path, base_url: str) -> None:
    write_config(
        folder,
        f"""
[sources.bulletin]
bucket_url = "{folder / "lake"}"

[[sources.bulletin.sites]]
name = "alpha"
base_url = "{base_url}"

[[sources.bulletin.sites]]
name = "beta"
base_url = "{base_url}"
endpoints = ["pages"]
""",
    )


def test_a_site_runs_alone_in_its_own_pipeline_and_lake_while_another_is_locked(tmp_path, server, site):
    two_sites(tmp_path, server.base_url)
    pipelines = tmp_path / "pipelines"
    alpha_lake = tmp_path / "lake" / "alpha" / "bulletin_raw"
    alpha_lake.mkdir(parents=True)
    (alpha_lake / "_bulletin_lock.json").write_bytes(lock_record(dt.datetime.now(dt.UTC) + dt.timedelta(minutes=30)))

    beta = cli("--site", "beta", "--pipelines-dir", str(pipelines), cwd=tmp_path)
    assert beta.returncode == 0, beta.stderr
    beta_lake = tmp_path / "lake" / "beta" / "bulletin_raw"
    assert sorted(p.name for p in beta_lake.iterdir() if not p.name.startswith("_")) == ["init", "pages"]
    assert (pipelines / "bulletin_pipeline__beta").is_dir() and not (pipelines / "bulletin_pipeline").exists()

    lake = Lake(tmp_path, server)
    lake.bucket = tmp_path / "lake" / "beta"
    assert_lake_has(lake, site, "pages")

    alpha = cli("--site", "alpha", "--pipelines-dir", str(pipelines), cwd=tmp_path)
    assert alpha.returncode == 1
    assert alpha.stderr.strip().startswith("error: the lake is locked by gone-runner")
    assert len(alpha.stderr.strip().splitlines()) == 1, alpha.stderr
    # no table, no state (dlt's `init` marks the dataset folder)
    assert {p.name for p in alpha_lake.iterdir()} <= {"_bulletin_lock.json", "init"}, "the locked site wrote nothing"


def test_site_config_errors_are_one_line(tmp_path, server):
    two_sites(tmp_path, server.base_url)
    unknown = cli("--site", "gamma", cwd=tmp_path)
    assert unknown.returncode == 2
    assert unknown.stderr.strip() == ("error: no site named 'gamma' in sources.bulletin.sites; configured: alpha, beta")

    write_config(tmp_path, '[[sources.bulletin.sites]]\nname = "alpha"\nbase_url = "http://a/"\nper_pgae = 5\n')
    typo = cli("--site", "alpha", cwd=tmp_path)
    assert typo.returncode == 2
    assert typo.stderr.strip() == (
        "error: sources.bulletin.sites[0] (alpha): unknown key(s) per_pgae; a site takes the keys of sources.bulletin"
    )
