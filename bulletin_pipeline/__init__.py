"""bulletin-pipeline: incremental, lossless loads of a WordPress REST API into a Parquet lake, on dlt.

Library use (from any orchestrator):

    from bulletin_pipeline import resolve_settings, run_pipeline
    summary = run_pipeline(resolve_settings(base_url="https://site/wp-json/wp/v2/"))
"""

from .pipeline import RunSummary, run_pipeline
from .settings import BulletinSettings, resolve_settings
from .source import bulletin_source

__all__ = ["bulletin_source", "run_pipeline", "resolve_settings", "BulletinSettings", "RunSummary"]
