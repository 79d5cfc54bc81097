"""AWS Signature Version 4 for one outgoing request, with botocore's signer.

The signature covers the host, the path exactly as sent (Bedrock model ids are percent-encoded
there, and SigV4 encodes the path once more in its canonical form, as botocore does) and the
body, so it is computed after translation, for the attempt that sends them.
"""

from __future__ import annotations

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

SIGNED_RESULT_HEADERS = ("authorization", "x-amz-date", "x-amz-security-token")


def sigv4_headers(access_key: str, secret_key: str, session_token: str | None, region: str,
                  service: str, url: str, body: bytes,
                  headers: dict[str, str]) -> dict[str, str]:
    """The headers that authorise a POST of `body` to `url` (signing `headers` too)."""
    request = AWSRequest(method="POST", url=url, data=body, headers=headers)
    SigV4Auth(Credentials(access_key, secret_key, session_token), service, region).add_auth(
        request)
    return {name.lower(): str(value) for name, value in request.headers.items()
            if name.lower() in SIGNED_RESULT_HEADERS}
