# A standalone Jupyter Server behind iap-proxy (default preset `oauth2-proxy`): the identity is the
# verified email iap-proxy puts in X-Forwarded-Email, read on every request and WebSocket upgrade.
# A standalone server has one owner, so only E2E_JSERVER_OWNER gets in.
import json
import os

from jupyter_server.auth.identity import IdentityProvider, User

HEADER = "X-Forwarded-Email"
OWNER = os.environ["E2E_JSERVER_OWNER"]
SEEN_LOG = os.environ["E2E_SEEN_LOG"]


class HeaderIdentityProvider(IdentityProvider):
    def get_user(self, handler):
        headers = handler.request.headers
        values = headers.get_list(HEADER)
        with open(SEEN_LOG, "a") as log:
            log.write(json.dumps({"method": handler.request.method, "uri": handler.request.uri,
                                  "host": headers.get("Host"), "origin": headers.get("Origin"),
                                  "email": values, "upgrade": headers.get("Upgrade")}) + "\n")
        if values == [OWNER]:
            return User(username=OWNER, name=OWNER)
        return None


c = get_config()  # noqa: F821
c.ServerApp.identity_provider_class = HeaderIdentityProvider
c.IdentityProvider.token = ""
c.ServerApp.ip = "127.0.0.1"
c.ServerApp.port = int(os.environ["E2E_JSERVER_PORT"])
c.ServerApp.port_retries = 0
c.ServerApp.open_browser = False
c.ServerApp.allow_root = True
c.ServerApp.root_dir = os.environ["E2E_HOME"]
# Kernel output is not throttled (default 1 MB/s drops it), so a test can push MBs through the WebSocket.
c.ZMQChannelsWebsocketConnection.iopub_data_rate_limit = 0
