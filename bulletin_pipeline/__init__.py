"""bulletin-pipeline: incremental, lossless loads of a WordPress REST API into a Parquet lake, on dlt.

Library use (from any orchestrator):

    from bulletin_pipeline import resolve_settings, run_pipeline
    summary = run_pipeline(resolve_settings(base_url="https://site/wp-json/wp/v2/"))
"""

from typing import Any

__all__ = ["bulletin_source", "run_pipeline", "resolve_settings", "BulletinSettings", "RunSummary"]

_EXPORTS = {
    "bulletin_source": ".source",
    "run_pipeline": ".pipeline",
    "RunSummary": ".pipeline",
    "resolve_settings": ".settings",
    "BulletinSettings": ".settings",
}


def __getattr__(name: str) -> Any:
    # lazy: `import bulletin_pipeline.demo` (the demo site) must not pay for importing dlt
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(name)
