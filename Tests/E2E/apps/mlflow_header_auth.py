"""MLflow basic-auth app's `authorization_function` for a tracking server behind iap-proxy.

iap-proxy (preset oauth2-proxy) puts the verified email in X-Forwarded-Email and X-Forwarded-User;
that email becomes the MLflow user (created in the auth store on first sight, with a random
password nobody uses), so MLflow's own permissions apply to it. Every call is also recorded in
$E2E_AUTH_LOG (one JSON line: what the app was handed), for the tests.
"""

import json
import os
import secrets

from flask import Response, request
from werkzeug.datastructures import Authorization


def _record(**entry):
    path = os.environ.get("E2E_AUTH_LOG")
    if path:
        with open(path, "a") as log:
            log.write(json.dumps(entry) + "\n")


def authenticate_request_header():
    from mlflow.exceptions import MlflowException
    from mlflow.server.auth import store

    emails = request.headers.getlist("X-Forwarded-Email")
    users = request.headers.getlist("X-Forwarded-User")
    _record(method=request.method, path=request.path, query=request.query_string.decode(), email=emails, user=users,
            authorization=request.headers.getlist("Authorization"),
            assertion=bool(request.headers.get("x-goog-iap-jwt-assertion")))
    if len(emails) != 1 or users != emails or not emails[0]:
        return Response("no verified identity", status=401)
    username = emails[0]
    if not store.has_user(username):
        try:
            store.create_user(username, secrets.token_urlsafe(24))
        except MlflowException:
            pass  # created meanwhile by another request
    return Authorization("basic", {"username": username, "password": ""})
