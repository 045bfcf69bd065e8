"""A fast, faithful simulator of the WordPress 6.1 REST API (``/wp-json/wp/v2/``).

Used by the pipeline's ``--demo`` mode, by the tests (real HTTP on loopback, with a ``Site`` the
test can edit while the pipeline runs) and by the benchmark. It reproduces the behaviour a
loader must cope with — see ``query.py`` for the paging/filtering rules and ``records.py`` for
the record shapes.

    site = Site()
    seed_site(site, pages=2000, media=1000)
    with SimulatorServer(site) as srv:
        httpx.get(srv.base_url + "pages", params={"per_page": 100})
"""

from .controls import Fault, LoggedRequest, ServerStats
from .records import MEDIA, PAGES, POSTS, CollectionSpec
from .seed import seed_site
from .server import SimulatorServer
from .site import Site

__all__ = [
    "MEDIA",
    "PAGES",
    "POSTS",
    "CollectionSpec",
    "Fault",
    "LoggedRequest",
    "ServerStats",
    "SimulatorServer",
    "Site",
    "seed_site",
]
