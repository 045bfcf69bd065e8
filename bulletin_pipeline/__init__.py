"""bulletin-pipeline: incremental, lossless loads of a WordPress REST API into a Parquet lake, on dlt.

With any dlt runner (dagster-dlt, dlt's Airflow helper, a script):

    import dlt
    from bulletin_pipeline import bulletin_destination, bulletin_source

    pipeline = dlt.pipeline("bulletin_pipeline", destination=bulletin_destination(), dataset_name="bulletin_raw")
    pipeline.run(bulletin_source(base_url="https://site/wp-json/wp/v2/"))

Or our CLI's run (lock before state, --if-changed, per-collection isolation, summary):

    from bulletin_pipeline import resolve_settings, run_pipeline
    summary = run_pipeline(resolve_settings(base_url="https://site/wp-json/wp/v2/"))
"""

from typing import Any

__all__ = [
    "bulletin_source",
    "bulletin_destination",
    "run_pipeline",
    "resolve_settings",
    "BulletinSettings",
    "RunSummary",
    "PIPELINE_NAME",
    "DATASET_NAME",
]

_EXPORTS = {
    "bulletin_source": ".source",
    "bulletin_destination": ".destination",
    "DATASET_NAME": ".destination",
    "run_pipeline": ".pipeline",
    "RunSummary": ".pipeline",
    "PIPELINE_NAME": ".pipeline",
    "resolve_settings": ".settings",
    "BulletinSettings": ".settings",
}


def __getattr__(name: str) -> Any:
    # lazy: `import bulletin_pipeline.demo` (the demo site) must not pay for importing dlt
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(name)
