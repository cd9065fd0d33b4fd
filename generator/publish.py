"""Publish: upload only what changed, in an order that never shows a broken page.

Targets:
  s3://bucket[/prefix]  AWS S3 or any S3-compatible store (``endpoint_url`` / ``AWS_ENDPOINT_URL``)
  file:///abs/dir       a local directory (the embedded default), same diffing, swapped in atomically

S3 diffing is by content, not by size and mtime (what ``aws s3 sync`` does, so a
nightly re-render would re-upload everything): the remote listing gives each
object's ETag, which is the MD5 of its bytes for ordinary uploads; objects whose
ETag is not a plain MD5 (multipart uploads, SSE-KMS) are checked through the
``x-amz-meta-md5`` we store on every upload (one HEAD each, only for those, and
only until the state object below remembers their ETag).

Headers (Content-Type, Cache-Control, Content-Encoding) are a function of the
key and of the header *rules* (settings + type table). The object
``<prefix>.publish-state.json`` records the fingerprint of the rules the last
complete publish used and the ETag -> MD5 of objects whose ETag is not an MD5.
While the rules are unchanged, an object with the same content has the same
headers, so no HEAD is needed; when they change (or the state is missing), each
content-identical object is HEADed once and re-uploaded if the header hash in
its metadata (``x-amz-meta-headers``) differs.

Order (each phase finishes before the next starts, so readers never meet a broken page):
  assets   fingerprinted files, and other non-HTML files except listings (images, fonts, the web manifest)
  pages    new HTML pages, and changed ones that link to no new page (item pages, edited pages)
  indexes  changed HTML pages that link to a new page (pagination, genre pages…), feeds, sitemap, data
  home     the root index.html
  deletes  remote files no longer in the site, capped by ``max_deletes``
A new page is reachable only through a page published after it, and every page a
reader can open links only to files already up. A failed publish stops before
the next phase: the previous index.html and all it links stay intact.

The file:// target is built beside the target (unchanged files hard-linked from
the current tree, changed ones copied) and swapped in with ``replace_directory``.

The summary is returned and written to ``<site parent>/<site name>-publish.manifest.json``
(beside the site, so it never gets published; render owns ``<site>.manifest.json``).
"""

from __future__ import annotations

import argparse
import base64
import concurrent.futures
import dataclasses
import gzip as gzip_lib
import hashlib
import html
import io
import json
import logging
import mimetypes
import os
import posixpath
import re
import shutil
import tempfile
import threading
import time
import urllib.parse
from collections import Counter
from pathlib import Path
from typing import Callable, Iterable

from .artifacts import replace_directory, write_manifest
from .errors import UserError

log = logging.getLogger(__name__)

ACCEPTED_TARGETS = "use s3://bucket/prefix (or s3://bucket) or file:///absolute/dir"
STATE_NAME = ".publish-state.json"
STATE_VERSION = 1
MULTIPART_THRESHOLD = 8 * 1024 * 1024
DELETE_BATCH = 1000  # DeleteObjects takes at most 1000 keys
LIST_PAGE = 1000  # ListObjectsV2 returns at most 1000 keys
# Above this many changed paths one wildcard invalidation is cheaper (CloudFront bills per path).
MAX_INVALIDATION_PATHS = 30
PHASES = ("assets", "pages", "indexes", "home")

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_PLAIN_MD5 = re.compile(r"^[0-9a-f]{32}$")
# Renderer contract: assets/<name>.<hash8>.<ext>
_FINGERPRINT = re.compile(r"\.[0-9a-fA-F]{8,}\.")
_TEMP_FILE = re.compile(r"^\..+\.tmp$")  # artifacts.atomic_open's in-flight files
_HREF = re.compile(rb"""\bhref\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>"']+))""", re.IGNORECASE)
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")

# Python's built-in table only (not /etc/mime.types), so every machine computes the
# same headers and a publish from another worker does not re-upload everything.
_MIME = mimetypes.MimeTypes()
EXTRA_TYPES = {
    ".html": "text/html", ".htm": "text/html", ".css": "text/css", ".js": "text/javascript",
    ".mjs": "text/javascript", ".json": "application/json", ".map": "application/json",
    ".xml": "application/xml", ".atom": "application/atom+xml", ".rss": "application/rss+xml",
    ".webmanifest": "application/manifest+json", ".svg": "image/svg+xml", ".woff2": "font/woff2",
    ".woff": "font/woff", ".txt": "text/plain", ".ico": "image/x-icon", ".webp": "image/webp",
    ".avif": "image/avif", ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
}
TEXT_TYPES = {"application/json", "application/xml", "application/atom+xml", "application/rss+xml",
              "application/manifest+json", "image/svg+xml", "application/javascript", "application/xhtml+xml"}
# Non-fingerprinted data that lists pages (feeds, sitemaps, search data, render's random/ids.js):
# published with the indexes, after the pages they list. Code and styles are fingerprinted.
LISTING_EXTENSIONS = {".xml", ".atom", ".rss", ".json", ".txt", ".js"}


@dataclasses.dataclass
class PublishSettings:
    # file:///abs/dir or s3://bucket/prefix
    target: str = ""
    # S3-compatible endpoint (MinIO, moto); empty = AWS_ENDPOINT_URL or AWS itself.
    endpoint_url: str = ""
    dry_run: bool = False
    # Skip all deletes (with a warning) when more than this many remote files would go.
    max_deletes: int = 256
    force_deletes: bool = False
    # Parallel uploads within a phase.
    concurrency: int = 8
    # gzip text files (Content-Encoding: gzip, fixed mtime so bytes are stable). S3 only.
    gzip: bool = False
    # Cache-Control for HTML, feeds and every file that is not fingerprinted.
    html_cache_control: str = "public, max-age=300"
    # Cache-Control for fingerprinted assets (assets/<name>.<hash8>.<ext>).
    asset_cache_control: str = "public, max-age=31536000, immutable"
    # Set the bucket's static website configuration (index.html, 404.html).
    website: bool = False
    # Invalidate changed paths in this CloudFront distribution after a publish.
    cloudfront_distribution_id: str = ""

    def validate(self) -> None:
        if self.max_deletes < 0:
            raise UserError(f"publish.max_deletes must be >= 0, got {self.max_deletes}", "set it to a count such as 256")
        if not 1 <= self.concurrency <= 64:
            raise UserError(f"publish.concurrency must be between 1 and 64, got {self.concurrency}",
                            "set it to a small number such as 8")
        if self.endpoint_url and not self.endpoint_url.startswith(("http://", "https://")):
            raise UserError(f"publish.endpoint_url must be an http(s) URL, got {self.endpoint_url!r}",
                            "use e.g. http://127.0.0.1:9000")


@dataclasses.dataclass(frozen=True)
class Target:
    uri: str
    kind: str  # "s3" or "file"
    bucket: str = ""
    prefix: str = ""  # "" or "some/prefix/"
    path: Path | None = None


def parse_target(uri: str) -> Target:
    """Validate a target URI; a UserError names the accepted forms."""
    parsed = urllib.parse.urlparse(uri or "")
    if parsed.scheme == "s3":
        bucket = parsed.netloc
        if not bucket:
            raise UserError(f"target {uri!r} has no bucket", ACCEPTED_TARGETS)
        if not _BUCKET.match(bucket):
            raise UserError(f"target {uri!r}: {bucket!r} is not a valid bucket name", ACCEPTED_TARGETS)
        prefix = parsed.path.strip("/")
        if any(part in ("", ".", "..") for part in prefix.split("/")) and prefix:
            raise UserError(f"target {uri!r} has an empty or relative path segment", ACCEPTED_TARGETS)
        return Target(uri, "s3", bucket=bucket, prefix=f"{prefix}/" if prefix else "")
    if parsed.scheme == "file":
        path = urllib.parse.unquote(parsed.path)
        if parsed.netloc not in ("", "localhost") or not path.startswith("/"):
            raise UserError(f"target {uri!r} is not an absolute file URI", ACCEPTED_TARGETS)
        path = Path(os.path.normpath(path))
        if path == Path("/"):
            raise UserError(f"target {uri!r} is the filesystem root", ACCEPTED_TARGETS)
        return Target(uri, "file", path=path)
    what = f"scheme {parsed.scheme!r}" if parsed.scheme else "a bare path"
    raise UserError(f"unsupported publish target {uri!r} ({what})", ACCEPTED_TARGETS)


# --- the local site ---------------------------------------------------------------------------

@dataclasses.dataclass
class LocalFile:
    key: str  # site-relative POSIX path
    path: Path
    size: int  # bytes on disk
    md5: str  # of the bytes uploaded (gzipped when gzip applies)
    upload_size: int
    headers: dict

    @property
    def headers_hash(self) -> str:
        return headers_digest(self.headers)

    @property
    def is_html(self) -> bool:
        return self.key.endswith((".html", ".htm"))

    @property
    def is_listing(self) -> bool:
        return posixpath.splitext(self.key)[1].lower() in LISTING_EXTENSIONS and not is_fingerprinted(self.key)


def is_fingerprinted(key: str) -> bool:
    """Content-hashed names (``site.3f2a9c1b.css``) never change content; HTML URLs are never treated so."""
    name = posixpath.basename(key)
    return bool(_FINGERPRINT.search(name)) and not name.endswith((".html", ".htm"))


def content_type(key: str) -> str:
    ext = posixpath.splitext(key)[1].lower()
    ctype = EXTRA_TYPES.get(ext) or _MIME.types_map[True].get(ext) or _MIME.types_map[False].get(ext)
    ctype = ctype or "application/octet-stream"
    return f"{ctype}; charset=utf-8" if _is_text(ctype) else ctype


def _is_text(ctype: str) -> bool:
    ctype = ctype.split(";")[0]
    return ctype.startswith("text/") or ctype in TEXT_TYPES


def object_headers(key: str, settings: PublishSettings, compress: bool) -> dict:
    ctype = content_type(key)
    headers = {"ContentType": ctype,
               "CacheControl": settings.asset_cache_control if is_fingerprinted(key) else settings.html_cache_control}
    if compress and _is_text(ctype):
        headers["ContentEncoding"] = "gzip"
    return headers


def headers_digest(headers: dict) -> str:
    canonical = {k: headers.get(k) or "" for k in ("ContentType", "CacheControl", "ContentEncoding")}
    return hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()[:16]


def rules_fingerprint(settings: PublishSettings) -> str:
    """Everything but the key that decides an object's headers; equal -> equal headers for equal keys."""
    table = sorted({**_MIME.types_map[False], **_MIME.types_map[True], **EXTRA_TYPES}.items())
    rules = {"v": STATE_VERSION, "html": settings.html_cache_control, "asset": settings.asset_cache_control,
             "gzip": settings.gzip, "types": table, "text": sorted(TEXT_TYPES)}
    return hashlib.sha256(json.dumps(rules, sort_keys=True).encode()).hexdigest()[:16]


def upload_body(path: Path, headers: dict) -> bytes:
    """The exact bytes to upload; gzip with mtime=0 so the same file gives the same bytes and MD5."""
    data = path.read_bytes()
    if headers.get("ContentEncoding") == "gzip":
        data = gzip_lib.compress(data, compresslevel=6, mtime=0)
    return data


def site_paths(site_dir: Path) -> list[tuple[str, Path]]:
    """(key, path) of every file to publish, in key order."""
    paths = []
    for root, dirs, names in os.walk(site_dir):
        dirs.sort()
        for name in sorted(names):
            path = Path(root) / name
            key = path.relative_to(site_dir).as_posix()
            if _TEMP_FILE.match(name) or not path.is_file():
                continue
            if key == STATE_NAME:
                log.warning("ignoring %s: the name is reserved for the publisher's state", key)
                continue
            paths.append((key, path))
    return paths


def describe(paths: list[tuple[str, Path]], settings: PublishSettings, compress: bool) -> list[LocalFile]:
    """Headers and the MD5 of the bytes each file would be uploaded as."""
    files = []
    for key, path in paths:
        headers = object_headers(key, settings, compress)
        body = upload_body(path, headers)
        files.append(LocalFile(key, path, path.stat().st_size, hashlib.md5(body).hexdigest(), len(body), headers))
    return files


def scan_site(site_dir: Path, settings: PublishSettings, compress: bool) -> list[LocalFile]:
    return describe(site_paths(site_dir), settings, compress)


def page_links(key: str, data: bytes) -> set[str]:
    """Site keys a page may link to (``x/`` -> ``x/index.html``; ``x`` -> ``x`` and ``x/index.html``)."""
    base = posixpath.dirname(key)
    links = set()
    for match in _HREF.finditer(data):
        raw = next(group for group in match.groups() if group is not None)
        url = html.unescape(raw.decode("utf-8", "replace")).strip().split("#", 1)[0].split("?", 1)[0]
        if not url or _SCHEME.match(url) or url.startswith("//"):
            continue
        url = urllib.parse.unquote(url)
        path = posixpath.normpath(url.lstrip("/") if url.startswith("/") else posixpath.join(base, url))
        if path == ".":
            path = ""
        if path.startswith(".."):
            continue
        if url.endswith("/") or not path:
            links.add(posixpath.join(path, "index.html"))
        else:
            links.update((path, f"{path}/index.html"))
    return links


def assign_phases(uploads: list["Upload"], new_keys: set[str]) -> None:
    """Put each upload in its phase (see module docstring)."""
    # The home page goes last anyway; every page linking back to it must not make it an index.
    new_html = {u.file.key for u in uploads if u.file.is_html and u.file.key in new_keys} - {"index.html"}
    for upload in uploads:
        f = upload.file
        if f.key == "index.html":
            upload.phase = "home"
        elif f.is_html:
            # A new page is unreachable until a page published after it links to it, so new pages
            # go first whatever they link to; a page readers can already open waits for the new
            # pages it links to.
            waits = f.key not in new_keys and page_links(f.key, f.path.read_bytes()) & new_html
            upload.phase = "indexes" if waits else "pages"
        elif f.is_listing:
            upload.phase = "indexes"
        else:
            upload.phase = "assets"


# --- plans and summaries ----------------------------------------------------------------------

@dataclasses.dataclass
class Upload:
    file: LocalFile
    reason: str
    phase: str = "assets"


@dataclasses.dataclass
class Plan:
    uploads: list[Upload]
    skipped: list[LocalFile]
    deletes: list[str]
    deletes_skipped: list[str]
    warnings: list[str]

    def lines(self) -> list[dict]:
        order = {name: i for i, name in enumerate(PHASES)}
        rows = [{"action": "upload", "key": u.file.key, "reason": u.reason, "phase": u.phase, "bytes": u.file.upload_size}
                for u in sorted(self.uploads, key=lambda u: (order[u.phase], u.file.key))]
        rows += [{"action": "delete", "key": key, "reason": "not in the site", "phase": "deletes"} for key in self.deletes]
        rows += [{"action": "keep", "key": key, "reason": "not in the site, but over max_deletes", "phase": "deletes"}
                 for key in self.deletes_skipped]
        return rows


def _guard_deletes(extra: list[str], settings: PublishSettings, warnings: list[str]) -> tuple[list[str], list[str]]:
    extra = sorted(extra)
    if len(extra) > settings.max_deletes and not settings.force_deletes:
        message = (f"{len(extra)} files are no longer in the site, more than max_deletes={settings.max_deletes}; "
                   f"deleting none (check the site, then pass --force-deletes or raise --max-deletes)")
        log.warning(message)
        warnings.append(message)
        return [], extra
    return extra, []


def _summary(target: Target, files: list[LocalFile], plan: Plan, settings: PublishSettings, started: float,
             deleted: int, requests: Counter | None = None, timings: dict | None = None, **extra) -> dict:
    uploads = plan.uploads
    summary = {
        "target": target.uri,
        "kind": target.kind,
        "dry_run": settings.dry_run,
        "files": len(files),
        "bytes": sum(f.size for f in files),
        "uploaded": 0 if settings.dry_run else len(uploads),
        "uploaded_bytes": 0 if settings.dry_run else sum(u.file.upload_size for u in uploads),
        "to_upload": len(uploads),
        "to_upload_bytes": sum(u.file.upload_size for u in uploads),
        "skipped": len(plan.skipped),
        "skipped_bytes": sum(f.upload_size for f in plan.skipped),
        "deleted": deleted,
        "to_delete": len(plan.deletes),
        "deletes_skipped": len(plan.deletes_skipped),
        "reasons": dict(sorted(Counter(u.reason for u in uploads).items())),
        "phases": {phase: sum(1 for u in uploads if u.phase == phase) for phase in PHASES},
        "requests": dict(sorted((requests or Counter()).items())),
        "requests_total": sum((requests or Counter()).values()),
        "warnings": plan.warnings,
        "seconds": round(time.monotonic() - started, 3),
        "timings": {step: round(seconds, 3) for step, seconds in (timings or {}).items()},
        **extra,
    }
    if settings.dry_run:
        summary["plan"] = plan.lines()
    return summary


# --- S3 ---------------------------------------------------------------------------------------

def _s3_client(settings: PublishSettings):
    """generator.s3.s3_client with a connection pool sized for the listing and upload threads."""
    from .s3 import s3_client

    return s3_client(settings.endpoint_url or None, max_pool_connections=settings.concurrency + 8,
                     parse_timestamps=False)


def _s3_failure(target: Target, exc: Exception, during: str = "") -> UserError:
    from botocore.exceptions import (ClientError, EndpointConnectionError, NoCredentialsError,
                                     PartialCredentialsError)

    from .s3 import s3_error_message

    code = exc.response.get("Error", {}).get("Code", "") if isinstance(exc, ClientError) else ""
    text = str(exc)
    if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
        fix = "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) for the publisher"
    elif isinstance(exc, EndpointConnectionError):
        fix = "check --endpoint-url / publish.endpoint_url / AWS_ENDPOINT_URL and that the store is up"
    elif code == "NoSuchBucket" or "NoSuchBucket" in text:
        fix = f"create the bucket first (aws s3 mb s3://{target.bucket}) or fix the bucket in the target"
    elif code in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AllAccessDisabled") \
            or "AccessDenied" in text:
        fix = (f"use credentials allowed s3:ListBucket, s3:GetObject, s3:PutObject and s3:DeleteObject "
               f"on {target.bucket}")
    else:
        fix = "re-run the publish; what is already published stays intact"
    problem = f"publish to {target.uri} failed{during}: {s3_error_message(exc)}"
    return UserError(problem, fix)


def _s3_errors() -> tuple[type[Exception], ...]:
    from boto3.exceptions import Boto3Error
    from botocore.exceptions import BotoCoreError, ClientError

    return BotoCoreError, ClientError, Boto3Error


class _RequestCounter:
    """Counts HTTP requests (retries included) per S3 operation."""

    def __init__(self):
        self.counts: Counter = Counter()
        self._lock = threading.Lock()

    def __call__(self, event_name: str = "", **_):
        with self._lock:
            self.counts[event_name.rsplit(".", 1)[-1]] += 1


@dataclasses.dataclass
class RemoteObject:
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
    for items in _parallel(list(zip([None, *cuts], [*cuts, None])), list_range, concurrency):
        for item in items:
            key = item["Key"][len(target.prefix):]
            if key and not key.endswith("/"):
                remote[key] = RemoteObject(item["ETag"].strip('"').lower(), item["Size"])
    return remote


def _read_state(client, target: Target, remote: dict) -> dict:
    if STATE_NAME not in remote:
        return {}
    body = client.get_object(Bucket=target.bucket, Key=target.prefix + STATE_NAME)["Body"].read()
    try:
        state = json.loads(body)
    except ValueError:
        return {}
    return state if isinstance(state, dict) and state.get("version") == STATE_VERSION else {}


def _write_state(client, target: Target, state: dict) -> None:
    client.put_object(Bucket=target.bucket, Key=target.prefix + STATE_NAME, ContentType="application/json",
                      CacheControl="no-store", Body=json.dumps(state, sort_keys=True, separators=(",", ":")).encode())


def _parallel(items: list, work: Callable, concurrency: int) -> list:
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


def plan_s3(client, target: Target, files: list[LocalFile], remote: dict[str, RemoteObject],
            settings: PublishSettings) -> tuple[Plan, dict, dict]:
    """Decide what to upload and delete given the listing; returns (plan, state read, state to write after)."""
    old_state = _read_state(client, target, remote)
    rules = rules_fingerprint(settings)
    rules_known = old_state.get("rules") == rules
    known_etags = old_state.get("etags", {})

    uploads, skipped, to_head = [], [], []
    for f in files:
        obj = remote.get(f.key)
        if obj is None:
            uploads.append(Upload(f, "new"))
            continue
        remembered = known_etags.get(f.key)
        if remembered and remembered[0] == obj.etag:
            remote_md5 = remembered[1]
        elif _PLAIN_MD5.match(obj.etag):
            remote_md5 = obj.etag
        else:
            to_head.append(f)  # multipart or SSE-KMS: only our metadata knows the MD5
            continue
        if remote_md5 != f.md5:
            uploads.append(Upload(f, "content changed"))
        elif not rules_known:
            to_head.append(f)  # same bytes; headers may predate the current rules
        else:
            skipped.append(f)

    def head(f: LocalFile) -> dict:
        return client.head_object(Bucket=target.bucket, Key=target.prefix + f.key)

    learned = {}
    for f, response in zip(to_head, _parallel(to_head, head, settings.concurrency)):
        metadata = response.get("Metadata", {})
        etag = remote[f.key].etag
        remote_md5 = metadata.get("md5") or (etag if _PLAIN_MD5.match(etag) else None)
        remote_headers = metadata.get("headers") or headers_digest(response)
        if remote_md5 is None:
            uploads.append(Upload(f, "no checksum"))
        elif remote_md5 != f.md5:
            uploads.append(Upload(f, "content changed"))
        elif remote_headers != f.headers_hash:
            uploads.append(Upload(f, "headers changed"))
        else:
            skipped.append(f)
            if etag != f.md5:
                learned[f.key] = [etag, f.md5]

    warnings: list[str] = []
    local_keys = {f.key for f in files}
    extra = [key for key in remote if key not in local_keys and key != STATE_NAME]
    deletes, deletes_skipped = _guard_deletes(extra, settings, warnings)
    assign_phases(uploads, new_keys={u.file.key for u in uploads if u.file.key not in remote})
    plan = Plan(uploads, skipped, deletes, deletes_skipped, warnings)

    # Remembered non-MD5 ETags that stay valid: skipped files and remote extras that are kept.
    replaced = {u.file.key for u in uploads} | set(deletes)
    etags = {key: value for key, value in known_etags.items()
             if key in remote and remote[key].etag == value[0] and key not in replaced}
    etags.update(learned)
    return plan, old_state, {"version": STATE_VERSION, "rules": rules, "etags": etags}


def _upload_one(client, target: Target, upload: Upload, transfer_config) -> str:
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


def _delete(client, target: Target, keys: list[str]) -> None:
    for start in range(0, len(keys), DELETE_BATCH):
        batch = [{"Key": target.prefix + key} for key in keys[start:start + DELETE_BATCH]]
        response = client.delete_objects(Bucket=target.bucket, Delete={"Objects": batch, "Quiet": True})
        errors = response.get("Errors") or []
        if errors:
            first = errors[0]
            raise UserError(f"publish to {target.uri}: could not delete {len(errors)} files "
                            f"(first: {first.get('Key')}: {first.get('Code')} {first.get('Message')})",
                            "grant s3:DeleteObject on the prefix, then re-run the publish")


def _configure_website(client, target: Target, has_404: bool) -> dict:
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


def _invalidate(distribution_id: str, paths: list[str]) -> str:
    import boto3
    from botocore.config import Config

    # CloudFront has its own endpoint (AWS_ENDPOINT_URL still applies); publish.endpoint_url is S3's.
    client = boto3.client("cloudfront", config=Config(retries={"mode": "standard", "max_attempts": 5}))
    reference = "publish-" + hashlib.sha256(f"{time.time_ns()}{paths}".encode()).hexdigest()[:16]
    response = client.create_invalidation(
        DistributionId=distribution_id,
        InvalidationBatch={"Paths": {"Quantity": len(paths), "Items": paths}, "CallerReference": reference})
    return response["Invalidation"]["Id"]


def _publish_s3(target: Target, paths: list[tuple[str, Path]], settings: PublishSettings, started: float,
                client=None) -> dict:
    from boto3.s3.transfer import TransferConfig

    client = client or _s3_client(settings)
    counter = _RequestCounter()
    client.meta.events.register("before-send.s3", counter)
    errors = _s3_errors()
    extra = {"invalidation": None, "website": None}
    timings: dict[str, float] = {}
    files: list[LocalFile] = []
    phase, done = "", 0

    def timed_listing() -> dict[str, RemoteObject]:
        clock = time.monotonic()
        remote = list_remote(client, target, [key for key, _ in paths], settings.concurrency)
        timings["list"] = time.monotonic() - clock
        return remote

    try:
        # The listing mostly waits on the store; hash the local files meanwhile.
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as background:
            listing = background.submit(timed_listing)
            clock = time.monotonic()
            files = describe(paths, settings, compress=settings.gzip)
            timings["scan"] = time.monotonic() - clock
            remote = listing.result()
        clock = time.monotonic()
        plan, old_state, state = plan_s3(client, target, files, remote, settings)
        timings["plan"], clock = time.monotonic() - clock, time.monotonic()
        if settings.dry_run:
            return _summary(target, files, plan, settings, started, 0, counter.counts, timings, **extra)
        if plan.uploads and old_state.get("rules") not in (None, "", state["rules"]):
            # New header rules: mark them unknown first, so an interrupted run re-checks headers next time.
            _write_state(client, target, {**old_state, "rules": ""})
        transfer = TransferConfig(multipart_threshold=MULTIPART_THRESHOLD, multipart_chunksize=MULTIPART_THRESHOLD,
                                  max_concurrency=4)
        for phase in PHASES:
            batch = [u for u in plan.uploads if u.phase == phase]
            if batch:
                log.info("publish %s: phase %s, %d files", target.uri, phase, len(batch))
            etags = _parallel(batch, lambda u: _upload_one(client, target, u, transfer), settings.concurrency)
            for upload, etag in zip(batch, etags):
                if etag != upload.file.md5:  # multipart or SSE-KMS: remember which MD5 this ETag stands for
                    state["etags"][upload.file.key] = [etag, upload.file.md5]
            done += len(batch)
        timings["upload"], clock = time.monotonic() - clock, time.monotonic()
        phase = "deletes"
        _delete(client, target, plan.deletes)
        if state != old_state:
            _write_state(client, target, state)
        phase = "website"
        if settings.website:
            extra["website"] = _configure_website(client, target, any(f.key == "404.html" for f in files))
        timings["finish"] = time.monotonic() - clock
    except errors as exc:
        during = f" in phase {phase!r} after {done} of {len(plan.uploads)} uploads" if phase else ""
        raise _s3_failure(target, exc, during) from None
    except OSError as exc:
        raise UserError(f"publish to {target.uri} failed reading the site: {exc}",
                        "do not render while publishing; re-run the publish") from None
    finally:
        client.meta.events.unregister("before-send.s3", counter)

    changed = [u.file.key for u in plan.uploads if not is_fingerprinted(u.file.key)] + plan.deletes
    if settings.cloudfront_distribution_id and changed:
        paths = invalidation_paths(target.prefix, changed)
        try:
            extra["invalidation"] = {"id": _invalidate(settings.cloudfront_distribution_id, paths), "paths": paths}
        except errors as exc:
            message = f"CloudFront invalidation failed (the site itself is published): {exc}"
            log.warning(message)
            plan.warnings.append(message)
    return _summary(target, files, plan, settings, started, len(plan.deletes), counter.counts, timings, **extra)


# --- file:// ----------------------------------------------------------------------------------

def _md5_file(path: Path) -> str:
    digest = hashlib.md5()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _existing_tree(root: Path) -> dict[str, Path]:
    if not root.exists():
        return {}
    if not root.is_dir():
        raise UserError(f"publish target {root} exists and is not a directory", "pick a directory path for file://")
    tree = {}
    for dirpath, _, names in os.walk(root):
        for name in names:
            path = Path(dirpath) / name
            tree[path.relative_to(root).as_posix()] = path
    return tree


def _copy_file(source: Path, destination: Path) -> None:
    shutil.copyfile(source, destination)


def _link_or_copy(source: Path, destination: Path) -> None:
    """Reuse an unchanged published file: a hard link costs no bytes (we never write files in place)."""
    try:
        os.link(source, destination)
    except OSError:
        _copy_file(source, destination)


def _publish_file(target: Target, paths: list[tuple[str, Path]], settings: PublishSettings, started: float) -> dict:
    root = target.path
    clock = time.monotonic()
    files = describe(paths, settings, compress=False)  # a directory serves files as they are
    timings = {"scan": time.monotonic() - clock}
    clock = time.monotonic()
    existing = _existing_tree(root)
    uploads, skipped = [], []
    for f in files:
        old = existing.get(f.key)
        if old is None:
            uploads.append(Upload(f, "new"))
        elif old.stat().st_size != f.size or _md5_file(old) != f.md5:
            uploads.append(Upload(f, "content changed"))
        else:
            skipped.append(f)
    warnings: list[str] = []
    local_keys = {f.key for f in files}
    deletes, kept = _guard_deletes([key for key in existing if key not in local_keys], settings, warnings)
    assign_phases(uploads, new_keys={u.file.key for u in uploads if u.file.key not in existing})
    plan = Plan(uploads, skipped, deletes, kept, warnings)
    timings["plan"], clock = time.monotonic() - clock, time.monotonic()
    if settings.dry_run or not (uploads or deletes):
        return _summary(target, files, plan, settings, started, 0, timings=timings)

    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{root.name}.staging-", dir=root.parent))
    try:
        os.chmod(staging, (root.stat().st_mode & 0o7777) if root.exists() else 0o755)
        changed = {u.file.key for u in uploads}
        for f in files:
            destination = staging / f.key
            destination.parent.mkdir(parents=True, exist_ok=True)
            if f.key in changed:
                _copy_file(f.path, destination)
            else:
                _link_or_copy(existing[f.key], destination)
        for key in kept:
            (staging / key).parent.mkdir(parents=True, exist_ok=True)
            _link_or_copy(existing[key], staging / key)
        replace_directory(staging, root)
    except OSError as exc:
        raise UserError(f"publish to {target.uri} failed: {exc}",
                        "fix the problem and re-run; the published directory was not touched") from None
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    timings["upload"] = time.monotonic() - clock
    return _summary(target, files, plan, settings, started, len(deletes), timings=timings)


# --- the stage --------------------------------------------------------------------------------

def manifest_output(site_dir: Path) -> Path:
    """write_manifest() output path whose manifest is ``<site parent>/<site name>-publish.manifest.json``."""
    return site_dir.parent / f"{site_dir.name}-publish.json"


def publish(site_dir: str | os.PathLike, target: str, settings: PublishSettings | None = None, *, client=None) -> dict:
    """Publish the rendered site at ``site_dir`` to ``target``; returns the summary (also the manifest).

    ``client``: an S3 client to use instead of building one (tests hook botocore events on it).
    """
    started = time.monotonic()
    settings = dataclasses.replace(settings or PublishSettings(), target=target)
    settings.validate()
    parsed = parse_target(target)
    site = Path(site_dir).expanduser().resolve()
    if not site.is_dir():
        raise UserError(f"site directory not found: {site}", "render the site first or pass --site DIR")
    if parsed.kind == "file" and (parsed.path == site or site in parsed.path.parents or parsed.path in site.parents):
        raise UserError(f"publish target {parsed.path} overlaps the site directory {site}",
                        "publish to a directory outside the rendered site")
    paths = site_paths(site)
    if not paths:
        raise UserError(f"site directory {site} has no files", "render the site first")
    if parsed.kind == "s3":
        summary = _publish_s3(parsed, paths, settings, started, client=client)
    else:
        summary = _publish_file(parsed, paths, settings, started)
        if settings.gzip:
            message = "gzip applies to S3 targets only (a directory serves files as they are); ignored"
            log.warning(message)
            summary["warnings"].append(message)
    log.debug("publish %s: %s", target, summary_line(summary))
    return write_manifest(manifest_output(site), "publish", **summary)


def summary_line(summary: dict) -> str:
    def size(n: int) -> str:
        return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n / 1e3:.1f} kB"

    if summary["dry_run"]:
        head = f"dry run: would upload {summary['to_upload']} ({size(summary['to_upload_bytes'])}), "
        tail = f"delete {summary['to_delete']}"
    else:
        head = f"uploaded {summary['uploaded']} ({size(summary['uploaded_bytes'])}), "
        tail = f"deleted {summary['deleted']}"
    kept = f", kept {summary['deletes_skipped']} over max-deletes" if summary["deletes_skipped"] else ""
    requests = f", {summary['requests_total']} requests" if summary["kind"] == "s3" else ""
    return f"{head}skipped {summary['skipped']} unchanged, {tail}{kept}{requests} in {summary['seconds']:.1f} s"


def add_cli(subparsers) -> None:
    parser = subparsers.add_parser(
        "publish", parents=[subparsers.common],
        help="upload what changed to s3://bucket/prefix or file:///dir",
        description="Publish a rendered site: upload only new or changed files (by content), in the order "
        "assets, pages, indexes/feeds/sitemap, index.html, then delete files no longer in the site. "
        "The summary goes to <site>-publish.manifest.json beside the site.",
    )
    parser.add_argument("--site", required=True, metavar="DIR", help="the rendered site directory")
    parser.add_argument("--target", metavar="URI", help="s3://bucket/prefix or file:///abs/dir (default: publish.target)")
    parser.add_argument("--dry-run", action="store_true", default=None, help="print the plan; do not touch the target")
    parser.add_argument("--max-deletes", type=int, metavar="N", help="skip deletes when more than N (default 256)")
    parser.add_argument("--force-deletes", action="store_true", default=None, help="delete even over --max-deletes")
    parser.add_argument("--endpoint-url", metavar="URL", help="S3-compatible endpoint, e.g. http://127.0.0.1:9000")
    parser.add_argument("--gzip", action=argparse.BooleanOptionalAction, default=None,
                        help="gzip text files with Content-Encoding: gzip (S3 only)")
    parser.add_argument("--concurrency", type=int, metavar="N", help="parallel uploads (default 8)")
    parser.add_argument("--website", action="store_true", default=None,
                        help="set the bucket's website configuration (index.html, 404.html)")
    parser.add_argument("--cloudfront-distribution-id", metavar="ID", help="invalidate changed paths in this distribution")
    parser.set_defaults(func=_cli)


def _cli(args, config) -> int:
    from .config import with_overrides

    config = with_overrides(config, publish={
        "target": args.target, "dry_run": args.dry_run, "max_deletes": args.max_deletes,
        "force_deletes": args.force_deletes, "endpoint_url": args.endpoint_url, "gzip": args.gzip,
        "concurrency": args.concurrency, "website": args.website,
        "cloudfront_distribution_id": args.cloudfront_distribution_id})
    settings = config.publish
    if not settings.target:
        raise UserError("no publish target given", "pass --target s3://bucket/prefix or file:///abs/dir")
    summary = publish(args.site, settings.target, settings)
    for row in summary.get("plan", []):
        print(f"{row['action']:<6} {row['key']}  ({row['reason']}{', ' + row['phase'] if row['action'] == 'upload' else ''})")
    print(f"{settings.target}: {summary_line(summary)}")
    return 0
