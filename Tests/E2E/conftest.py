"""Fixtures of the real-apps end-to-end suite: each app (JupyterHub with its configurable-http-proxy,
a standalone Jupyter Server, an MLflow tracking server) runs on loopback ports picked at runtime,
behind its own `iap-proxy serve` that trusts a local key set (`iap-proxy keygen`/`mint`).

The apps a run needs are all started at session start (MLflow alone takes ~20-30 s to migrate its
database), each test module waits for its own. Everything started is stopped at session end, also
on failure; a failing test's report carries the tail of every live app's and proxy's log.
"""

from __future__ import annotations

import atexit
import os
import secrets
import textwrap
from pathlib import Path

import pytest
import requests

import e2e_support as e2e
from e2e_support import AUDIENCE, HERE, JHUB_VENV, MLFLOW_VENV, Keys, Proc, Proxy, wait_until

atexit.register(e2e.stop_all)

ALICE, BOB, MALLORY = "alice@example.com", "bob@example.com", "mallory@example.org"
ALLOWLIST = f"# e2e allowlist: {MALLORY} is deliberately absent\n{ALICE}\n{BOB}\n"
NODE_PATH = "/usr/share/nodejs:/usr/lib/nodejs"  # Debian's CHP under a non-Debian node (E2E-APPS.md)


def pytest_sessionstart(session):
    for path in (e2e.BIN, JHUB_VENV / "bin" / "jupyterhub", MLFLOW_VENV / "bin" / "mlflow"):
        if not os.access(path, os.X_OK):
            raise pytest.UsageError(f"{path} missing: run Tests/E2E/run.sh (it builds and installs what is missing)")


def _proxy_config(directory: Path, keys: Keys, upstream: str, extra: str) -> Path:
    (directory / "allowlist.txt").write_text(ALLOWLIST)
    path = directory / "iap-proxy.yaml"
    path.write_text(f"upstream: {upstream}\naudiences: [\"{AUDIENCE}\"]\nkeys: {{ file: {keys.jwks} }}\n"
                    + textwrap.dedent(extra))
    return path


class JupyterHubApp:
    """JupyterHub 6 (header authenticator, SimpleLocalProcessSpawner, Debian's node CHP) behind
    iap-proxy configured as config/jupyterhub.yaml is."""

    def __init__(self, root: Path, keys: Keys):
        self.dir = root / "jhub"
        self.dir.mkdir()
        self.public_port = e2e.free_port()
        self.auth_log = self.dir / "authenticator.jsonl"
        env = {"E2E_AUTH_LOG": str(self.auth_log), "E2E_HOME": str(self.dir), "E2E_PUBLIC_PORT": str(self.public_port),
               "E2E_HUB_PORT": str(e2e.free_port()), "E2E_PROXY_API_PORT": str(e2e.free_port()),
               "PATH": f"{JHUB_VENV / 'bin'}:{os.environ['PATH']}",
               "NODE_PATH": ":".join(filter(None, [NODE_PATH, os.environ.get("NODE_PATH")]))}
        self.hub = Proc([JHUB_VENV / "bin" / "jupyterhub", "-f", HERE / "apps" / "jupyterhub_config.py"], "jupyterhub",
                        self.dir, env=env, cwd=self.dir)
        config = _proxy_config(self.dir, keys, f"http://127.0.0.1:{self.public_port}", """\
            headers: jupyterhub
            forward_assertion: false
            timeouts: { tunnel_idle: 1h }
            routes:
              - name: hub-health
                match: { path: /hub/health }
                auth: none
              - name: hub
                match: { path_prefix: / }
                allow: [ "file:allowlist.txt" ]
            """)
        self.proxy = Proxy("iap-proxy-jhub", self.dir, ["--config", config])

    def ready(self):
        wait_until(lambda: requests.get(self.proxy.url + "/hub/health", timeout=5).status_code == 200, 120,
                   "JupyterHub /hub/health through iap-proxy", (self.hub, self.proxy))
        return self


class JupyterServerApp:
    """A standalone Jupyter Server (+ JupyterLab) with a header IdentityProvider, owned by alice."""

    def __init__(self, root: Path, keys: Keys):
        self.dir = root / "jserver"
        self.dir.mkdir()
        self.port = e2e.free_port()
        self.seen_log = self.dir / "identity.jsonl"
        env = {"E2E_JSERVER_OWNER": ALICE, "E2E_SEEN_LOG": str(self.seen_log), "E2E_HOME": str(self.dir),
               "E2E_JSERVER_PORT": str(self.port), "JUPYTER_CONFIG_DIR": str(self.dir / "config"),
               "JUPYTER_RUNTIME_DIR": str(self.dir / "runtime"), "HOME": str(self.dir), "JUPYTER_PLATFORM_DIRS": "1"}
        self.server = Proc([JHUB_VENV / "bin" / "jupyter-server", f"--config={HERE / 'apps' / 'jupyter_server_config.py'}"],
                           "jupyter-server", self.dir, env=env, cwd=self.dir)
        (self.dir / "allowlist.txt").write_text(ALLOWLIST)
        self.proxy = Proxy("iap-proxy-jserver", self.dir, [
            "--upstream", f"http://127.0.0.1:{self.port}", "--audience", AUDIENCE, "--jwks-file", keys.jwks,
            "--allowlist", self.dir / "allowlist.txt"])

    def ready(self):
        # Any HTTP answer straight from the server means it listens (it answers 403 without identity).
        wait_until(lambda: requests.get(f"http://127.0.0.1:{self.port}/api/status", timeout=5).status_code, 60,
                   "Jupyter Server listening", (self.server, self.proxy))
        return self


class MLflowApp:
    """MLflow tracking server with the basic-auth app and an authorization_function reading the
    oauth2-proxy preset's headers; artifacts proxied by the server (mlflow-artifacts:/)."""

    def __init__(self, root: Path, keys: Keys):
        self.dir = root / "mlflow"
        self.dir.mkdir()
        self.port = e2e.free_port()
        self.auth_log = self.dir / "auth.jsonl"
        ini = self.dir / "auth.ini"
        ini.write_text(textwrap.dedent(f"""\
            [mlflow]
            default_permission = READ
            database_uri = sqlite:///{self.dir}/auth.db
            admin_username = admin
            admin_password = {secrets.token_urlsafe(18)}
            authorization_function = mlflow_header_auth:authenticate_request_header
            """))
        env = {"MLFLOW_AUTH_CONFIG_PATH": str(ini), "PYTHONPATH": str(HERE / "apps"), "E2E_AUTH_LOG": str(self.auth_log),
               "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(16), "HOME": str(self.dir)}
        self.server = Proc([MLFLOW_VENV / "bin" / "mlflow", "server", "--host", "127.0.0.1", "--port", self.port,
                            "--workers", "1", "--backend-store-uri", f"sqlite:///{self.dir}/mlflow.db",
                            "--artifacts-destination", self.dir / "artifacts", "--app-name", "basic-auth"],
                           "mlflow", self.dir, env=env, cwd=self.dir)
        config = _proxy_config(self.dir, keys, f"http://127.0.0.1:{self.port}", """\
            routes:
              - name: mlflow-health
                match: { path: /health }
                auth: none
              - name: mlflow
                match: { path_prefix: / }
                allow: [ "file:allowlist.txt" ]
            """)
        self.proxy = Proxy("iap-proxy-mlflow", self.dir, ["--config", config])

    def ready(self):
        wait_until(lambda: requests.get(self.proxy.url + "/health", timeout=5).status_code == 200, 180,
                   "MLflow /health through iap-proxy", (self.server, self.proxy))
        return self


APPS = {"test_jupyterhub": JupyterHubApp, "test_jupyter_server": JupyterServerApp, "test_mlflow": MLflowApp}


class Apps:
    def __init__(self, root: Path, keys: Keys):
        self.root, self.keys, self.started = root, keys, {}

    def start(self, module: str):
        if module not in self.started:
            self.started[module] = APPS[module](self.root, self.keys)
        return self.started[module]


@pytest.fixture(scope="session")
def keys(tmp_path_factory):
    return Keys(tmp_path_factory.mktemp("e2e-keys"))


@pytest.fixture(scope="session")
def apps(request, tmp_path_factory, keys):
    registry = Apps(tmp_path_factory.mktemp("e2e-apps"), keys)
    # Start every app this run selected right away, slowest first, so their start-ups overlap.
    wanted = {item.module.__name__ for item in request.session.items}
    try:
        for module in ("test_mlflow", "test_jupyterhub", "test_jupyter_server"):
            if module in wanted:
                registry.start(module)
        yield registry
    finally:
        e2e.stop_all()


@pytest.fixture(scope="module")
def jhub(apps):
    return apps.start("test_jupyterhub").ready()


@pytest.fixture(scope="module")
def jserver(apps):
    return apps.start("test_jupyter_server").ready()


@pytest.fixture(scope="module")
def mlflow_app(apps):
    return apps.start("test_mlflow").ready()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for title, text in e2e.live_tails(40):
            report.sections.append((title, text))
