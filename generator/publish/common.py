"""What every part of the publisher shares: settings, targets, the local files and their headers, plans.

Imports nothing else from the package but the digest cache, so the plan, the S3 and the
file:// backends and the stage all import it without an import circle.
"""

from __future__ import annotations

import dataclasses
import gzip as gzip_lib
import hashlib
import json
import logging
import mimetypes
import os
import posixpath
import re
import urllib.parse
from pathlib import Path

from ..errors import UserError
from ..redact import split_url
from ..settings import setting
from ..site_journal import Journal
from .digests import DigestCache, cache_path

log = logging.getLogger("generator.publish")

ACCEPTED_TARGETS = "use s3://bucket/prefix (or s3://bucket) or file:///absolute/dir"
# The ownership record, kept in the target itself (see record.py); never part of a site.
STATE_NAME = ".publish-state.json"
# What an S3 publish is about to upload, written instead of the whole record before its uploads (s3_store).
PENDING_NAME = ".publish-state.pending.json"
PHASES = ("assets", "pages", "indexes", "home")

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
# Renderer contract: assets/<name>.<hash8>.<ext>
_FINGERPRINT = re.compile(r"\.[0-9a-fA-F]{8,}\.")
_TEMP_FILE = re.compile(r"^\..+\.tmp$")  # artifacts.atomic_open's in-flight files

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
    target: str = setting("", "where to publish: file:///abs/dir or s3://bucket/prefix")
    endpoint_url: str = setting("", "S3-compatible endpoint (MinIO, moto); empty = AWS_ENDPOINT_URL or AWS itself")
    dry_run: bool = setting(False, "print the plan (uploads and deletes with reasons) without touching the target")
    max_deletes: int = setting(256, "if more published files than this would be deleted, delete none "
                               "(a warning says so) unless force_deletes is set")
    force_deletes: bool = setting(False, "delete even when more than max_deletes files would go")
    adopt: bool = setting(False, "take over the files already in a target this gallery has not published "
                          "(they may be overwritten or deleted); a first publish into a non-empty target needs it")
    verify: bool = setting(False, "trust no cache: re-read every site file (not the digest cache) and check the "
                           "target itself (S3: list it all, a request per 1000 files; file://: read every file), "
                           "finding changes made behind the publisher's back")
    concurrency: int = setting(8, "parallel uploads within one phase (assets, pages, indexes, home run in turn)")
    gzip: bool = setting(False, "gzip text files (HTML, CSS, JS, JSON, XML, SVG...) with Content-Encoding: gzip "
                         "and a fixed mtime, so unchanged files keep their bytes; S3 targets only")
    html_cache_control: str = setting("public, max-age=300",
                                      "Cache-Control of HTML, feeds, sitemap and any file that is not fingerprinted")
    asset_cache_control: str = setting("public, max-age=31536000, immutable",
                                       "Cache-Control of fingerprinted assets (assets/<name>.<hash8>.<ext>)")
    website: bool = setting(False, "set the bucket's static website configuration (index.html, 404.html)")
    cloudfront_distribution_id: str = setting("", "CloudFront distribution whose changed paths are "
                                              "invalidated after a publish; empty = none")

    def validate(self) -> None:
        if self.max_deletes < 0:
            raise UserError(f"publish.max_deletes must be >= 0, got {self.max_deletes}", "set it to a count such as 256")
        if not 1 <= self.concurrency <= 64:
            raise UserError(f"publish.concurrency must be between 1 and 64, got {self.concurrency}",
                            "set it to a small number such as 8")
        endpoint = split_url(self.endpoint_url, "publish.endpoint_url", "use e.g. http://127.0.0.1:9000")
        if self.endpoint_url and (endpoint.scheme not in ("http", "https") or not endpoint.netloc):
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
    parsed = split_url(uri or "", "target", ACCEPTED_TARGETS)
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


class SiteFileGone(Exception):
    """A file the publish was told of (by render's journal or the digest cache) is not in the site folder.

    The folder is the truth: the stage walks it and publishes again what it holds (``stage.publish``).
    """


# --- the local site and its headers -----------------------------------------------------------

@dataclasses.dataclass(slots=True)  # slots: 100k of them are built on every publish
class LocalFile:
    key: str  # site-relative POSIX path
    source: str  # its path (a string: on a 100k-file site, Path objects cost more than the scan)
    size: int  # bytes on disk
    md5: str  # of the bytes uploaded (gzipped when gzip applies)
    upload_size: int
    headers: dict
    headers_hash: str = ""  # headers_digest(headers), computed once per header set by describe()

    def __post_init__(self):
        self.headers_hash = self.headers_hash or headers_digest(self.headers)

    @property
    def path(self) -> Path:
        return Path(self.source)

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
    """Everything but the key that decides an object's headers; equal -> equal headers for equal keys.

    Only read from a version-1 publish state (record.py), which recorded rules instead of per-file headers.
    """
    table = sorted({**_MIME.types_map[False], **_MIME.types_map[True], **EXTRA_TYPES}.items())
    rules = {"v": 1, "html": settings.html_cache_control, "asset": settings.asset_cache_control,
             "gzip": settings.gzip, "types": table, "text": sorted(TEXT_TYPES)}
    return hashlib.sha256(json.dumps(rules, sort_keys=True).encode()).hexdigest()[:16]


def upload_body(path: str | Path, headers: dict) -> bytes:
    """The exact bytes to upload; gzip with mtime=0 so the same file gives the same bytes and MD5."""
    with open(path, "rb") as handle:
        data = handle.read()
    if headers.get("ContentEncoding") == "gzip":
        data = gzip_lib.compress(data, compresslevel=6, mtime=0)
    return data


def site_paths(site_dir: Path) -> list[tuple[str, str]]:
    """(key, path) of every file to publish, in key order."""
    paths = []
    # scandir's entries know file from folder without a stat each; strings, not Paths, until
    # the end (on a 100k-file site path arithmetic costs more than the walk).
    pending = [("", str(site_dir))]
    while pending:
        prefix, folder = pending.pop()
        with os.scandir(folder) as entries:
            listed = list(entries)
        for entry in listed:
            key = prefix + entry.name
            if entry.is_dir(follow_symlinks=False):  # as os.walk: a linked folder is not descended
                pending.append((key + "/", entry.path))
            elif _TEMP_FILE.match(entry.name) or not entry.is_file():
                continue
            elif key in (STATE_NAME, PENDING_NAME):
                log.warning("ignoring %s: the name is reserved for the publisher's state", key)
            else:
                paths.append((key, entry.path))
    paths.sort()
    return paths


def body_rule(compress: bool) -> str:
    """What makes the upload bytes from a file's bytes (the digest cache holds MD5s for one rule)."""
    return "gzip-6-mtime-0" if compress else "plain"


def describe(paths: list[tuple[str, str]], settings: PublishSettings, compress: bool,
             cache: DigestCache | None = None) -> list[LocalFile]:
    """Headers and the MD5 of the bytes each file would be uploaded as.

    ``cache`` (digests.py): files it knows are only stat-ed, not read (and those render's journal
    vouches for, not even stat-ed); the others are read, hashed and recorded in it, and it is
    saved for the next publish.
    """
    files = []
    append, stat_of = files.append, os.stat
    lookup = cache.lookup if cache is not None else lambda key, stat: None
    vouched = cache.vouched if cache is not None else {}
    # Headers depend on the extension and the fingerprint only: one dict (never modified) per pair.
    rules: dict[tuple[str, bool], tuple[dict, str]] = {}
    for key, path in paths:
        name, dot = key.rfind("/") + 1, key.rfind(".")
        # posixpath.splitext(key)[1] without its per-call cost: no extension for a name of dots and suffix
        ext = key[dot:].lower() if dot > name and key[name:dot].lstrip(".") else ""
        rule = (ext, _FINGERPRINT.search(key, name) is not None)
        if rule not in rules:
            headers = object_headers(key, settings, compress)
            rules[rule] = headers, headers_digest(headers)
        headers, digest = rules[rule]
        entry = vouched.get(key)
        if entry is not None:  # render's journal says this is the very file hashed last time
            append(LocalFile(key, path, entry[0], entry[3], entry[4], headers, digest))
            continue
        stat = stat_of(path)
        known = lookup(key, stat)
        if known is None:
            body = upload_body(path, headers)
            known = hashlib.md5(body).hexdigest(), len(body)
            if cache is not None:
                cache.store(key, stat, *known)
        append(LocalFile(key, path, stat.st_size, known[0], known[1], headers, digest))
    if cache is not None:
        cache.save(len(files))
    return files


@dataclasses.dataclass
class SiteFiles:
    """The rendered site as publish sees it: what render declared (its generation and journal), and
    its files, from the journal and the digest cache or from a walk, listed only when asked."""

    root: Path
    body_rule: str  # of the digest cache (body_rule())
    trust_cache: bool = True  # False: --verify, every file is read again
    generation: str | None = None  # render's (generator.site_journal)
    journal: Journal | None = None
    rendered_bytes: int = 0
    _paths: list[tuple[str, str]] | None = None
    _cache: DigestCache | None = None

    @property
    def cache(self) -> DigestCache:
        """The digest cache beside the site, loaded when first needed (an S3 publish that follows the
        journal never needs it)."""
        if self._cache is None:
            self._cache = DigestCache.load(cache_path(self.root), self.body_rule, trust=self.trust_cache)
            self._cache.site_generation = self.generation
        return self._cache

    def paths(self) -> list[tuple[str, str]]:
        if self._paths is None:
            self._paths = self.cache.follow(self.journal, self.root) or site_paths(self.root)
            if not self._paths:
                raise UserError(f"site directory {self.root} has no files", "render the site first")
        return self._paths

    @property
    def listed(self) -> bool:
        return self._paths is not None


def scan_site(site_dir: Path, settings: PublishSettings, compress: bool) -> list[LocalFile]:
    return describe(site_paths(site_dir), settings, compress)


# --- plans ------------------------------------------------------------------------------------

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
    # Files in the target this gallery did not publish and the site does not have: left alone.
    foreign: list[str] = dataclasses.field(default_factory=list)

    def lines(self) -> list[dict]:
        order = {name: i for i, name in enumerate(PHASES)}
        rows = [{"action": "upload", "key": u.file.key, "reason": u.reason, "phase": u.phase, "bytes": u.file.upload_size}
                for u in sorted(self.uploads, key=lambda u: (order[u.phase], u.file.key))]
        rows += [{"action": "delete", "key": key, "reason": "not in the site", "phase": "deletes"} for key in self.deletes]
        rows += [{"action": "keep", "key": key, "reason": "not in the site, but over max_deletes", "phase": "deletes"}
                 for key in self.deletes_skipped]
        return rows
