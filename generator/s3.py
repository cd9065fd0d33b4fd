"""One place that builds boto3 S3 clients and turns their errors into plain words."""

from __future__ import annotations

import os


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
    config = Config(retries={"mode": "standard", "max_attempts": 5}, max_pool_connections=max_pool_connections,
                    s3={"addressing_style": "path"} if endpoint_url else {})
    session = botocore.session.get_session()
    if not parse_timestamps:
        session.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=str)
    return boto3.session.Session(botocore_session=session).client("s3", endpoint_url=endpoint_url, config=config)


def s3_error_message(exc: Exception) -> str:
    """A one-line description of a boto3/botocore failure, naming the likely fix."""
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

    if isinstance(exc, NoCredentialsError):
        return "no AWS credentials found (set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or a profile)"
    if isinstance(exc, EndpointConnectionError):
        return f"cannot reach the S3 endpoint ({exc}); check AWS_ENDPOINT_URL"
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("NoSuchBucket",):
            return "no such bucket (create it or fix the bucket name)"
        if code in ("NoSuchKey", "404", "NotFound"):
            return "no such key"
        if code in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            return f"access denied ({code}); check the credentials and the bucket policy"
        return f"{code or 'error'}: {exc}"
    return str(exc)
