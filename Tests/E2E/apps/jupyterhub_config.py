# JupyterHub behind iap-proxy (preset `jupyterhub`: the verified email in `Remote-User`).
# Ports, paths and the venv come from E2E_* environment variables set by the test fixture.
import json
import os
import sys

from jupyterhub.auth import Authenticator
from jupyterhub.handlers import BaseHandler
from jupyterhub.utils import url_path_join
from tornado import web

HEADER = "Remote-User"
AUTH_LOG = os.environ["E2E_AUTH_LOG"]


def record(handler, **extra):
    """One JSON line per request the authenticator looks at: what the hub was handed."""
    headers = handler.request.headers
    entry = {"uri": handler.request.uri, "remote_user": headers.get_list(HEADER),
             "assertion": headers.get("x-goog-iap-jwt-assertion"), **extra}
    with open(AUTH_LOG, "a") as log:
        log.write(json.dumps(entry) + "\n")


class HeaderLoginHandler(BaseHandler):
    async def get(self):
        user = await self.login_user()  # -> authenticate(): allow/block lists, normalization, admin
        if user is None:
            raise web.HTTPError(403, "no or unknown identity header")
        self.redirect(self.get_next_url(user))


class HeaderAuthenticator(Authenticator):
    auto_login = True

    def login_url(self, base_url):
        return url_path_join(base_url, "header-login")

    def get_handlers(self, app):
        return [("/header-login", HeaderLoginHandler)]

    async def authenticate(self, handler, data=None):
        values = handler.request.headers.get_list(HEADER)
        record(handler, where="authenticate")
        return values[0].strip() if len(values) == 1 and values[0].strip() else None

    async def refresh_user(self, user, handler=None):
        # A hub cookie is only good while the proxy still asserts the same user.
        if handler is None:
            return True
        return handler.request.headers.get(HEADER, "") == user.name


c = get_config()  # noqa: F821
venv_bin = os.path.dirname(sys.executable)
home = os.environ["E2E_HOME"]

c.JupyterHub.bind_url = f"http://127.0.0.1:{os.environ['E2E_PUBLIC_PORT']}"
c.JupyterHub.hub_bind_url = f"http://127.0.0.1:{os.environ['E2E_HUB_PORT']}"
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{os.environ['E2E_PROXY_API_PORT']}"
c.ConfigurableHTTPProxy.command = [os.environ.get("E2E_CHP", "configurable-http-proxy")]
c.ConfigurableHTTPProxy.should_start = True
c.JupyterHub.db_url = f"sqlite:///{home}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = f"{home}/jupyterhub_cookie_secret"
c.JupyterHub.pid_file = f"{home}/jupyterhub.pid"
c.JupyterHub.cleanup_servers = True
c.JupyterHub.cleanup_proxy = True

c.JupyterHub.authenticator_class = HeaderAuthenticator
c.Authenticator.allow_all = True  # iap-proxy's allowlist decides who gets here
c.Authenticator.auth_refresh_age = 1

c.JupyterHub.spawner_class = "simple"  # SimpleLocalProcessSpawner: servers run as the hub's OS user
c.Spawner.cmd = [os.path.join(venv_bin, "jupyterhub-singleuser")]
c.Spawner.args = ["--allow-root"] if os.geteuid() == 0 else []
c.Spawner.default_url = "/lab"
c.Spawner.start_timeout = 60
c.Spawner.http_timeout = 60
c.Spawner.environment = {"JUPYTER_PLATFORM_DIRS": "1"}
c.SimpleLocalProcessSpawner.home_dir_template = os.path.join(home, "users", "{username}")
