"""The lake's table of an endpoint: dlt names every table through its schema's naming convention
(snake_case unless configured otherwise), so the collection `menu-items` is written to `menu_items/`.

The endpoint's own name stays what the user sees, the REST path, the dlt state's key (dlt keeps
resource names as given) and the `endpoint` column of `deleted`; only folders use the table name.
"""

from __future__ import annotations

import dlt

SOURCE_NAME = "bulletin"  # the dlt source, its schema and its config section (`sources.bulletin`)


def table_name(endpoint: str) -> str:
    """The table (the lake's folder) dlt writes `endpoint`'s records to, e.g. `menu-items` -> `menu_items`."""
    # a schema named as our source's resolves the naming convention the source's schema is given
    return dlt.Schema(SOURCE_NAME).naming.normalize_table_identifier(endpoint)
