"""Integration tier: a real WordPress (Debian's package) on 127.0.0.1.

The session fixture ``wordpress`` runs, from ``scripts/wordpress/``:
``install.sh`` (idempotent apt install), ``stop.sh`` (clean slate), ``start.sh``
(fresh database, PHP server) and ``seed.sh``; it runs ``stop.sh`` at session end.
If the site cannot be installed or started the tests FAIL with the script's
output; they are never skipped.

Every test under this folder is marked ``integration``.

The site is shared by the whole session. Tests that change it should create
their own pages (``create_page``) rather than edit the seeded special pages
listed in ``wordpress.seed["ids"]``/``["tie"]``/``["dst"]``, and should compare
the REST API with the database *now* (``db``) rather than with seed-time counts.

Env: WP_STATE_DIR, WP_PORT (as the scripts), WP_SEED_PAGES/WP_SEED_MEDIA/WP_SEED_TIE,
WP_KEEP_RUNNING=1 to leave the site up after the session (stop with stop.sh).
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Lake

INTEGRATION_DIR = Path(__file__).resolve().parent
SCRIPTS = INTEGRATION_DIR.parents[1] / "scripts" / "wordpress"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "integration: needs a real WordPress started by scripts/wordpress (slow, needs root/apt)",
    )


@pytest.hookimpl(tryfirst=True)  # before -m deselection runs
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if INTEGRATION_DIR in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.integration)


class WordPressError(RuntimeError):
    """A PHP snippet or script failed inside the test WordPress."""


@dataclass
class RestResponse:
    """One REST GET: status, parsed JSON body and headers."""

    status_code: int
    json: Any
    headers: httpx.Headers
    url: str
    links: dict[str, str]  # rel -> url, from the Link header

    @property
    def total(self) -> int | None:
        value = self.headers.get("X-WP-Total")
        return None if value is None else int(value)

    @property
    def total_pages(self) -> int | None:
        value = self.headers.get("X-WP-TotalPages")
        return None if value is None else int(value)


def _script_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("WP_STATE_DIR", "/tmp/bulletin-wp")
    env.setdefault("WP_PORT", "8089")
    return env


def _run_script(name: str, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    cmd = ["bash", str(SCRIPTS / name), *args]
    try:
        proc = subprocess.run(
            cmd,
            check=False,
            env=_script_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        out, err = (x.decode(errors="replace") if isinstance(x, bytes) else (x or "") for x in (exc.stdout, exc.stderr))
        raise WordPressError(f"{name} timed out after {timeout}s\nstdout:\n{out}\nstderr:\n{err}") from exc
    if proc.returncode != 0:
        raise WordPressError(
            f"{' '.join([name, *args])} failed (exit {proc.returncode})\nstderr:\n{proc.stderr}\nstdout:\n{proc.stdout}"
        )
    return proc


class WordPress:
    """Handle on the running test site (see module docstring)."""

    def __init__(self, base_url: str, seed: dict[str, Any]) -> None:
        env = _script_env()
        self.base_url = base_url  # http://127.0.0.1:PORT/wp-json/wp/v2/
        self.port = int(env["WP_PORT"])
        self.site_url = f"http://127.0.0.1:{self.port}"
        self.state_dir = Path(env["WP_STATE_DIR"])
        self.seed = seed  # seed.php's JSON summary
        self.client = httpx.Client(timeout=60.0)

    def close(self) -> None:
        self.client.close()

    # ------------------------------------------------------------ HTTP
    def rest(self, path: str, **params: Any) -> RestResponse:
        """GET base_url + path (or an absolute URL, e.g. a Link rel=next).

        List/tuple/set params are joined with commas, as WordPress expects for
        ``include``/``exclude``/``parent``. Never raises on HTTP errors.
        """
        url = path if path.startswith("http") else self.base_url + path.lstrip("/")
        query = {
            k: (",".join(str(v) for v in val) if isinstance(val, (list, tuple, set)) else val)
            for k, val in params.items()
        }
        # Merge into the URL (an absolute Link URL keeps its own query args).
        resp = self.client.get(httpx.URL(url).copy_merge_params(query))
        try:
            body = resp.json()
        except ValueError:
            body = resp.text
        links = {link.get("rel", ""): link.get("url", "") for link in resp.links.values()}
        return RestResponse(resp.status_code, body, resp.headers, str(resp.url), links)

    # ------------------------------------------------------------ PHP
    def php(self, snippet: str, args: dict[str, Any] | None = None, timeout: float = 120) -> str:
        """Run a PHP snippet inside WordPress (as admin) and return its stdout.

        ``args`` is available to the snippet as the PHP array ``$args``.
        Raises WordPressError (with stderr) if PHP exits non-zero.
        """
        env = _script_env()
        env["WP_EVAL_ARGS"] = json.dumps(args or {})
        proc = subprocess.run(
            [
                "php",
                "-d",
                "display_errors=stderr",
                "-d",
                "memory_limit=1024M",
                str(SCRIPTS / "wp-eval.php"),
            ],
            input=snippet,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if proc.returncode != 0:
            raise WordPressError(
                f"PHP snippet failed (exit {proc.returncode}):\n{proc.stderr}\n--- snippet:\n{snippet}"
            )
        return proc.stdout

    def php_json(self, snippet: str, args: dict[str, Any] | None = None) -> Any:
        """Like php(), for snippets that ``echo json_encode(...)``."""
        return json.loads(self.php(snippet, args))

    def db(self, sql: str, *params: Any) -> list[dict[str, Any]]:
        """Rows of a SQL query run with $wpdb (``{posts}`` expands to the posts table;
        ``%s``/``%d`` placeholders are filled by $wpdb->prepare from params)."""
        return self.php_json(
            """
            $sql = str_replace(['{posts}', '{postmeta}'], [$wpdb->posts, $wpdb->postmeta], $args['sql']);
            if ($args['params']) { $sql = $wpdb->prepare($sql, ...$args['params']); }
            $rows = $wpdb->get_results($sql, ARRAY_A);
            if ($wpdb->last_error) { bulletin_die($wpdb->last_error); }
            echo json_encode($rows);
            """,
            {"sql": sql, "params": list(params)},
        )

    def ids(self, post_type: str = "page", status: str = "publish") -> list[int]:
        """IDs in the database now with this type and status, ascending."""
        rows = self.db(
            "SELECT ID FROM {posts} WHERE post_type = %s AND post_status = %s ORDER BY ID",
            post_type,
            status,
        )
        return [int(r["ID"]) for r in rows]

    def get_post(self, post_id: int) -> dict[str, Any]:
        """The raw posts-table row (post_status, post_modified, post_modified_gmt, ...)."""
        rows = self.db("SELECT * FROM {posts} WHERE ID = %d", post_id)
        if not rows:
            raise WordPressError(f"no post {post_id}")
        return rows[0]

    # ------------------------------------------------------------ edits
    def set_modified(self, post_id: int, local: str, gmt: str | None = None) -> dict[str, Any]:
        """Set exact post_modified (site-local, "YYYY-MM-DD HH:MM:SS") and
        post_modified_gmt (computed from the site timezone when omitted)."""
        return self.php_json(
            "echo json_encode(bulletin_set_modified($args['id'], $args['local'], $args['gmt']));",
            {"id": post_id, "local": local, "gmt": gmt},
        )

    def edit_page(
        self,
        post_id: int,
        title: str | None = None,
        content: str | None = None,
        modified_local: str | None = None,
        modified_gmt: str | None = None,
    ) -> dict[str, Any]:
        """wp_update_post (stamps modified = now), then optionally exact modified times.
        Returns {"id", "modified", "modified_gmt"} as stored."""
        return self.php_json(
            """
            $post = ['ID' => $args['id']];
            if ($args['title'] !== null) { $post['post_title'] = $args['title']; }
            if ($args['content'] !== null) { $post['post_content'] = $args['content']; }
            bulletin_check(wp_update_post($post, true), 'wp_update_post');
            if ($args['modified_local'] !== null) {
                bulletin_set_modified($args['id'], $args['modified_local'], $args['modified_gmt']);
            }
            $p = get_post($args['id']);
            echo json_encode(
                ['id' => $p->ID, 'modified' => $p->post_modified, 'modified_gmt' => $p->post_modified_gmt]
            );
            """,
            {
                "id": post_id,
                "title": title,
                "content": content,
                "modified_local": modified_local,
                "modified_gmt": modified_gmt,
            },
        )

    def create_page(
        self,
        title: str,
        content: str = "",
        status: str = "publish",
        parent: int = 0,
        password: str = "",
        modified_local: str | None = None,
        modified_gmt: str | None = None,
    ) -> int:
        """wp_insert_post a page; returns its id."""
        return int(
            self.php(
                """
            $id = bulletin_check(wp_insert_post([
                'post_type' => 'page', 'post_title' => $args['title'], 'post_content' => $args['content'],
                'post_status' => $args['status'], 'post_parent' => $args['parent'],
                'post_password' => $args['password'], 'post_author' => 1,
            ], true), 'wp_insert_post');
            if ($args['modified_local'] !== null) {
                bulletin_set_modified($id, $args['modified_local'], $args['modified_gmt']);
            }
            echo $id;
            """,
                {
                    "title": title,
                    "content": content,
                    "status": status,
                    "parent": parent,
                    "password": password,
                    "modified_local": modified_local,
                    "modified_gmt": modified_gmt,
                },
            ).strip()
        )

    def unpublish(self, post_id: int) -> None:
        """Turn a published page back into a draft (wp_update_post; stamps modified = now)."""
        self.php(
            "bulletin_check(wp_update_post(['ID' => $args['id'], 'post_status' => 'draft'], true), 'unpublish');",
            {"id": post_id},
        )

    def publish(self, post_id: int) -> None:
        """Publish a draft/private page (wp_publish_post)."""
        self.php(
            "wp_publish_post($args['id']); clean_post_cache($args['id']);",
            {"id": post_id},
        )

    def trash(self, post_id: int) -> None:
        """Move to trash (wp_trash_post)."""
        self.php(
            "bulletin_check(wp_trash_post($args['id']), 'wp_trash_post');",
            {"id": post_id},
        )

    def delete(self, post_id: int) -> None:
        """Delete permanently (wp_delete_post with force)."""
        self.php(
            "bulletin_check(wp_delete_post($args['id'], true), 'wp_delete_post');",
            {"id": post_id},
        )


@pytest.fixture(scope="session")
def wordpress() -> Any:
    """A freshly installed, seeded real WordPress; stopped at session end."""
    if os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") != "1":
        pytest.fail("the real-WordPress tier needs one process (one WordPress): add -n 0", pytrace=False)
    failure = None
    try:
        _run_script("install.sh", timeout=1800)
        _run_script("stop.sh", timeout=120)
        started = _run_script("start.sh", timeout=300)
        seeded = _run_script("seed.sh", timeout=900)
    except WordPressError as exc:
        failure = str(exc)
    if failure is not None:
        try:
            _run_script("stop.sh", timeout=120)
        except WordPressError as exc:
            failure += f"\n(and stop.sh failed too: {exc})"
        pytest.fail(f"could not bring up the test WordPress:\n{failure}", pytrace=False)

    base_url = next(
        (line.split("=", 1)[1] for line in started.stdout.splitlines() if line.startswith("WP_BASE_URL=")),
        None,
    )
    if not base_url:
        pytest.fail(
            f"start.sh printed no WP_BASE_URL:\n{started.stdout}\n{started.stderr}",
            pytrace=False,
        )
    seed = json.loads(seeded.stdout.strip().splitlines()[-1])

    site = WordPress(base_url, seed)
    try:
        yield site
    finally:
        site.close()
        if os.environ.get("WP_KEEP_RUNNING") != "1":
            try:
                _run_script("stop.sh", timeout=180)
            except WordPressError as exc:
                pytest.fail(
                    f"stop.sh failed; processes may be left running:\n{exc}",
                    pytrace=False,
                )


class Endpoint:
    """What `Lake` needs of a server: the real WordPress's REST base."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url


@pytest.fixture
def lake(tmp_path: Path, wordpress: Any) -> Lake:
    return Lake(tmp_path, Endpoint(wordpress.base_url))
