"""Reference signer for token tests: presigns STS GetCallerIdentity with botocore.

Reads one JSON object on stdin:
  {"access_key", "secret_key", "session_token" (optional), "region", "host",
   "cluster_id", "amz_date" (YYYYMMDDTHHMMSSZ), "expires" (seconds)}
and prints {"url": ..., "signature": ...}: botocore's own presigned URL for the same
credentials, time and cluster header, so a test can compare signatures.
"""

import datetime
import json
import sys
from unittest import mock
from urllib.parse import parse_qs, urlsplit

import botocore.auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials


def presign(spec):
    creds = Credentials(spec["access_key"], spec["secret_key"], spec.get("session_token"))
    signer = botocore.auth.SigV4QueryAuth(
        creds, "sts", spec["region"], expires=int(spec["expires"])
    )
    url = "https://%s/?Action=GetCallerIdentity&Version=2011-06-15" % spec["host"]
    request = AWSRequest(method="GET", url=url, headers={"x-k8s-aws-id": spec["cluster_id"]})
    frozen = datetime.datetime.strptime(spec["amz_date"], "%Y%m%dT%H%M%SZ")
    # botocore reads the clock in add_auth; freeze it at the token's X-Amz-Date.
    if hasattr(botocore.auth, "get_current_datetime"):
        patcher = mock.patch.object(botocore.auth, "get_current_datetime", return_value=frozen)
    else:
        fake = mock.Mock(wraps=datetime.datetime)
        fake.utcnow.return_value = frozen
        fake.now.return_value = frozen
        patcher = mock.patch.object(botocore.auth.datetime, "datetime", fake)
    with patcher:
        signer.add_auth(request)
    prepared = request.prepare()
    query = parse_qs(urlsplit(prepared.url).query)
    return {"url": prepared.url, "signature": query["X-Amz-Signature"][0]}


if __name__ == "__main__":
    json.dump(presign(json.load(sys.stdin)), sys.stdout)
    sys.stdout.write("\n")
