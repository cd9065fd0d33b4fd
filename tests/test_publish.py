"""Publish stage against a real S3-compatible HTTP server (moto server on loopback) and file:// targets."""

from __future__ import annotations

import gzip
import hashlib
import os
import posixpath
import re
import shutil
from pathlib import Path

import pytest
from botocore.exceptions import BotoCoreError

import generator.publish as publish_module
import generator.publish.local as publish_local
import generator.publish.s3_store as publish_s3_store
from generator.errors import UserError
from generator.publish import PublishSettings, parse_target, publish
from generator.publish.common import PENDING_NAME

from conftest import assert_clean_error, run_cli

CSS = "body { font-family: sans-serif; }\n"
CSS_NAME = f"assets/site.{hashlib.sha256(CSS.encode()).hexdigest()[:8]}.css"
FONT_NAME = "assets/font.0badc0de.woff2"


# --- a small rendered site, shaped like render's output ---------------------------------------

def item_ids(count: int, start: int = 0) -> list[str]:
    return [hashlib.sha256(f"item-{n}".encode()).hexdigest()[:10] for n in range(start, start + count)]


def build_site(root: Path, items: list[tuple[str, str]], per_page: int = 10, css: str = CSS) -> dict[str, bytes]:
    """Write a site for ``items`` (id, text), newest first; returns {key: bytes}. Rewrites everything."""
    files: dict[str, bytes] = {}
    css_name = f"assets/site.{hashlib.sha256(css.encode()).hexdigest()[:8]}.css"

    def page(key: str, body: str) -> None:
        depth = key.count("/")
        up = "../" * depth
        files[key] = (f'<!doctype html><html><head><link rel="stylesheet" href="{up}{css_name}">'
                      f'<link rel="manifest" href="{up}site.webmanifest"></head><body>'
                      f'<a href="{up or "./"}">Home</a>{body}</body></html>\n').encode()

    pages = [items[i:i + per_page] for i in range(0, len(items), per_page)] or [[]]

    def page_key(number: int) -> str:
        return "index.html" if number == 1 else f"page/{number}/index.html"

    for number, chunk in enumerate(pages, start=1):
        key = page_key(number)
        up = "../" * key.count("/")
        listing = "".join(f'<li><a href="{up}d/{id_}/">{text}</a></li>' for id_, text in chunk)
        nav = "".join(f'<a href="{up}{page_key(n)[:-len("index.html")] or "./"}">{n}</a>'
                      for n in (number - 1, number + 1) if 1 <= n <= len(pages))
        extra = f'<a href="{up}feed.xml">feed</a><a href="{up}search.json">search</a>' if number == 1 else ""
        page(key, f"<ul>{listing}</ul>{nav}{extra}")
    for index, (id_, text) in enumerate(items):
        neighbours = "".join(f'<a href="../{items[j][0]}/">{label}</a>'
                             for j, label in ((index - 1, "prev"), (index + 1, "next")) if 0 <= j < len(items))
        page(f"d/{id_}/index.html", f"<p>{text}</p>{neighbours}")
    page("404.html", "<p>not found</p>")
    files[css_name] = css.encode()
    files[FONT_NAME] = bytes(range(256)) * 4
    files["site.webmanifest"] = b'{"name": "gallery"}\n'
    files["icon.svg"] = b'<svg xmlns="http://www.w3.org/2000/svg"/>\n'
    files["feed.xml"] = ("<feed>" + "".join(f"<entry>{t}</entry>" for _, t in items[:5]) + "</feed>\n").encode()
    files["sitemap.xml"] = ("<urlset>" + "".join(f"<url>d/{i}/</url>" for i, _ in items) + "</urlset>\n").encode()
    files["search.json"] = ("[" + ",".join(f'["{i}","{t}"]' for i, t in items) + "]\n").encode()
    files["robots.txt"] = b"User-agent: *\n"

    if root.exists():
        shutil.rmtree(root)  # a re-render: every file is rewritten, mtimes change
    for key, data in files.items():
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    # What render writes last, beside the site: publish refuses a site without it.
    root.with_name(f"{root.name}.manifest.json").write_text('{"stage": "render", "complete": true}\n')
    return files


def catalog(count: int, start: int = 0, night: str = "n1") -> list[tuple[str, str]]:
    return [(id_, f"A {night} story number {start + n} about a detective.") for n, id_ in enumerate(item_ids(count, start))]


# --- reading the bucket back ------------------------------------------------------------------

def remote_files(client, bucket: str, prefix: str = "") -> dict[str, bytes]:
    out = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            key = item["Key"][len(prefix):]
            if key == publish_module.STATE_NAME:
                continue
            response = client.get_object(Bucket=bucket, Key=item["Key"])
            data = response["Body"].read()
            out[key] = gzip.decompress(data) if response.get("ContentEncoding") == "gzip" else data
    return out


HREF = re.compile(rb'href="([^"]*)"')


def links_of(key: str, data: bytes) -> set[str]:
    """Independent of the publisher's own parser: relative hrefs, `x/` meaning `x/index.html`."""
    out = set()
    for raw in HREF.findall(data):
        url = raw.decode()
        path = posixpath.normpath(posixpath.join(posixpath.dirname(key), url))
        path = "" if path == "." else path
        out.add(posixpath.join(path, "index.html") if url.endswith("/") or not path else path)
    return out


def assert_no_broken_page(files: dict[str, bytes], start: str = "index.html") -> set[str]:
    """Every page reachable from ``start`` exists and links only to files that exist; returns them."""
    seen, todo = set(), [start]
    while todo:
        key = todo.pop()
        if key in seen:
            continue
        assert key in files, f"{key} is linked but missing"
        seen.add(key)
        if key.endswith(".html"):
            for link in links_of(key, files[key]):
                assert link in files, f"{key} links to missing {link}"
                todo.append(link)
    return seen


def differing(old: dict[str, bytes], new: dict[str, bytes]) -> set[str]:
    return {key for key, data in new.items() if old.get(key) != data}


class Recorder:
    """Records the S3 operations a client sends, in order (a botocore event hook)."""

    def __init__(self, client):
        self.calls: list[tuple[str, str]] = []
        client.meta.events.register("before-send.s3", self)

    def __call__(self, event_name, request, **_):
        operation = event_name.rsplit(".", 1)[-1]
        self.calls.append((operation, request.url.split("?")[0].split("/", 4)[-1]))

    def keys(self, operation: str) -> list[str]:
        return [key for op, key in self.calls if op == operation]


class InjectedFault(BotoCoreError):
    fmt = "injected network failure"


def fail_puts_from(client, nth: int) -> list[int]:
    """From the nth PutObject on, every PUT fails (the link went down partway through)."""
    count = [0]

    def hook(**_):
        count[0] += 1
        if count[0] >= nth:
            raise InjectedFault()

    client.meta.events.register("before-send.s3.PutObject", hook)
    return count


def new_client(**_):
    return publish_module._s3_client(PublishSettings())


# --- S3 ---------------------------------------------------------------------------------------

def test_first_publish_uploads_all_then_unchanged_republish_uploads_nothing(tmp_path, bucket, s3):
    site = tmp_path / "site"
    files = build_site(site, catalog(30))
    first = publish(site, f"s3://{bucket}/gallery", PublishSettings())
    assert first["uploaded"] == len(files) and first["skipped"] == 0 and first["deleted"] == 0
    assert first["reasons"] == {"new": len(files)}
    assert remote_files(s3, bucket, "gallery/") == files

    build_site(site, catalog(30))  # the nightly re-render: same bytes, new mtimes
    second = publish(site, f"s3://{bucket}/gallery", PublishSettings())
    assert second["uploaded"] == 0 and second["skipped"] == len(files)
    # One listing page and the state object: no HEAD per object, no PUT.
    assert set(second["requests"]) == {"ListObjectsV2", "GetObject"}, second["requests"]
    manifest = tmp_path / "site-publish.manifest.json"
    assert manifest.is_file() and '"uploaded": 0' in manifest.read_text()


def test_one_percent_change_uploads_only_those_files_and_their_indexes(tmp_path, bucket, s3):
    site = tmp_path / "site"
    items = catalog(100)
    old = build_site(site, items)
    publish(site, f"s3://{bucket}", PublishSettings())
    items[45] = (items[45][0], "A rewritten description of story 45.")
    new = build_site(site, items)
    changed = differing(old, new)
    # The item's own page, the listing page that shows it, the search index.
    assert changed == {f"d/{items[45][0]}/index.html", "page/5/index.html", "search.json"}
    summary = publish(site, f"s3://{bucket}", PublishSettings())
    assert summary["uploaded"] == len(changed) and summary["reasons"] == {"content changed": len(changed)}
    assert summary["skipped"] == len(new) - len(changed)
    assert summary["uploaded_bytes"] == sum(len(new[k]) for k in changed)
    assert remote_files(s3, bucket) == new


def test_order_assets_pages_indexes_home_then_deletes(tmp_path, bucket, s3):
    site = tmp_path / "site"
    items = catalog(20)
    old = build_site(site, items)
    publish(site, f"s3://{bucket}/p", PublishSettings())
    # A new night: two new items on top, two old ones gone, a new stylesheet.
    items = catalog(2, start=100, night="n2") + items[:-2]
    new = build_site(site, items, css=CSS + "a { color: red; }\n")
    client = new_client()
    recorder = Recorder(client)
    summary = publish(site, f"s3://{bucket}/p", PublishSettings(), client=client)

    puts = [key[len("p/"):] for key in recorder.keys("PutObject")]
    state = {publish_module.STATE_NAME, PENDING_NAME}  # the publisher's own: the record, the pending object
    puts = [key for key in puts if key not in state]
    assert set(puts) == differing(old, new)
    html_positions = [i for i, key in enumerate(puts) if key.endswith(".html")]
    asset_positions = [i for i, key in enumerate(puts) if not key.endswith((".html", ".xml", ".json", ".txt"))]
    assert max(asset_positions, default=-1) < min(html_positions)
    assert puts[-1] == "index.html"
    new_pages = {f"d/{id_}/index.html" for id_, _ in items[:2]}
    for key in new_pages:  # a new page is up before any page that links to it
        linking = [i for i, other in enumerate(puts) if key in links_of(other, new.get(other, b""))]
        assert all(puts.index(key) < i for i in linking if puts[i] not in new_pages), (key, puts)
    feed_at = puts.index("feed.xml")
    assert all(puts.index(key) < feed_at for key in new_pages)
    operations = [op for op, _ in recorder.calls]
    assert operations.index("DeleteObjects") > max(i for i, op in enumerate(operations) if op == "PutObject"
                                                   and recorder.calls[i][1][len("p/"):] not in state)
    assert operations.index("CopyObject") < operations.index("PutObject", operations.index("PutObject") + 1)
    assert summary["deleted"] == 3  # two pages and the old stylesheet
    assert remote_files(s3, bucket, "p/") == new
    assert summary["phases"]["home"] == 1 and summary["phases"]["indexes"] >= 2


@pytest.mark.parametrize("page", [1, 4, 1000])
def test_range_listing_covers_the_whole_key_space(bucket, s3, monkeypatch, page):
    """Ranges are cut at local keys; remote keys before, between and after them are all listed."""
    monkeypatch.setattr(publish_s3_store, "LIST_PAGE", page)
    local = [f"k{n:03d}.html" for n in range(0, 40, 2)]
    remote = [f"k{n:03d}.html" for n in range(0, 40, 3)] + ["a.html", "k0045.html", "zz/last.html", "k010.html/x"]
    for key in remote:
        s3.put_object(Bucket=bucket, Key=f"p/{key}", Body=key.encode())
    s3.put_object(Bucket=bucket, Key="p2/outside.html", Body=b"x")
    client = new_client()
    recorder = Recorder(client)
    listed = publish_module.list_remote(client, parse_target(f"s3://{bucket}/p"), local, concurrency=3)
    assert set(listed) == set(remote)
    assert listed["a.html"].etag == hashlib.md5(b"a.html").hexdigest()
    if page == 1000:
        assert len(recorder.keys("ListObjectsV2")) == 1


def test_phase_classification(tmp_path):
    site = tmp_path / "site"
    pages = {
        "index.html": '<a href="d/new/">new</a><a href="all/">all</a>',
        "d/new/index.html": '<a href="../old/">prev</a><a href="../../">home</a>',
        "d/old/index.html": '<a href="../new/">next</a>',  # existing, now links to a new page
        "d/edited/index.html": '<a href="../old/">prev</a><a href="../../">home</a>',  # existing, no new links
        "all/index.html": '<a href="../d/new/index.html">new</a>',
        "all/page-2.html": '<a href="index.html">1</a>',
    }
    others = ["assets/site.0123abcd.css", "assets/app.89abcdef.js", "random/ids.js", "feed.xml",
              "sitemap.xml", "search.json", "robots.txt", "icon.svg", "site.webmanifest"]
    for key, body in pages.items():
        (site / key).parent.mkdir(parents=True, exist_ok=True)
        (site / key).write_text(f"<html><body>{body}</body></html>")
    for key in others:
        (site / key).parent.mkdir(parents=True, exist_ok=True)
        (site / key).write_text("x")
    files = publish_module.scan_site(site, PublishSettings(), compress=False)
    uploads = [publish_module.Upload(f, "test") for f in files]
    publish_module.assign_phases(uploads, new_keys={"d/new/index.html", "index.html"})
    phases = {u.file.key: u.phase for u in uploads}
    assert phases == {
        "index.html": "home",
        "d/new/index.html": "pages", "d/edited/index.html": "pages", "all/page-2.html": "pages",
        "d/old/index.html": "indexes", "all/index.html": "indexes",
        "assets/site.0123abcd.css": "assets", "assets/app.89abcdef.js": "assets", "icon.svg": "assets",
        "site.webmanifest": "assets",
        "random/ids.js": "indexes", "feed.xml": "indexes", "sitemap.xml": "indexes", "search.json": "indexes",
        "robots.txt": "indexes",
    }


def test_headers_read_back(tmp_path, bucket, s3):
    site = tmp_path / "site"
    build_site(site, catalog(3))
    publish(site, f"s3://{bucket}/w", PublishSettings())
    short, immutable = PublishSettings().html_cache_control, "public, max-age=31536000, immutable"
    expected = {
        "index.html": ("text/html; charset=utf-8", short),
        "d/" + item_ids(1)[0] + "/index.html": ("text/html; charset=utf-8", short),
        CSS_NAME: ("text/css; charset=utf-8", immutable),
        FONT_NAME: ("font/woff2", immutable),
        "feed.xml": ("application/xml; charset=utf-8", short),
        "sitemap.xml": ("application/xml; charset=utf-8", short),
        "search.json": ("application/json; charset=utf-8", short),
        "site.webmanifest": ("application/manifest+json; charset=utf-8", short),
        "icon.svg": ("image/svg+xml; charset=utf-8", short),
        "robots.txt": ("text/plain; charset=utf-8", short),
    }
    for key, (ctype, cache) in expected.items():
        head = s3.head_object(Bucket=bucket, Key=f"w/{key}")
        assert (head["ContentType"], head["CacheControl"]) == (ctype, cache), key
        assert head["Metadata"]["md5"] == hashlib.md5((site / key).read_bytes()).hexdigest()


def test_header_rule_change_reuploads_only_affected_files(tmp_path, bucket, s3):
    site = tmp_path / "site"
    files = build_site(site, catalog(5))
    publish(site, f"s3://{bucket}", PublishSettings())
    settings = PublishSettings(html_cache_control="public, max-age=60")
    summary = publish(site, f"s3://{bucket}", settings)
    fingerprinted = {CSS_NAME, FONT_NAME}
    assert summary["reasons"] == {"headers changed": len(files) - len(fingerprinted)}
    assert summary["skipped"] == len(fingerprinted)
    assert s3.head_object(Bucket=bucket, Key="index.html")["CacheControl"] == "public, max-age=60"
    again = publish(site, f"s3://{bucket}", settings)
    assert again["uploaded"] == 0 and "HeadObject" not in again["requests"]


def test_gzip_bytes_are_stable(tmp_path, bucket, s3):
    site = tmp_path / "site"
    files = build_site(site, catalog(5))
    settings = PublishSettings(gzip=True)
    publish(site, f"s3://{bucket}", settings)
    assert s3.head_object(Bucket=bucket, Key="index.html")["ContentEncoding"] == "gzip"
    assert "ContentEncoding" not in s3.head_object(Bucket=bucket, Key=FONT_NAME)
    assert remote_files(s3, bucket) == files
    build_site(site, catalog(5))
    assert publish(site, f"s3://{bucket}", settings)["uploaded"] == 0


def test_multipart_file_is_not_reuploaded_when_unchanged(tmp_path, bucket, s3):
    site = tmp_path / "site"
    build_site(site, catalog(2))
    big = os.urandom(9 * 1024 * 1024)
    (site / "media").mkdir()
    (site / "media" / "trailer.bin").write_bytes(big)
    publish(site, f"s3://{bucket}", PublishSettings())
    etag = s3.head_object(Bucket=bucket, Key="media/trailer.bin")["ETag"]
    assert "-" in etag, "expected a multipart ETag"

    again = publish(site, f"s3://{bucket}", PublishSettings())
    assert again["uploaded"] == 0
    assert not {"PutObject", "UploadPart", "CreateMultipartUpload"} & set(again["requests"])
    # Without the state object, the multipart object's MD5 comes from its metadata (one HEAD).
    s3.delete_object(Bucket=bucket, Key=publish_module.STATE_NAME)
    third = publish(site, f"s3://{bucket}", PublishSettings(adopt=True))  # no record of ours left: adopt
    assert third["uploaded"] == 0 and third["requests"]["HeadObject"] >= 1
    assert s3.head_object(Bucket=bucket, Key="media/trailer.bin")["ETag"] == etag


@pytest.mark.parametrize("nth", [1, 6])
def test_failure_partway_leaves_old_site_intact_and_rerun_completes(tmp_path, bucket, s3, nth):
    site = tmp_path / "site"
    items = catalog(40)
    old = build_site(site, items)
    publish(site, f"s3://{bucket}/g", PublishSettings())
    items = catalog(5, start=200, night="n2") + [(i, t + " Revised.") for i, t in items[:10]] + items[10:35]
    new = build_site(site, items)

    client = new_client()
    puts = fail_puts_from(client, nth)
    with pytest.raises(UserError, match="injected network failure") as error:
        publish(site, f"s3://{bucket}/g", PublishSettings(concurrency=4), client=client)
    assert "re-run" in error.value.fix
    assert puts[0] >= nth
    remote = remote_files(s3, bucket, "g/")
    assert remote["index.html"] == old["index.html"]
    reachable = assert_no_broken_page(remote)
    assert {f"d/{i}/index.html" for i, _ in catalog(40)} <= set(remote)  # nothing deleted yet
    assert len(reachable) > 10

    summary = publish(site, f"s3://{bucket}/g", PublishSettings())
    assert summary["deleted"] == 5
    assert remote_files(s3, bucket, "g/") == new
    assert summary["uploaded"] <= len(differing(old, new))


def test_max_deletes_guard(tmp_path, bucket, s3):
    site = tmp_path / "site"
    items = catalog(10)
    build_site(site, items)
    publish(site, f"s3://{bucket}", PublishSettings())
    new = build_site(site, items[:-3])
    held = publish(site, f"s3://{bucket}", PublishSettings(max_deletes=2))
    assert held["deleted"] == 0 and held["deletes_skipped"] == 3
    assert "max_deletes=2" in held["warnings"][0]
    assert all(f"d/{i}/index.html" in remote_files(s3, bucket) for i, _ in items[-3:])
    forced = publish(site, f"s3://{bucket}", PublishSettings(max_deletes=2, force_deletes=True))
    assert forced["deleted"] == 3 and forced["uploaded"] == 0
    assert remote_files(s3, bucket) == new


def test_dry_run_plans_without_touching_the_target(tmp_path, bucket, s3):
    site = tmp_path / "site"
    items = catalog(10)
    files = build_site(site, items)
    plan = publish(site, f"s3://{bucket}", PublishSettings(dry_run=True))
    assert plan["dry_run"] and plan["uploaded"] == 0 and plan["to_upload"] == len(files)
    assert {row["key"] for row in plan["plan"]} == set(files)
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0
    assert plan["plan"][-1] == {"action": "upload", "key": "index.html", "reason": "new", "phase": "home",
                                "bytes": len(files["index.html"])}

    publish(site, f"s3://{bucket}", PublishSettings())
    before = {o["Key"]: o["ETag"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
    build_site(site, [(items[0][0], "Changed.")] + items[1:-1])
    plan = publish(site, f"s3://{bucket}", PublishSettings(dry_run=True))
    rows = {row["key"]: row for row in plan["plan"]}
    assert rows[f"d/{items[-1][0]}/index.html"]["action"] == "delete"
    assert rows[f"d/{items[0][0]}/index.html"]["reason"] == "content changed"
    assert not {"PutObject", "DeleteObjects"} & set(plan["requests"])
    assert {o["Key"]: o["ETag"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]} == before


def test_website_configuration_and_cloudfront_invalidation(tmp_path, bucket, s3, s3_server):
    import boto3

    cloudfront = boto3.client("cloudfront", endpoint_url=s3_server)
    distribution = cloudfront.create_distribution(DistributionConfig={
        "CallerReference": bucket, "Comment": "", "Enabled": True,
        "Origins": {"Quantity": 1, "Items": [{"Id": "s3", "DomainName": f"{bucket}.s3.amazonaws.com",
                                              "S3OriginConfig": {"OriginAccessIdentity": ""}}]},
        "DefaultCacheBehavior": {"TargetOriginId": "s3", "ViewerProtocolPolicy": "allow-all", "MinTTL": 0,
                                 "ForwardedValues": {"QueryString": False, "Cookies": {"Forward": "none"}},
                                 "TrustedSigners": {"Enabled": False, "Quantity": 0}}})["Distribution"]["Id"]
    site = tmp_path / "site"
    items = catalog(12)
    build_site(site, items)
    settings = PublishSettings(website=True, cloudfront_distribution_id=distribution)
    publish(site, f"s3://{bucket}/www", settings)
    website = s3.get_bucket_website(Bucket=bucket)
    assert website["IndexDocument"] == {"Suffix": "index.html"}
    assert website["ErrorDocument"] == {"Key": "www/404.html"}

    build_site(site, [(items[3][0], "Changed.")] + items[:3] + items[4:])
    summary = publish(site, f"s3://{bucket}/www", settings)
    paths = summary["invalidation"]["paths"]
    assert "/www/index.html" in paths and "/www/" in paths and not any(CSS_NAME in p for p in paths)
    listed = cloudfront.list_invalidations(DistributionId=distribution)["InvalidationList"]
    assert listed["Quantity"] >= 1


def test_missing_bucket_is_a_clear_error(tmp_path, s3_server):
    site = tmp_path / "site"
    build_site(site, catalog(1))
    with pytest.raises(UserError, match="no such bucket") as error:
        publish(site, "s3://no-such-bucket-here/x", PublishSettings())
    assert "create the bucket" in error.value.fix


def test_missing_credentials_is_a_clear_cli_error(tmp_path, s3_server, monkeypatch):
    site = tmp_path / "site"
    build_site(site, catalog(1))
    for name in [name for name in os.environ if name.startswith("AWS_")]:
        monkeypatch.delenv(name)
    env = dict(AWS_ENDPOINT_URL=s3_server, AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
               AWS_CONFIG_FILE=str(tmp_path / "none"), AWS_EC2_METADATA_DISABLED="true",
               AWS_DEFAULT_REGION="us-east-1")
    result = run_cli("publish", "--site", str(site), "--target", "s3://some-bucket/x", env=env, timeout=120)
    assert_clean_error(result, "no AWS credentials")
    assert "AWS_ACCESS_KEY_ID" in result.stderr


def test_cli_dry_run_prints_the_plan(tmp_path, bucket, s3_server):
    site = tmp_path / "site"
    build_site(site, catalog(2))
    result = run_cli("publish", "--site", str(site), "--target", f"s3://{bucket}/x", "--dry-run",
                     "--endpoint-url", s3_server, "--max-deletes", "5", timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[-2].startswith("upload index.html  (new, home)")
    assert "dry run: would upload" in lines[-1]


# --- target and site validation ---------------------------------------------------------------

@pytest.mark.parametrize("uri", ["ftp://x/site", "s3://", "s3:///prefix", "s3://Bad_Bucket/x", "file://relative/dir",
                                 "relative/dir", "/abs/without/scheme", "", "file:///"])
def test_bad_targets_name_the_accepted_forms(uri):
    with pytest.raises(UserError) as error:
        parse_target(uri)
    assert "s3://bucket/prefix" in error.value.fix and "file:///absolute/dir" in error.value.fix


def test_good_targets_parse():
    assert parse_target("s3://my-bucket").prefix == ""
    assert parse_target("s3://my-bucket/a/b/").prefix == "a/b/"
    assert parse_target("file:///srv/www/gallery").path == Path("/srv/www/gallery")


def test_missing_site_and_bad_target_on_the_cli(tmp_path):
    assert_clean_error(run_cli("publish", "--site", str(tmp_path / "nope"), "--target", "file:///tmp/x"),
                       "site directory not found")
    site = tmp_path / "site"
    build_site(site, catalog(1))
    assert_clean_error(run_cli("publish", "--site", str(site), "--target", "ftp://x"), "ftp://x", "unsupported")
    assert_clean_error(run_cli("publish", "--site", str(site), "--target", f"file://{site}/out"), "overlaps")


# --- file:// ---------------------------------------------------------------------------------

def tree(root: Path) -> dict[str, bytes]:
    """The published files (the publisher's record excluded, as in remote_files)."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*")
            if p.is_file() and p.name != publish_module.STATE_NAME}


def test_file_target_diffs_by_content_and_swaps_atomically(tmp_path):
    site, public = tmp_path / "site", tmp_path / "www" / "public"
    items = catalog(20)
    files = build_site(site, items)
    first = publish(site, f"file://{public}", PublishSettings())
    assert first["uploaded"] == len(files) and tree(public) == files

    build_site(site, items)
    inode = public.stat().st_ino
    unchanged = publish(site, f"file://{public}", PublishSettings())
    assert unchanged["uploaded"] == 0 and unchanged["skipped"] == len(files)
    assert public.stat().st_ino == inode  # nothing to do: not even swapped

    items[7] = (items[7][0], "New words.")
    new = build_site(site, items[:-1])
    changed = publish(site, f"file://{public}", PublishSettings())
    assert changed["uploaded"] == len(differing(files, new)) and changed["deleted"] == 1
    assert tree(public) == new
    assert sorted(p.name for p in public.parent.iterdir()) == ["public"]  # no staging left behind


def test_file_target_failure_leaves_the_published_tree(tmp_path, monkeypatch):
    site, public = tmp_path / "site", tmp_path / "public"
    old = build_site(site, catalog(10))
    publish(site, f"file://{public}", PublishSettings())
    build_site(site, catalog(12, night="n2"))
    calls = [0]
    real_copy = publish_local._copy_file

    def failing_copy(source, destination):
        calls[0] += 1
        if calls[0] == 4:
            raise OSError(28, "No space left on device")
        real_copy(source, destination)

    monkeypatch.setattr(publish_local, "_copy_file", failing_copy)
    with pytest.raises(UserError, match="No space left"):
        publish(site, f"file://{public}", PublishSettings())
    assert tree(public) == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["public", "site", "site-publish.digests.json",
                                                          "site-publish.manifest.json", "site.manifest.json"]


def test_file_target_max_deletes_guard(tmp_path):
    site, public = tmp_path / "site", tmp_path / "public"
    items = catalog(10)
    build_site(site, items)
    publish(site, f"file://{public}", PublishSettings())
    new = build_site(site, items[:-4])
    held = publish(site, f"file://{public}", PublishSettings(max_deletes=3))
    assert held["deleted"] == 0 and held["deletes_skipped"] == 4
    assert all((public / f"d/{i}/index.html").is_file() for i, _ in items[-4:])
    assert publish(site, f"file://{public}", PublishSettings(max_deletes=3, force_deletes=True))["deleted"] == 4
    assert tree(public) == new
