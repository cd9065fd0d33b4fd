"""The night's first check: is its configuration usable, before an hour of training?

``check_night_config`` looks at what a night needs from outside and would
otherwise discover late: a publish target that is set and parses, a catalog that
exists (local path) or answers (http(s), S3), and credentials wherever S3 is
involved. What the operator must fix raises :class:`~generator.errors.UserError`
naming what to set; what may pass by itself (a network error, a 5xx) raises an
ordinary exception, so the DAG's retries with back-off apply to it and only to it.
"""

from __future__ import annotations

import http.client
import logging
import os
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from .config import Config
from .errors import UserError
from .redact import mask_url, split_url

log = logging.getLogger(__name__)

CATALOG_FIX = ("set the catalog (the DAG's catalog param, GALLERY_CATALOG, or --catalog) to a readable CSV "
               "path, http(s):// URL or s3:// URI")
CREDENTIALS_FIX = ("give the workers AWS credentials: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (or AWS_PROFILE, "
                   "or an instance role) in their environment")


class TransientError(RuntimeError):
    """Worth another try later: the network, a 5xx, a throttled request."""


def check_night_config(config: Config, catalog: str) -> dict:
    """Raise UserError (fix named) or TransientError; return what was checked, safe to log."""
    from .pipeline import require_target

    target = require_target(config)
    if target.startswith("s3://"):
        bucket = split_url(target, "publish target", "use s3://bucket/prefix").netloc
        _check_s3(bucket, None, "the publish target", config.publish.endpoint_url)
    _check_catalog(catalog)
    return {"profile": config.profile, "target": mask_url(target), "catalog": mask_url(catalog)}


def _check_catalog(catalog: str) -> None:
    if not catalog:
        raise UserError("no catalog given", CATALOG_FIX)
    parsed = split_url(catalog, "catalog URL", CATALOG_FIX)
    if parsed.scheme in ("http", "https"):
        _check_http(catalog, parsed)
    elif parsed.scheme == "s3":
        if not parsed.netloc or not parsed.path.strip("/"):
            raise UserError(f"bad catalog URI {mask_url(catalog)!r}", "use s3://bucket/key.csv")
        _check_s3(parsed.netloc, parsed.path.lstrip("/"), "the catalog", None)
    elif parsed.scheme in ("", "file"):
        path = Path(urllib.parse.unquote(parsed.path) if parsed.scheme else catalog).expanduser()
        if not path.is_file():
            raise UserError(f"catalog not found: {path}", CATALOG_FIX)
        if not os.access(path, os.R_OK):
            raise UserError(f"catalog {path} is not readable by the worker's user", "fix its permissions")
    else:
        raise UserError(f"unsupported catalog source {mask_url(catalog)!r}", CATALOG_FIX)


def _check_http(url: str, parsed: urllib.parse.SplitResult) -> None:
    from .catalog_http import OriginRedirects, catalog_request

    try:
        with urllib.request.build_opener(OriginRedirects()).open(catalog_request(parsed, "HEAD"), timeout=30):
            return
    except urllib.error.HTTPError as exc:
        if exc.code == 405:  # a server without HEAD: the ingest's GET will tell
            return
        if exc.code >= 500 or exc.code == 429:
            raise TransientError(f"catalog {mask_url(url)} answered HTTP {exc.code}; retrying later") from None
        raise UserError(f"catalog {mask_url(url)} answered HTTP {exc.code}", CATALOG_FIX) from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:  # the ingest's GET names it
        raise TransientError(f"cannot reach catalog {mask_url(url)}: {exc}") from None


def _check_s3(bucket: str, key: str | None, what: str, endpoint_url: str | None) -> None:
    """Credentials present, and the bucket (or object) visible to them."""
    from botocore.exceptions import (ClientError, EndpointConnectionError, NoCredentialsError,
                                     PartialCredentialsError)

    from .s3 import s3_client

    import botocore.session

    if botocore.session.get_session().get_credentials() is None:
        raise UserError(f"no AWS credentials for {what} (s3://{bucket})", CREDENTIALS_FIX)
    client = s3_client(endpoint_url or None)
    try:
        if key:
            client.head_object(Bucket=bucket, Key=key)
        else:
            client.head_bucket(Bucket=bucket)
    except (NoCredentialsError, PartialCredentialsError):
        raise UserError(f"no AWS credentials for {what} (s3://{bucket})", CREDENTIALS_FIX) from None
    except EndpointConnectionError as exc:
        raise TransientError(f"cannot reach S3 for {what}: {exc}") from None
    except ClientError as exc:
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        code = exc.response.get("Error", {}).get("Code", "")
        where = f"s3://{bucket}/{key}" if key else f"s3://{bucket}"
        if status >= 500 or code in ("SlowDown", "Throttling", "RequestTimeout"):
            raise TransientError(f"S3 answered {code or status} for {where}; retrying later") from None
        if status == 404:
            fix = CATALOG_FIX if key else f"create bucket {bucket!r} or fix the target (param target, GALLERY_TARGET, " \
                                          "GENERATOR_PUBLISH__TARGET)"
            raise UserError(f"{what} {where} does not exist", fix) from None
        if status == 403:
            raise UserError(f"access to {what} {where} is denied ({code})",
                            "give the workers' credentials s3:ListBucket/GetObject/PutObject there") from None
        raise UserError(f"S3 refused {what} {where}: {code or status}", CREDENTIALS_FIX) from None
