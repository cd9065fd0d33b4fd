"""One place that builds boto3 S3 clients and turns their errors into plain words."""

from __future__ import annotations

import os

from .redact import split_url


def s3_client(endpoint_url: str | None = None, max_pool_connections: int = 10, parse_timestamps: bool = True):
    """A boto3 S3 client honouring AWS_ENDPOINT_URL(_S3) (MinIO, moto) and standard retries.

    ``parse_timestamps=False`` leaves LastModified as text: a publisher that never
    reads it saves a fifth of a large listing's time.
    """
    import boto3
    import botocore.session
    from botocore.config import Config

    endpoint_url = (endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3")
                    or os.environ.get("AWS_ENDPOINT_URL") or None)
    if endpoint_url:  # botocore's own parse would raise a bare ValueError
        split_url(endpoint_url, "S3 endpoint URL",
                  "set --endpoint-url / AWS_ENDPOINT_URL to e.g. http://127.0.0.1:9000")
    config = Config(retries={"mode": "standard", "max_attempts": 5}, max_pool_connections=max_pool_connections,
                    s3={"addressing_style": "path"} if endpoint_url else {})
    session = botocore.session.get_session()
    if not parse_timestamps:
        session.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=str)
    return boto3.session.Session(botocore_session=session).client("s3", endpoint_url=endpoint_url, config=config)


def s3_failure(exc: Exception, bucket: str = "") -> tuple[str, str]:
    """``(problem, fix)`` for a boto3/botocore failure: the one mapping of S3 errors, one fix per error.

    Callers prefix the problem with what they were doing (reading a catalog,
    publishing a site) and raise ``UserError(problem, fix)``.
    """
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError, PartialCredentialsError

    where = f"s3://{bucket}" if bucket else "the bucket"
    if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
        return ("no AWS credentials found",
                "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) in the environment")
    if isinstance(exc, EndpointConnectionError):
        return (f"cannot reach the S3 endpoint ({exc})",
                "check AWS_ENDPOINT_URL (or --endpoint-url / publish.endpoint_url) and that the store is up")
    code = exc.response.get("Error", {}).get("Code", "") if isinstance(exc, ClientError) else ""
    if code == "NoSuchBucket":
        return (f"no such bucket {bucket!r}" if bucket else "no such bucket",
                f"create the bucket first (aws s3 mb {where}) or fix the bucket name")
    if code in ("NoSuchKey", "404", "NotFound"):
        return "no such key", "check the key (the path after the bucket) in the s3:// URI"
    if code in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AllAccessDisabled"):
        return (f"access denied ({code})",
                f"use credentials allowed s3:ListBucket, s3:GetObject, s3:PutObject and s3:DeleteObject on {where}")
    return (f"{code}: {exc}" if code else str(exc),
            "re-run the same command: a failed read changes nothing, a failed publish leaves the published site intact")
