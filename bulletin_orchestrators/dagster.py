"""Dagster: the bulletin source as assets through dagster-dlt, one group per site, a daily schedule
at 10:00 UTC and a sensor on the change probe.

`dagster dev -m bulletin_orchestrators.dagster` loads `defs`; `bulletin_definitions(sites=...)`
builds the same for code of your own. Each site is one `@dlt_assets` op (one asset per endpoint,
keyed `bulletin/{endpoint}`, or `bulletin/{site}/{endpoint}` with `[[sources.bulletin.sites]]`):
a run loads every site in its own op, so a failing site fails alone.
"""

import dataclasses
from typing import Any, Dict, Iterator, List, Optional, Sequence

import dagster as dg
import dlt
import pyarrow.compute as pc
import pyarrow.parquet as pq
from dagster_dlt import DagsterDltResource, DagsterDltTranslator, dlt_assets
from dagster_dlt.translator import DltResourceTranslatorData

from bulletin_pipeline import bulletin_destination, bulletin_source
from bulletin_pipeline.changes import probe_site
from bulletin_pipeline.destination import DATASET_NAME
from bulletin_pipeline.envelope import REJECTED_TABLE
from bulletin_pipeline.errors import BulletinError
from bulletin_pipeline.pipeline import stored_cursor
from bulletin_pipeline.settings import DEFAULT_PIPELINE_NAME
from bulletin_pipeline.sites import Site, load_sites
from bulletin_pipeline.source import envelope_resource_name
from bulletin_pipeline.tables import table_name

ASSET_PREFIX = "bulletin"
JOB_NAME = "bulletin_load"
DAILY_CRON = "0 10 * * *"
SENSOR_INTERVAL_SECONDS = 3600


@dataclasses.dataclass(frozen=True)
class SiteAssets:
    """Where a site's assets live in Dagster: its group and asset key prefix."""

    site: Site
    group: str
    prefix: List[str]

    def key(self, endpoint: str) -> dg.AssetKey:
        return dg.AssetKey([*self.prefix, endpoint])


def site_layout(sites: Optional[Sequence[Site]]) -> List[SiteAssets]:
    """Configured sites (or the single `[sources.bulletin]` site) with their groups and keys."""
    if not sites:
        return [SiteAssets(Site(ASSET_PREFIX, {"pipeline_name": DEFAULT_PIPELINE_NAME}), ASSET_PREFIX, [ASSET_PREFIX])]
    return [SiteAssets(site, site.name, [ASSET_PREFIX, site.name]) for site in sites]


@dataclasses.dataclass
class BulletinTranslator(DagsterDltTranslator):
    """One asset per endpoint, named after its table; the rest_api resource that feeds it is no
    asset of its own: it is read inside the same op and lands nowhere but through the envelope."""

    layout: Optional[SiteAssets] = None

    def get_asset_spec(self, data: DltResourceTranslatorData) -> dg.AssetSpec:
        assert self.layout is not None
        spec = super().get_asset_spec(data)
        endpoint = endpoint_of(data.resource.name)
        return spec.replace_attributes(
            key=self.layout.key(endpoint),
            deps=[],
            group_name=self.layout.group,
            description=f"WordPress `{endpoint}` of {self.layout.site.name}: the `{table_name(endpoint)}` table of the "
            "lake (id, dl_inserted_at, payload, dl_hash), loaded incrementally on `modified`",
            kinds={"dlt", "parquet"},
        )


def endpoint_of(resource_name: str) -> str:
    suffix = envelope_resource_name("")
    return resource_name[: -len(suffix)] if resource_name.endswith(suffix) else resource_name


def site_assets(layout: SiteAssets) -> dg.AssetsDefinition:
    settings = layout.site.settings()
    pipeline = dlt.pipeline(
        pipeline_name=settings.pipeline_name,
        destination=bulletin_destination(bucket_url=settings.bucket_url),
        dataset_name=DATASET_NAME,
        pipelines_dir=settings.pipelines_dir,  # type: ignore[arg-type]
    )

    @dlt_assets(
        dlt_source=bulletin_source(**layout.site.overrides),
        dlt_pipeline=pipeline,
        name=f"{layout.group}_load",
        dagster_dlt_translator=BulletinTranslator(layout=layout),
        pool=settings.pipeline_name,  # `dagster instance concurrency set <pool> 1`: one run per site at a time
    )
    def load(context: dg.AssetExecutionContext, dlt: DagsterDltResource) -> Iterator[Any]:
        for result in dlt.run(context=context, loader_file_format="parquet"):
            endpoint = result.asset_key.path[-1] if result.asset_key else ""
            # dagster-dlt's `jobs` look for a table named after the resource (`pages_envelope`): always empty
            metadata = {k: v for k, v in (result.metadata or {}).items() if k != "jobs"}
            metadata.update(load_metadata(pipeline, endpoint))
            yield dg.MaterializeResult(asset_key=result.asset_key, metadata=metadata)

    return load


def load_metadata(pipeline: dlt.Pipeline, endpoint: str) -> Dict[str, Any]:
    """Rows written to the endpoint's table, its files, records it rejected, and its cursor after the run."""
    trace = pipeline.last_trace
    rows = trace.last_normalize_info.row_counts if trace and trace.last_normalize_info else {}
    table = table_name(endpoint)  # rows and files are counted per table (menu-items: menu_items)
    columns = pipeline.default_schema.get_table_columns(table) if table in pipeline.default_schema.tables else {}
    files = completed_files(pipeline)
    rejected = [pq.read_table(path, columns=["endpoint"])["endpoint"] for path in files.get(REJECTED_TABLE, [])]
    return {
        "rows_loaded": dg.MetadataValue.int(int(rows.get(table, 0))),
        "files": dg.MetadataValue.int(len(files.get(table, []))),
        "rejected": dg.MetadataValue.int(
            sum(int(pc.sum(pc.equal(column, endpoint)).as_py() or 0) for column in rejected)
        ),
        "cursor": dg.MetadataValue.text(stored_cursor(pipeline, endpoint) or "-"),
        "dagster/column_schema": dg.TableSchema(
            columns=[dg.TableColumn(name, str(column.get("data_type", ""))) for name, column in columns.items()]
        ),
    }


def completed_files(pipeline: dlt.Pipeline) -> Dict[str, List[str]]:
    """Table -> the files the last load wrote (the local copies in its load package)."""
    info = pipeline.last_trace.last_load_info if pipeline.last_trace else None
    files: Dict[str, List[str]] = {}
    for package in info.load_packages if info else []:
        for job in package.jobs.get("completed_jobs", []):
            files.setdefault(job.job_file_info.table_name, []).append(job.file_path)
    return files


def changes_sensor(layouts: Sequence[SiteAssets], job: Any, interval: int) -> dg.SensorDefinition:
    @dg.sensor(name="bulletin_changes", job=job, minimum_interval_seconds=interval)
    def bulletin_changes(context: dg.SensorEvaluationContext) -> Any:
        """One probe request per endpoint of every site; a run only for the endpoints that changed."""
        requests: List[dg.RunRequest] = []
        quiet: List[str] = []
        for layout in layouts:
            try:
                results = probe_site(layout.site.settings())
            except BulletinError as exc:  # one site that cannot be probed must not hide the others
                context.log.warning(f"{layout.site.name}: {exc}")
                continue
            changed = [endpoint for endpoint, result in results.items() if result.changed]
            quiet += [f"{layout.site.name}/{e}: {r.reason}" for e, r in results.items() if not r.changed]
            if changed:
                requests.append(
                    dg.RunRequest(
                        # the same unwritten versions seen again (their run still on its way) launch nothing twice
                        run_key=f"{layout.site.name}: " + "; ".join(f"{e} {results[e].reason}" for e in changed),
                        asset_selection=[layout.key(e) for e in changed],
                        tags={"bulletin/site": layout.site.name},
                    )
                )
        if not requests:
            return dg.SkipReason("; ".join(quiet) or "no site could be probed")
        return requests

    return bulletin_changes


def bulletin_definitions(
    sites: Optional[Sequence[Site]] = None, sensor_interval_seconds: int = SENSOR_INTERVAL_SECONDS
) -> dg.Definitions:
    """Assets, job, schedule and sensor for `sites` (default: `[[sources.bulletin.sites]]`, or the
    single site of `[sources.bulletin]` when none is configured)."""
    layouts = site_layout(load_sites() if sites is None else sites)
    assets = [site_assets(layout) for layout in layouts]
    job = dg.define_asset_job(JOB_NAME, selection=dg.AssetSelection.groups(*(layout.group for layout in layouts)))
    daily = dg.ScheduleDefinition(name="bulletin_daily", job=job, cron_schedule=DAILY_CRON, execution_timezone="UTC")
    return dg.Definitions(
        assets=assets,
        jobs=[job],
        schedules=[daily],
        sensors=[changes_sensor(layouts, job, sensor_interval_seconds)],
        resources={"dlt": DagsterDltResource()},
    )


@dg.definitions
def defs() -> dg.Definitions:
    """What `dagster dev -m bulletin_orchestrators.dagster` loads (config is read then, not on import)."""
    return bulletin_definitions()


__all__ = ["BulletinTranslator", "bulletin_definitions", "defs", "load_metadata"]
