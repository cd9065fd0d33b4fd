"""Talking to an S3-compatible store: the client, the ranged listing, the record, uploads, deletes, website, CDN.

S3 diffing is by content, not by size and mtime (what ``aws s3 sync`` does, so a
nightly re-render would re-upload everything): the listing gives each object's
ETag, which is the MD5 of its bytes for ordinary uploads; objects whose ETag is
not a plain MD5 (multipart uploads, SSE-KMS) carry the ``x-amz-meta-md5`` we
store on every upload, and the record (record.py) remembers the ETag each upload
got, so while it is unchanged no HEAD is needed.
"""

from __future__ import annotations

import base64
import concurrent.futures
import functools
import hashlib
import io
import random
import threading
import time
from collections import Counter
from typing import Callable, Iterable, NamedTuple

from ..errors import UserError
from .common import PENDING_NAME, STATE_NAME, PublishSettings, Target, Upload, log, upload_body
from .record import Record, RecordTable, StoredRecord

MULTIPART_THRESHOLD = 8 * 1024 * 1024
DELETE_BATCH = 1000  # DeleteObjects takes at most 1000 keys
LIST_PAGE = 1000  # ListObjectsV2 returns at most 1000 keys
# Recorded keys the spot check HEADs (in parallel) to see that the store still holds what the record says.
SAMPLE_KEYS = 8
# Above this many changed paths one wildcard invalidation is cheaper (CloudFront bills per path).
MAX_INVALIDATION_PATHS = 30


def s3_client_for(settings: PublishSettings):
    """generator.s3.s3_client with a connection pool sized for the listing and upload threads."""
    from ..s3 import s3_client

    return s3_client(settings.endpoint_url or None, max_pool_connections=settings.concurrency + 8,
                     parse_timestamps=False)


def s3_failure(target: Target, exc: Exception, during: str = "") -> UserError:
    """A boto3/botocore failure as a UserError, through generator.s3's one mapping of S3 errors."""
    from ..s3 import s3_failure as describe_failure

    problem, fix = describe_failure(exc, target.bucket)
    return UserError(f"publish to {target.uri} failed{during}: {problem}", fix)


def s3_errors() -> tuple[type[Exception], ...]:
    from boto3.exceptions import Boto3Error
    from botocore.exceptions import BotoCoreError, ClientError

    return BotoCoreError, ClientError, Boto3Error


class RequestCounter:
    """Counts HTTP requests (retries included) per S3 operation."""

    def __init__(self):
        self.counts: Counter = Counter()
        self._lock = threading.Lock()

    def __call__(self, event_name: str = "", **_):
        with self._lock:
            self.counts[event_name.rsplit(".", 1)[-1]] += 1


class RemoteObject(NamedTuple):  # a tuple: one per recorded key on every publish
    etag: str
    size: int


def list_remote(client, target: Target, local_keys: Iterable[str] = (), concurrency: int = 8) -> dict[str, RemoteObject]:
    """Every object under the prefix.

    The key space is cut at every 1000th local key and the ranges are listed at the
    same time: as many requests as one paginated listing when the remote mirrors the
    site, but not one round trip after the other. Ranges cover the whole key space,
    so remote keys the site does not have are listed too.
    """
    cuts = [target.prefix + key for key in sorted(local_keys)[LIST_PAGE - 1::LIST_PAGE]]

    def list_range(bounds: tuple[str | None, str | None]) -> list[dict]:
        low, high = bounds  # keys in (low, high]
        found, after = [], low
        while True:
            response = client.list_objects_v2(Bucket=target.bucket, Prefix=target.prefix, MaxKeys=LIST_PAGE,
                                              **({"StartAfter": after} if after else {}))
            contents = response.get("Contents", [])
            for item in contents:
                if high is not None and item["Key"] > high:
                    return found
                found.append(item)
            if not response.get("IsTruncated") or not contents or (high is not None and contents[-1]["Key"] >= high):
                return found
            after = contents[-1]["Key"]

    remote = {}
    for items in parallel(list(zip([None, *cuts], [*cuts, None])), list_range, concurrency):
        for item in items:
            key = item["Key"][len(target.prefix):]
            if key and not key.endswith("/"):
                remote[key] = RemoteObject(item["ETag"].strip('"').lower(), item["Size"])
    return remote



def _get_object(client, target: Target, name: str) -> dict | None:
    """GetObject of one of the publisher's own objects; None when the target has none."""
    from botocore.exceptions import ClientError

    try:
        return client.get_object(Bucket=target.bucket, Key=target.prefix + name)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
            return None
        raise


def get_record(client, target: Target) -> StoredRecord:
    """The ownership record as stored (no record: a body of None), with its pending mark and ETag.

    Pending (``x-amz-meta-pending``, see ``mark_pending``): a publish that started uploading
    listed its changes in the pending object, which belongs to the record until the next write.
    """
    response = _get_object(client, target, STATE_NAME)
    if response is None:
        return StoredRecord(None)
    return StoredRecord(response["Body"].read(), response.get("Metadata", {}).get("pending") == "1",
                        response.get("ETag"))


def get_pending(client, target: Target) -> bytes | None:
    response = _get_object(client, target, PENDING_NAME)
    return response["Body"].read() if response is not None else None


def mark_pending(client, target: Target, changes: Record) -> None:
    """Before the uploads: ``changes`` (the entries the record lacks) in the pending object, then the mark.

    A few KB instead of the whole record. The mark is put on the record by copying it onto
    itself (no bytes sent); the next full write of the record clears it.
    """
    _put_state(client, target, PENDING_NAME, changes)
    client.copy_object(Bucket=target.bucket, Key=target.prefix + STATE_NAME, MetadataDirective="REPLACE",
                       CopySource={"Bucket": target.bucket, "Key": target.prefix + STATE_NAME},
                       Metadata={"pending": "1"}, **_STATE_HEADERS)


def clear_pending(client, target: Target) -> None:
    """After the record is written again (unmarked): the pending object is only litter now."""
    client.delete_object(Bucket=target.bucket, Key=target.prefix + PENDING_NAME)


def read_record(stored: StoredRecord, target: Target, remote: dict[str, RemoteObject],
                settings: PublishSettings) -> Record | None:
    """The stored record of any version (``remote``: the listing, which a version-1 state needs)."""
    return stored.record(f"s3://{target.bucket}/{target.prefix}{STATE_NAME}",
                         {key: obj.etag for key, obj in remote.items()}, settings)


def spot_sample(keys: list[str], count: int) -> list[str]:
    """Which recorded keys the spot check looks at: any, so nights check different parts."""
    return random.sample(keys, min(count, len(keys)))


def spot_check(client, target: Target, keys: list[str], etag_of: Callable[[str], str | None],
               concurrency: int = 8) -> str:
    """HEAD a few recorded keys, chosen at random; "" if the store holds each with its recorded ETag.

    A HEAD costs the same whatever the bucket holds, where a listing from a key on costs
    what the prefix holds on some stores (moto, MinIO). A recorded key missing, or with
    another ETag, means someone changed the target behind the publisher's back, and the
    caller lists everything instead of trusting the record.
    """
    from botocore.exceptions import ClientError

    def head(key: str) -> str | None:
        try:
            return client.head_object(Bucket=target.bucket, Key=target.prefix + key)["ETag"].strip('"').lower()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise

    sample = sorted(spot_sample(keys, SAMPLE_KEYS))
    for key, etag in zip(sample, parallel(sample, head, concurrency)):
        if etag is None:
            return f"{key} is recorded but not in the store"
        if etag != etag_of(key):
            return f"{key} was changed outside the publisher"
    return ""


_STATE_HEADERS = {"ContentType": "application/json", "ContentEncoding": "gzip", "CacheControl": "no-store"}


def _put_state(client, target: Target, name: str, record: Record | RecordTable) -> None:
    client.put_object(Bucket=target.bucket, Key=target.prefix + name, Body=record.to_bytes(compress=True),
                      **_STATE_HEADERS)


# 412: a condition failed; 409: another conditional write was in flight; NoSuchKey: If-Match on a record gone.
RACED_CODES = ("PreconditionFailed", "ConditionalRequestConflict", "NoSuchKey")


class RecordRaced(Exception):
    """The record is not the one this publish read or last wrote: another publish wrote it meanwhile."""


def write_record(client, target: Target, record: Record | RecordTable, expected: str | None) -> str:
    """The whole record, unmarked (a pending mark goes with the old object); returns its new ETag.

    Conditional (S3 conditional writes): only over the record whose ETag is ``expected``, or where
    there is none when ``expected`` is None. Anything else raises RecordRaced and writes nothing.
    A store that refuses the condition as not implemented gets the write without it (and a warning).
    """
    from botocore.exceptions import ClientError

    condition = {"IfMatch": expected} if expected else {"IfNoneMatch": "*"}
    put = functools.partial(client.put_object, Bucket=target.bucket, Key=target.prefix + STATE_NAME,
                            Body=record.to_bytes(compress=True), **_STATE_HEADERS)
    try:
        return put(**condition).get("ETag")
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in RACED_CODES or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") in (409, 412):
            raise RecordRaced(code) from None
        if code != "NotImplemented":
            raise
    log.warning("%s does not take conditional writes: two publishes at once would go undetected", target.uri)
    return put().get("ETag")


def parallel(items: list, work: Callable, concurrency: int) -> list:
    """Run ``work`` over ``items`` with bounded threads; on the first failure stop and re-raise it."""
    if not items:
        return []
    results = [None] * len(items)
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(concurrency, len(items))) as pool:
        futures = {pool.submit(work, item): index for index, item in enumerate(items)}
        try:
            for future in concurrent.futures.as_completed(futures):
                results[futures[future]] = future.result()
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    return results



def upload_one(client, target: Target, upload: Upload, transfer_config) -> str:
    """Upload one file; returns its ETag. The body is re-read, so the metadata matches what is sent."""
    f = upload.file
    body = upload_body(f.path, f.headers)
    digest = hashlib.md5(body)
    extra = {**f.headers, "Metadata": {"md5": digest.hexdigest(), "headers": f.headers_hash}}
    key = target.prefix + f.key
    if len(body) >= MULTIPART_THRESHOLD:
        client.upload_fileobj(io.BytesIO(body), target.bucket, key, ExtraArgs=extra, Config=transfer_config)
        etag = client.head_object(Bucket=target.bucket, Key=key)["ETag"]
    else:
        etag = client.put_object(Bucket=target.bucket, Key=key, Body=body,
                                 ContentMD5=base64.b64encode(digest.digest()).decode(), **extra)["ETag"]
    f.md5, f.upload_size = digest.hexdigest(), len(body)
    return etag.strip('"').lower()


def delete_keys(client, target: Target, keys: list[str]) -> None:
    for start in range(0, len(keys), DELETE_BATCH):
        batch = [{"Key": target.prefix + key} for key in keys[start:start + DELETE_BATCH]]
        response = client.delete_objects(Bucket=target.bucket, Delete={"Objects": batch, "Quiet": True})
        errors = response.get("Errors") or []
        if errors:
            first = errors[0]
            raise UserError(f"publish to {target.uri}: could not delete {len(errors)} files "
                            f"(first: {first.get('Key')}: {first.get('Code')} {first.get('Message')})",
                            "grant s3:DeleteObject on the prefix, then re-run the publish")


def configure_website(client, target: Target, has_404: bool) -> dict:
    from botocore.exceptions import ClientError

    wanted = {"IndexDocument": {"Suffix": "index.html"}}
    if has_404:
        wanted["ErrorDocument"] = {"Key": target.prefix + "404.html"}
    try:
        current = client.get_bucket_website(Bucket=target.bucket)
        current = {k: current[k] for k in ("IndexDocument", "ErrorDocument") if k in current}
    except ClientError:
        current = {}
    if current != wanted:
        client.put_bucket_website(Bucket=target.bucket, WebsiteConfiguration=wanted)
    return wanted


def invalidation_paths(prefix: str, keys: Iterable[str]) -> list[str]:
    """CloudFront paths for changed keys (``d/x/index.html`` also as ``d/x/``); many -> one wildcard."""
    paths = set()
    for key in keys:
        paths.add(f"/{prefix}{key}")
        if key.endswith("index.html"):
            paths.add(f"/{prefix}{key[:-len('index.html')]}")
    if len(paths) > MAX_INVALIDATION_PATHS:
        return [f"/{prefix}*"]
    return sorted(paths)


def invalidate(distribution_id: str, paths: list[str]) -> str:
    import boto3
    from botocore.config import Config

    # CloudFront has its own endpoint (AWS_ENDPOINT_URL still applies); publish.endpoint_url is S3's.
    client = boto3.client("cloudfront", config=Config(retries={"mode": "standard", "max_attempts": 5}))
    reference = "publish-" + hashlib.sha256(f"{time.time_ns()}{paths}".encode()).hexdigest()[:16]
    response = client.create_invalidation(
        DistributionId=distribution_id,
        InvalidationBatch={"Paths": {"Quantity": len(paths), "Items": paths}, "CallerReference": reference})
    return response["Invalidation"]["Id"]

