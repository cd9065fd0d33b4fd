"""What may be shown of a location: one rule for reports, pages, manifests and logs.

A catalog or target can be a presigned URL (``X-Amz-Signature``, ``X-Amz-Security-Token``),
a ``user:pass@`` URL or an absolute local path. Nothing of that is the reader's business:
URLs lose their userinfo and query string, local paths keep only their file name.
"""

from __future__ import annotations

import urllib.parse
from pathlib import PurePath


def mask_url(value: str) -> str:
    """A URL without its secrets: userinfo and the query string (signatures, tokens) are dropped."""
    try:
        parsed = urllib.parse.urlsplit(value)
    except ValueError:  # e.g. an unclosed IPv6 bracket: show nothing of it but the scheme
        return value.split("://", 1)[0] + "://(unparseable URL)" if "://" in value else "(unparseable URL)"
    if not parsed.scheme or not parsed.netloc:
        return value
    host = parsed.netloc.rpartition("@")[2]  # as written: a bad port must not make the redaction fail
    return urllib.parse.urlunsplit((parsed.scheme, host, parsed.path, "", ""))


def split_url(value: str, what: str, fix: str) -> urllib.parse.SplitResult:
    """``urlsplit(value)`` for a URL the user gave (catalog, target, endpoint), its port checked too.

    ``urlsplit`` raises ValueError for an unclosed IPv6 bracket and ``.port`` for a port that is
    not a number below 65536: both become one UserError naming ``what`` (secrets masked) and ``fix``.
    """
    from .errors import UserError

    try:
        parsed = urllib.parse.urlsplit(value)
        parsed.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        raise UserError(f"bad {what} {mask_url(value)!r}: {exc}", fix) from None
    return parsed


def public_label(source: str) -> str:
    """A label safe to publish for a catalog source: ``catalog.csv`` or ``https://host/path/catalog.csv``."""
    source = str(source)
    try:
        parsed = urllib.parse.urlsplit(source)
    except ValueError:
        return mask_url(source)
    if parsed.scheme in ("http", "https", "s3") and parsed.netloc:
        return mask_url(source)
    if parsed.scheme == "file":
        source = urllib.parse.unquote(parsed.path)
    return PurePath(source).name or "catalog"
