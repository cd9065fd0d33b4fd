"""Publishing never loses data: ownership (--adopt), the atomic file:// swap, symlinked targets, refusing an
unfinished render, a closed stdout pipe. Against the moto S3 server and file:// targets."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import subprocess
import sys

import pytest

import generator.publish as publish_module
from generator.errors import UserError
from generator.publish import PublishSettings, publish

from conftest import ROOT, assert_clean_error, run_cli
from test_publish import build_site, catalog, fail_puts_from, new_client, remote_files, tree

STATE = publish_module.STATE_NAME


def decode_record(body: bytes) -> dict:
    """The record as {"version": n, "files": {key: [md5, headers digest, ETag]}}, whatever its encoding."""
    state = json.loads(gzip.decompress(body) if body[:2] == b"\x1f\x8b" else body)
    if state["version"] == 3:
        state["files"] = {key: [md5, state["headers"][index], md5 if etag == "=" else etag]
                          for key, md5, index, etag in zip(state["keys"], state["md5"], state["h"], state["etag"])}
    return state


def record_of(s3, bucket: str, prefix: str = "") -> dict:
    response = s3.get_object(Bucket=bucket, Key=prefix + STATE)
    assert response.get("ContentEncoding") == "gzip"
    return decode_record(response["Body"].read())


# --- ownership on S3 ------------------------------------------------------------------------------

def test_s3_first_publish_into_foreign_files_stops_unless_adopted(tmp_path, bucket, s3):
    s3.put_object(Bucket=bucket, Key="site/old-blog/index.html", Body=b"someone else's")
    s3.put_object(Bucket=bucket, Key="site/index.html", Body=b"their home page")
    site = tmp_path / "site"
    files = build_site(site, catalog(5))
    for dry_run in (False, True):
        with pytest.raises(UserError) as error:
            publish(site, f"s3://{bucket}/site", PublishSettings(dry_run=dry_run))
        assert error.value.problem.startswith(f"target s3://{bucket}/site already holds 2 files that this gallery "
                                              "did not publish")
        assert error.value.fix == "pass --adopt to take them over, or choose an empty target"
    assert {o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]} == {"site/old-blog/index.html",
                                                                                 "site/index.html"}
    adopted = publish(site, f"s3://{bucket}/site", PublishSettings(adopt=True))
    assert adopted["deleted"] == 1 and adopted["reasons"] == {"content changed": 1, "new": len(files) - 1}
    assert remote_files(s3, bucket, "site/") == files
    record = record_of(s3, bucket, "site/")
    assert record["version"] == 3 and set(record["files"]) == set(files)
    for key, (md5, headers, etag) in record["files"].items():
        assert md5 == hashlib.md5(files[key]).hexdigest() == etag and len(headers) == 16


def test_s3_deletes_only_what_it_published(tmp_path, bucket, s3):
    site = tmp_path / "site"
    items = catalog(8)
    build_site(site, items)
    publish(site, f"s3://{bucket}", PublishSettings())
    s3.put_object(Bucket=bucket, Key="ads/banner.html", Body=b"not ours")  # another tool shares the bucket
    new = build_site(site, items[:-2])
    summary = publish(site, f"s3://{bucket}", PublishSettings())
    assert summary["deleted"] == 2 and summary["foreign"] == 1
    assert any("not published by this gallery" in w and "ads/banner.html" in w for w in summary["warnings"])
    remote = remote_files(s3, bucket)
    assert remote.pop("ads/banner.html") == b"not ours" and remote == new
    assert "ads/banner.html" not in record_of(s3, bucket)["files"]
    assert publish(site, f"s3://{bucket}", PublishSettings())["deleted"] == 0


def test_s3_upload_of_a_failed_publish_stays_owned(tmp_path, bucket, s3):
    """The record is written before the first upload: a page a crashed publish put up is deleted later."""
    site = tmp_path / "site"
    items = catalog(6)
    old = build_site(site, items)
    publish(site, f"s3://{bucket}", PublishSettings())
    extra = catalog(1, start=50, night="n2")
    build_site(site, extra + items)
    client = new_client()
    fail_puts_from(client, 3)  # the record, the new page, then the link goes down
    with pytest.raises(UserError, match="injected network failure"):
        publish(site, f"s3://{bucket}", PublishSettings(), client=client)
    new_page = f"d/{extra[0][0]}/index.html"
    assert new_page in remote_files(s3, bucket)
    build_site(site, items)  # the night is redone without that item
    summary = publish(site, f"s3://{bucket}", PublishSettings())
    assert summary["deleted"] == 1 and remote_files(s3, bucket) == old


def test_s3_version_1_state_counts_as_ours(tmp_path, bucket, s3):
    """A target published before ownership records (state version 1) is taken as wholly ours."""
    site = tmp_path / "site"
    items = catalog(5)
    build_site(site, items)
    publish(site, f"s3://{bucket}/g", PublishSettings())
    s3.put_object(Bucket=bucket, Key="g/" + STATE, Body=json.dumps({"version": 1, "rules": "", "etags": {}}).encode())
    new = build_site(site, items[:-1])
    summary = publish(site, f"s3://{bucket}/g", PublishSettings())
    assert summary["deleted"] == 1 and remote_files(s3, bucket, "g/") == new
    assert record_of(s3, bucket, "g/")["version"] == 3


# --- ownership on file:// -------------------------------------------------------------------------

def test_file_target_ownership_and_adopt(tmp_path):
    site, public = tmp_path / "site", tmp_path / "public"
    (public / "notes").mkdir(parents=True)
    (public / "notes" / "todo.txt").write_text("mine, not the gallery's")
    files = build_site(site, catalog(6))
    result = run_cli("publish", "--site", str(site), "--target", f"file://{public}")
    assert_clean_error(result, f"target file://{public} already holds 1 files that this gallery did not publish",
                       "fix: pass --adopt to take them over, or choose an empty target")
    assert tree(public) == {"notes/todo.txt": b"mine, not the gallery's"}

    result = run_cli("publish", "--site", str(site), "--target", f"file://{public}", "--adopt")
    assert result.returncode == 0, result.stderr
    assert tree(public) == files  # adopted and not in the site: deleted
    record = decode_record((public / STATE).read_bytes())
    assert record["version"] == 3 and set(record["files"]) == set(files)

    (public / "extra.txt").write_text("dropped in by hand later")
    new = build_site(site, catalog(4))
    summary = publish(site, f"file://{public}", PublishSettings())
    assert summary["deleted"] == 2 and summary["foreign"] == 1
    assert tree(public) == {**new, "extra.txt": b"dropped in by hand later"}


# --- the file:// swap -----------------------------------------------------------------------------

def test_symlinked_file_target_stays_a_symlink(tmp_path):
    site, real, link = tmp_path / "site", tmp_path / "srv" / "gallery-data", tmp_path / "public"
    real.mkdir(parents=True)
    link.symlink_to(real, target_is_directory=True)
    for night, count in (("n1", 6), ("n2", 5), ("n3", 7)):
        files = build_site(site, catalog(count, night=night))
        summary = publish(site, f"file://{link}", PublishSettings())
        assert summary["uploaded"] > 0
        assert link.is_symlink() and os.readlink(link) == str(real)
        assert tree(real) == files
    assert sorted(p.name for p in real.parent.iterdir()) == ["gallery-data"]  # no staging left


# A reader in its own process (not slowed by this one's GIL): opens index.html as fast as it can,
# counting misses; then reads index.html and version.txt from one directory snapshot (a dir fd),
# which must come from the same publish. Stops when the stop file appears; prints its counts.
READER = r"""
import json, os, sys
public, stop, versions = sys.argv[1], sys.argv[2], json.load(open(sys.argv[3]))
index = os.path.join(public, "index.html")
misses = reads = snapshots = 0
problems = []
while not os.path.exists(stop):
    for _ in range(200):
        try:
            fd = os.open(index, os.O_RDONLY)
        except FileNotFoundError:
            misses += 1
            continue
        data = os.read(fd, 1 << 20)
        os.close(fd)
        reads += 1
        if data.decode() not in versions:
            problems.append("index.html is no published version (%d bytes)" % len(data))
    try:
        dfd = os.open(public, os.O_RDONLY | os.O_DIRECTORY)
    except FileNotFoundError:
        misses += 1
        continue
    try:
        with open(os.open("index.html", os.O_RDONLY, dir_fd=dfd), "rb") as handle:
            page = handle.read().decode()
        with open(os.open("version.txt", os.O_RDONLY, dir_fd=dfd), "rb") as handle:
            version = int(handle.read())
    except FileNotFoundError:
        continue  # this snapshot was retired (the old tree removed) between the two reads
    finally:
        os.close(dfd)
    snapshots += 1
    if versions.get(page) != version:
        problems.append("mixed site: index.html of %s with version.txt %s" % (versions.get(page), version))
print(json.dumps({"misses": misses, "reads": reads, "snapshots": snapshots, "problems": problems[:3]}))
"""


def test_readers_never_see_a_missing_or_mixed_site_during_publishes(tmp_path, monkeypatch):
    """A reader polls index.html through 20 publishes: always there, always whole, never mixed.

    A window of microseconds (two renames) is too short for a poller to hit reliably, so every
    rename is also watched: after none of them may the target be missing.
    """
    site, public = tmp_path / "site", tmp_path / "public"
    versions: dict[str, int] = {}
    for n in range(21):  # every night's site, known to the reader in advance
        versions[build_site(site, catalog(30, night=f"night{n}"))["index.html"].decode()] = n
    (tmp_path / "versions.json").write_text(json.dumps(versions))

    def render(n: int) -> None:
        build_site(site, catalog(30, night=f"night{n}"))
        (site / "version.txt").write_text(str(n))

    render(0)
    publish(site, f"file://{public}", PublishSettings())
    real_replace, gaps = os.replace, []

    def watched_replace(source, destination, **kwargs):
        real_replace(source, destination, **kwargs)
        if not public.is_dir():
            gaps.append(str(destination))

    monkeypatch.setattr(os, "replace", watched_replace)
    stop = tmp_path / "stop"
    reader = subprocess.Popen([sys.executable, "-c", READER, str(public), str(stop), str(tmp_path / "versions.json")],
                              stdout=subprocess.PIPE, text=True)
    try:
        for n in range(1, 21):
            render(n)
            assert publish(site, f"file://{public}", PublishSettings())["uploaded"] > 0
    finally:
        stop.touch()
        output, _ = reader.communicate(timeout=60)
    counts = json.loads(output)
    assert counts["misses"] == 0 and not counts["problems"], counts
    assert not gaps, f"the target was missing after renaming to {gaps[0]}"
    assert counts["reads"] > 20 and counts["snapshots"] > 0, counts
    assert (public / "version.txt").read_text() == "20"


def test_swap_falls_back_to_two_renames_without_exchange(tmp_path, monkeypatch):
    import generator.artifacts as artifacts

    monkeypatch.setattr(artifacts, "exchange_directories", lambda a, b: False)
    site, public = tmp_path / "site", tmp_path / "public"
    build_site(site, catalog(4))
    publish(site, f"file://{public}", PublishSettings())
    files = build_site(site, catalog(3, night="n2"))
    assert publish(site, f"file://{public}", PublishSettings())["deleted"] == 1
    assert tree(public) == files and sorted(p.name for p in tmp_path.iterdir()) == [
        "public", "site", "site-publish.digests.json", "site-publish.manifest.json", "site.manifest.json"]


# --- what publish refuses, and a closed pipe ------------------------------------------------------

def test_publish_refuses_an_unfinished_render(tmp_path):
    site, public = tmp_path / "site", tmp_path / "public"
    build_site(site, catalog(3))
    manifest = tmp_path / "site.manifest.json"
    manifest.write_text('{"stage": "render", "complete": false}')
    with pytest.raises(UserError, match="did not complete"):
        publish(site, f"file://{public}", PublishSettings())
    manifest.unlink()
    with pytest.raises(UserError, match="no render manifest"):
        publish(site, f"file://{public}", PublishSettings())
    assert not public.exists()
    manifest.write_text('{"stage": "render"}')  # no "complete": true, not a finished render (one contract with render's)
    with pytest.raises(UserError, match="does not say it completed"):
        publish(site, f"file://{public}", PublishSettings())
    manifest.write_text('{"stage": "curate", "complete": true}')
    with pytest.raises(UserError, match="not render's manifest"):
        publish(site, f"file://{public}", PublishSettings())
    manifest.write_text('{"stage": "render", "complete": true}')
    assert publish(site, f"file://{public}", PublishSettings())["uploaded"] > 0


def test_dry_run_into_a_closed_pipe_exits_quietly(tmp_path):
    site = tmp_path / "site"
    build_site(site, catalog(1500))  # a plan well over a pipe's 64 KiB buffer
    command = (f"{sys.executable} -m generator publish --site {site} --target file://{tmp_path / 'public'} "
               f"--dry-run | head -n 2")
    result = subprocess.run(["bash", "-o", "pipefail", "-c", command], capture_output=True, text=True,
                            cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 2
    assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr, result.stderr


def test_ingest_reports_s3_errors_through_the_same_mapping(tmp_path, bucket):
    result = run_cli("ingest", "--catalog", f"s3://{bucket}/missing.csv", "--out", str(tmp_path / "in"), timeout=120)
    assert_clean_error(result, "no such key", "fix: check the key")
    result = run_cli("ingest", "--catalog", "s3://no-such-bucket-zz/c.csv", "--out", str(tmp_path / "in"), timeout=120)
    assert_clean_error(result, "no such bucket", "create the bucket first")


def test_a_target_published_before_records_upgrades_without_adopt(tmp_path):
    """The site's last summary names this target and predates records: the target is this gallery's."""
    site, public = tmp_path / "site", tmp_path / "public"
    items = catalog(6)
    build_site(site, items)
    publish(site, f"file://{public}", PublishSettings())
    summary_path = tmp_path / "site-publish.manifest.json"
    old_summary = {k: v for k, v in json.loads(summary_path.read_text()).items() if k != "foreign"}
    summary_path.write_text(json.dumps(old_summary))
    (public / STATE).unlink()  # as the old publisher left it
    new = build_site(site, items[:-1])
    assert publish(site, f"file://{public}", PublishSettings(dry_run=True))["to_delete"] == 1  # a look first
    assert publish(site, f"file://{public}", PublishSettings())["deleted"] == 1 and tree(public) == new
    (public / STATE).unlink()  # a record lost under a current publisher: not presumed ours
    with pytest.raises(UserError, match="did not publish"):
        publish(site, f"file://{public}", PublishSettings())
