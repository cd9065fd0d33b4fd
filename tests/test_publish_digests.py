"""The local side of a publish follows the change too: the digest cache beside the site spares re-reading
files that are still the same file (size, mtime, inode), and --verify trusts no cache."""

from __future__ import annotations

import hashlib
import os
import time

import generator.publish.common as publish_common
from generator.publish import PublishSettings, publish
from generator.publish.digests import DigestCache, cache_path

from test_publish import build_site, catalog, remote_files, tree

HOUR_NS = 3600 * 10**9


def age(site, keys=None) -> None:
    """Set the files' mtimes an hour back, as a night's render leaves them before the next publish."""
    for path in site.rglob("*"):
        if path.is_file() and (keys is None or path.relative_to(site).as_posix() in keys):
            os.utime(path, ns=(time.time_ns() - HOUR_NS,) * 2)


def counting_reads(monkeypatch) -> list[str]:
    read = []
    real = publish_common.upload_body

    def upload_body(path, headers):
        read.append(os.path.basename(path))
        return real(path, headers)

    monkeypatch.setattr(publish_common, "upload_body", upload_body)
    return read


def test_only_new_or_rewritten_files_are_read(tmp_path, monkeypatch):
    site, public = tmp_path / "site", tmp_path / "public"
    items = catalog(20)
    files = build_site(site, items)
    age(site)
    first = publish(site, f"file://{public}", PublishSettings())
    assert first["hashed"] == len(files) and cache_path(site).is_file()

    reads = counting_reads(monkeypatch)
    again = publish(site, f"file://{public}", PublishSettings())
    assert again["hashed"] == 0 and reads == [] and again["uploaded"] == 0

    page = site / "d" / items[3][0] / "index.html"
    page.write_bytes(page.read_bytes().replace(b"</body>", b"<!-- edited --></body>"))
    age(site, {f"d/{items[3][0]}/index.html"})
    changed = publish(site, f"file://{public}", PublishSettings())
    assert changed["hashed"] == 1 and changed["uploaded"] == 1 and tree(public) == tree(site)


def test_a_fresh_file_is_not_cached_and_a_new_inode_is_read(tmp_path):
    site, public = tmp_path / "site", tmp_path / "public"
    files = build_site(site, catalog(10))
    age(site)
    (site / "robots.txt").write_bytes(b"User-agent: x\n")  # written just now: a second write could share its mtime
    first = publish(site, f"file://{public}", PublishSettings())
    racy = DigestCache.load(cache_path(site), "plain").entries["robots.txt"]
    assert racy[1] == -1 and racy[3] == hashlib.md5(b"User-agent: x\n").hexdigest()  # kept, but never matches a stat
    assert publish(site, f"file://{public}", PublishSettings())["hashed"] == 1

    # Same bytes, size and mtime, but another file (a copy replaced it): read again.
    stat = (site / "feed.xml").stat()
    os.replace(site / "feed.xml", tmp_path / "old-feed.xml")
    (site / "feed.xml").write_bytes(files["feed.xml"])
    os.utime(site / "feed.xml", ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert publish(site, f"file://{public}", PublishSettings())["hashed"] == 2  # feed.xml, robots.txt
    assert first["uploaded"] == len(files)


def test_verify_reads_everything_and_finds_what_the_cache_hides(tmp_path, bucket, s3):
    site = tmp_path / "site"
    build_site(site, catalog(10))
    age(site)
    target = f"s3://{bucket}/g"
    publish(site, target, PublishSettings())
    # Same size, same inode, mtime set back on purpose: the accepted risk the README names.
    path, stat = site / "robots.txt", (site / "robots.txt").stat()
    with path.open("r+b") as handle:
        handle.write(b"user")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert publish(site, target, PublishSettings())["uploaded"] == 0

    verified = publish(site, target, PublishSettings(verify=True))
    assert verified["hashed"] == verified["files"] and verified["reasons"] == {"content changed": 1}
    assert remote_files(s3, bucket, "g/")["robots.txt"] == path.read_bytes()


def test_file_target_verify_reads_the_published_files(tmp_path):
    site, public = tmp_path / "site", tmp_path / "public"
    build_site(site, catalog(10))
    publish(site, f"file://{public}", PublishSettings())
    (public / "robots.txt").write_bytes(b"User-agent: y\n")  # edited in the target, same size
    assert publish(site, f"file://{public}", PublishSettings())["uploaded"] == 0  # the record is trusted
    verified = publish(site, f"file://{public}", PublishSettings(verify=True))
    assert verified["uploaded"] == 1 and tree(public) == tree(site)


def test_a_broken_or_foreign_cache_means_read_everything(tmp_path):
    site, public = tmp_path / "site", tmp_path / "public"
    files = build_site(site, catalog(10))
    age(site)
    publish(site, f"file://{public}", PublishSettings())
    cache_path(site).write_text("{not json")
    assert publish(site, f"file://{public}", PublishSettings())["hashed"] == len(files)
    assert publish(site, f"file://{public}", PublishSettings())["hashed"] == 0  # rewritten by the last one
    plain = DigestCache.load(cache_path(site), "plain")
    assert plain.entries and not DigestCache.load(cache_path(site), "gzip-6-mtime-0").entries
