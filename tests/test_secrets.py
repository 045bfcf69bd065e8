"""Credentials and secret query values: used against the site, never printed, logged or stored.

The site here is the demo's WordPress-shaped records behind a small standard-library server that
answers 401 without the right `Authorization: Basic` header (the simulator ignores headers) and
remembers the query of every request it served.
"""

from __future__ import annotations

import base64
import gzip
import json
import pathlib
import re
import subprocess
import sys
import threading
import zlib
from http.server import ThreadingHTTPServer
from typing import Any, Dict, Iterator, List, Optional, Tuple

import dlt
import pytest
import yaml

from bulletin_pipeline.demo import ROUTE, DemoHandler, DemoSite, WPError
from bulletin_pipeline.extraction import source_state_value
from bulletin_pipeline.pipeline import make_pipeline, run_pipeline
from bulletin_pipeline.redact import redact_text, redact_url
from bulletin_pipeline.settings import resolve_settings

from .test_cli import ROOT, cli, dlt_cli

USER, PASSWORD = "editor", "s3cr3t-PASSWORD"
BASIC = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
API_KEY, TOKEN = "k3y-IN-THE-BASE-URL", "t0ken-IN-COLLECTION-PARAMS"


class _Handler(DemoHandler):
    server: AuthSite  # type: ignore[assignment]

    def admit(self, collection: str, query: Dict[str, str]) -> None:
        self.server.seen.append((self.headers.get("Authorization"), collection, query))
        if self.headers.get("Authorization") != f"Basic {BASIC}":
            raise WPError(401, "rest_forbidden", "Sorry, you are not allowed to do that.")


class AuthSite(ThreadingHTTPServer):
    """200 pages and 60 media of the demo site, only for `USER`:`PASSWORD`."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.origin = f"http://127.0.0.1:{self.server_address[1]}"
        self.site = DemoSite(self.origin, pages=200, media=60)
        self.seen: List[Tuple[Optional[str], str, Dict[str, str]]] = []  # authorization, collection, query

    def base_url(self, userinfo: str = f"{USER}:{PASSWORD}@", query: str = "") -> str:
        return f"http://{userinfo}127.0.0.1:{self.server_address[1]}{ROUTE}{query}"


@pytest.fixture
def auth_site() -> Iterator[AuthSite]:
    server = AuthSite()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


def stored_texts(root: pathlib.Path) -> Iterator[Tuple[pathlib.Path, bytes]]:
    """Every file under `root`, plus what gzip'd files and dlt's compressed state blobs hold."""
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        yield path, data
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
            yield path, data
        for blob in re.findall(rb"[A-Za-z0-9+/]{64,}={0,2}", data):  # the state in _dlt_pipeline_state
            try:
                yield path, zlib.decompress(base64.b64decode(blob))
            except (ValueError, zlib.error):
                continue


def assert_nowhere(secrets: List[str], outputs: Dict[str, str], *roots: pathlib.Path) -> None:
    needles = [s.encode() for s in secrets]
    for name, text in outputs.items():
        for secret in secrets:
            assert secret not in text, f"{secret!r} printed in {name}:\n{text}"
    for root in roots:
        for path, data in stored_texts(root):
            leaked = [n for n in needles if n in data]
            assert not leaked, f"{leaked} stored in {path}"


def inspect(pipelines_dir: pathlib.Path, cwd: pathlib.Path) -> Dict[str, str]:
    """What `uv run dlt pipeline ...` shows about the last run (the workflow's failure artifact)."""
    shown = {}
    for before, after in ((["-v"], ["trace"]), ([], ["info", "-v"])):  # the most each one shows
        result = dlt_cli(
            *before, "pipeline", "--pipelines-dir", str(pipelines_dir), "bulletin_pipeline", *after, cwd=cwd
        )
        assert result.returncode == 0, result.stderr
        shown[" ".join(["dlt", *before, "pipeline", *after])] = result.stdout + result.stderr
    return shown


def test_credentials_authenticate_and_are_never_printed_logged_or_stored(auth_site: AuthSite, tmp_path):
    lake, pipelines = tmp_path / "lake", tmp_path / "pipelines"
    where = ["--bucket-url", str(lake), "--pipelines-dir", str(pipelines)]
    verbose = {"RUNTIME__LOG_LEVEL": "INFO"}  # dlt's own request log too
    outputs: Dict[str, str] = {}

    first = cli("--base-url", auth_site.base_url(), *where, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert re.search(r"pages\s+│\s+initial\s+│\s+200 ", first.stdout), first.stdout
    assert {a for a, _, _ in auth_site.seen} == {f"Basic {BASIC}"}  # every request authenticated
    outputs["first run"] = first.stdout + first.stderr

    # the documented way: the credentials in secrets.toml / the environment, base_url without them
    anonymous = auth_site.base_url(userinfo="")
    configured = {"SOURCES__BULLETIN__HTTP__USERNAME": USER, "SOURCES__BULLETIN__HTTP__PASSWORD": PASSWORD}
    again = cli("--base-url", anonymous, *where, "--full-refresh", cwd=tmp_path, env=configured)
    assert again.returncode == 0 and "260 records loaded" in again.stdout, again.stderr
    outputs["credentials from config"] = again.stdout + again.stderr

    # the workflow's way: base_url with the credentials in an environment variable, --verbose
    environment = {"SOURCES__BULLETIN__BASE_URL": auth_site.base_url(), **verbose}
    logged = cli(*where, "--if-changed", "--verbose", cwd=tmp_path, env=environment)
    assert logged.returncode == 0 and "no changes since" in logged.stdout, logged.stderr
    assert "HTTP Request: GET http://127.0.0.1" in logged.stderr  # the verbose log is there, without them
    outputs["verbose run"] = logged.stdout + logged.stderr
    loaded = cli(*where, "--full-refresh", "--verbose", cwd=tmp_path, env=environment)
    assert loaded.returncode == 0 and "Making GET request to" in loaded.stderr, loaded.stderr
    outputs["verbose load"] = loaded.stdout + loaded.stderr
    outputs.update(inspect(pipelines, tmp_path))

    failed = cli("--base-url", auth_site.base_url(), *where, "--endpoints", "courses", "--verbose", cwd=tmp_path)
    assert failed.returncode == 1 and "404 rest_no_route" in failed.stderr and "Traceback" in failed.stderr
    outputs["failed run"] = failed.stdout + failed.stderr
    outputs.update({f"{k} (failed)": v for k, v in inspect(pipelines, tmp_path).items()})
    assert "404 rest_no_route" in outputs["dlt -v pipeline trace (failed)"]

    refused = cli("--base-url", anonymous, *where, cwd=tmp_path)
    assert refused.returncode == 1 and "401 rest_forbidden" in refused.stderr
    assert "set sources.bulletin.http.username and password" in refused.stderr

    assert_nowhere([PASSWORD, BASIC], outputs, pipelines, lake)


def test_secret_query_values_are_sent_and_never_printed_or_stored(auth_site: AuthSite, tmp_path):
    lake, pipelines = tmp_path / "lake", tmp_path / "pipelines"
    base_url = auth_site.base_url(query=f"?api_key={API_KEY}")
    environment = {
        "SOURCES__BULLETIN__COLLECTIONS": json.dumps({"pages": {"params": {"access_token": TOKEN}}}),
        "RUNTIME__LOG_LEVEL": "INFO",
    }
    where = ["--base-url", base_url, "--bucket-url", str(lake), "--pipelines-dir", str(pipelines), "--verbose"]
    outputs: Dict[str, str] = {}

    loaded = cli(*where, cwd=tmp_path, env=environment)
    assert loaded.returncode == 0 and "260 records loaded" in loaded.stdout, loaded.stderr
    assert all(q["api_key"] == API_KEY for _, _, q in auth_site.seen)
    assert {q.get("access_token") for _, name, q in auth_site.seen if name == "pages"} == {TOKEN}
    outputs["load"] = loaded.stdout + loaded.stderr

    failed = cli(*where, "--endpoints", "pages,courses", cwd=tmp_path, env=environment)
    assert failed.returncode == 1 and "404 rest_no_route" in failed.stderr, failed.stderr
    assert re.search(r"courses\?[^ ]*api_key=\*\*\*", failed.stderr), failed.stderr
    outputs["failed run"] = failed.stdout + failed.stderr
    outputs.update({f"{k} (failed)": v for k, v in inspect(pipelines, tmp_path).items()})

    assert_nowhere([API_KEY, TOKEN, PASSWORD], outputs, pipelines, lake)


def test_every_value_of_the_base_urls_query_is_a_secret_whatever_its_name(auth_site: AuthSite, tmp_path):
    """`_wpnonce` and `jwt` do not look secret by name, but came in base_url: masked like `token`;
    params configured apart (`context`) are not secret unless their names look it."""
    lake, pipelines = tmp_path / "lake", tmp_path / "pipelines"
    nonce, jwt = "NONCE987-in-base-url", "JWTABC-in-base-url"
    base_url = auth_site.base_url(query=f"?token={API_KEY}&_wpnonce={nonce}&jwt={jwt}")
    environment = {"SOURCES__BULLETIN__PARAMS": json.dumps({"context": "view"}), "RUNTIME__LOG_LEVEL": "INFO"}
    where = ["--base-url", base_url, "--bucket-url", str(lake), "--pipelines-dir", str(pipelines)]
    outputs: Dict[str, str] = {}

    loaded = cli(*where, "--verbose", cwd=tmp_path, env=environment)
    assert loaded.returncode == 0 and "260 records loaded" in loaded.stdout, loaded.stderr
    assert {(q["_wpnonce"], q["jwt"]) for _, _, q in auth_site.seen} == {(nonce, jwt)}
    outputs["verbose load"] = loaded.stdout + loaded.stderr
    failed = cli(*where, "--endpoints", "pages,courses", cwd=tmp_path, env=environment)
    assert failed.returncode == 1 and "404 rest_no_route" in failed.stderr, failed.stderr
    line = re.search(r"courses\?\S*", failed.stderr)
    assert line and {"_wpnonce=***", "jwt=***", "context=view"} <= set(line[0].split("&")), failed.stderr
    outputs["failed run"] = failed.stdout + failed.stderr
    outputs.update({f"{k} (failed)": v for k, v in inspect(pipelines, tmp_path).items()})
    reconciled = cli("reconcile", *where, "--endpoints", "pages,courses", "--verbose", cwd=tmp_path, env=environment)
    assert reconciled.returncode == 1 and "courses: sweep incomplete" in reconciled.stdout, reconciled.stderr
    outputs["reconcile"] = reconciled.stdout + reconciled.stderr

    assert_nowhere([nonce, jwt, API_KEY, PASSWORD], outputs, pipelines, lake)


@pytest.mark.parametrize("separator", ["/", "#", "?"])
def test_an_unencoded_password_is_an_error_that_echoes_none_of_it(auth_site: AuthSite, tmp_path, separator):
    lake, pipelines = tmp_path / "lake", tmp_path / "pipelines"
    base_url = auth_site.base_url(userinfo=f"{USER}:Pa{separator}SSWD9@")
    result = cli("--base-url", base_url, "--bucket-url", str(lake), "--pipelines-dir", str(pipelines), cwd=tmp_path)
    assert result.returncode == 2 and "credentials in base_url must be percent-encoded" in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not auth_site.seen, result.stderr
    assert_nowhere([f"{USER}:Pa", "SSWD9"], {"run": result.stdout + result.stderr}, tmp_path)


def test_a_state_stored_with_credentials_in_the_site_id_is_the_same_site(auth_site: AuthSite, tmp_path):
    """States written before credentials were kept out of the site id still match the site, and
    the next run stores the id without them."""
    settings = resolve_settings(
        base_url=auth_site.base_url(), bucket_url=str(tmp_path / "lake"), pipelines_dir=str(tmp_path / "p")
    )

    @dlt.source(name="bulletin")
    def earlier_version() -> Any:
        @dlt.resource(name="site_marker")
        def site_marker() -> Iterator[Any]:
            dlt.current.source_state()["site"] = auth_site.base_url()
            yield from ()

        return site_marker

    make_pipeline(settings).run(earlier_version())
    summary = run_pipeline(settings)
    assert summary.loaded == 260
    assert source_state_value(make_pipeline(settings), "site") == auth_site.base_url(userinfo="")


@pytest.mark.parametrize(
    "url, redacted",
    [
        ("https://u:p%40ss@h.edu/wp-json/wp/v2/", "https://***@h.edu/wp-json/wp/v2/"),
        ("http://h/x?orderby=id&api_key=K&per_page=5", "http://h/x?orderby=id&api_key=***&per_page=5"),
        ("http://h/x?author=3&X-Amz-Signature=S&sessionid=Q", "http://h/x?author=3&X-Amz-Signature=***&sessionid=***"),
        ("s3://AKIA:SECRET@bucket/prefix", "s3://***@bucket/prefix"),
    ],
)
def test_redact_url(url, redacted):
    assert redact_url(url) == redacted
    assert redact_text(f"error: GET {url} answered 404") == f"error: GET {redacted} answered 404"


def test_redact_url_masks_the_values_of_the_names_it_is_given():
    assert redact_url("http://h/x?jwt=J&id=1&a+b=C", ["jwt", "a b"]) == "http://h/x?jwt=***&id=1&a+b=***"
    assert redact_text("params {'_wpnonce': 'N', 'page': 2}", ["_wpnonce"]) == "params {'_wpnonce': '***', 'page': 2}"


def test_redact_text_masks_secret_values_in_config_dumps():
    text = '{"pages": {"params": {"access_token": "T", "orderby": "id"}}} password=P http://u:p@h/\n'
    redacted = '{"pages": {"params": {"access_token": "***", "orderby": "id"}}} password=*** http://***@h/\n'
    assert redact_text(text) == redacted
    # the workflow's filter for `dlt pipeline` output: a script of the standard library alone
    script = ROOT / "bulletin_pipeline" / "redact.py"
    filtered = subprocess.run([sys.executable, "-I", str(script)], input=text * 2, capture_output=True, text=True)
    assert filtered.returncode == 0 and filtered.stdout == redacted * 2, filtered.stderr


def test_the_workflow_uploads_only_redacted_text_and_never_syncs_dev_dependencies():
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "bulletin-daily.yml").read_text())
    job = workflow["jobs"]["load"]
    env = {**workflow.get("env", {}), **job.get("env", {})}
    steps = job["steps"]
    for step in steps:
        for command in re.findall(r"\buv (?:run|sync)\b[^\n|;&]*", step.get("run", "")):
            # a plain `uv run` re-syncs the dev group `uv sync --no-dev` left out, and may re-lock
            assert "--no-dev" in command or env.get("UV_NO_DEV"), command
            assert "--frozen" in command or env.get("UV_FROZEN"), command
    upload = next(s for s in steps if "upload-artifact" in s.get("uses", ""))
    paths = upload["with"]["path"].strip().splitlines()
    assert paths and all(p.endswith(".txt") for p in paths), paths
    kept = next(s for s in steps if s.get("if") == "failure()" and "run" in s)["run"]
    assert not re.search(r"\b(cp|rsync|tar|zip)\b", kept), kept  # nothing of the dlt folder: data, state
    for line in kept.splitlines():
        if "dlt pipeline" in line:
            assert "python bulletin_pipeline/redact.py" in line, line
