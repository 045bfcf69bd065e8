"""The `--if-changed` probe without a run, for an orchestrator's sensor: one request per endpoint.

The cursors and written versions come from the lake's newest state, restored into a throwaway
working folder: a probe never touches the lake, the lock or the working folder of a run.
"""

from __future__ import annotations

import copy
import tempfile
from typing import Dict

from .extraction import check_site
from .pipeline import make_pipeline, restore_state, stored_cursor, written_versions
from .probe import ProbeResult, probe_endpoint
from .settings import BulletinSettings
from .transport import WordPressSession
from .window import plan_window


def probe_site(settings: BulletinSettings) -> Dict[str, ProbeResult]:
    """Endpoint -> whether it has versions the lake does not hold yet, for each of `settings.endpoints`."""
    with tempfile.TemporaryDirectory(prefix="bulletin-probe-") as folder:
        probing = copy.copy(settings)
        probing.pipelines_dir = folder
        pipeline = make_pipeline(probing)
        restore_state(pipeline)
        check_site(pipeline, settings)
        session = WordPressSession(settings.http)
        try:
            return {
                endpoint: probe_endpoint(
                    session.adapter,
                    settings,
                    endpoint,
                    plan_window(
                        endpoint, settings, stored_cursor(pipeline, endpoint), settings.collection(endpoint).incremental
                    ),
                    written_versions(pipeline, endpoint),
                )
                for endpoint in settings.endpoints
            }
        finally:
            session.close()
