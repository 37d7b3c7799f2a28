"""An MLflow RequestHeaderProvider (entry point group `mlflow.request_header_provider`) that sends
the IAP assertion in $IAP_E2E_ASSERTION as `x-goog-iap-jwt-assertion` on every client request,
as IAP itself would add it in front of iap-proxy."""

import os

from mlflow.tracking.request_header.abstract_request_header_provider import RequestHeaderProvider


class IAPAssertionHeaderProvider(RequestHeaderProvider):
    def in_context(self):
        return bool(os.environ.get("IAP_E2E_ASSERTION"))

    def request_headers(self):
        return {"x-goog-iap-jwt-assertion": os.environ["IAP_E2E_ASSERTION"]}
